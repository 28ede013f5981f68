"""The Textual viewer of GauSynth runs.

Owns the screens and widgets, the journal-tailing worker (`app.py`) and the run store
(`store.py`). It reads runs and starts or cancels them only through the engine's public surface
(`gausynth_engine`, `gausynth_engine.queue`, the viewer): an import-linter contract checks it.
"""
