"""The Textual viewer of GauSynth runs."""
