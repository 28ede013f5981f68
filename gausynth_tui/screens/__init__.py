"""The app's screens: runs list, run board, preset editor, training monitor, previews, queue, help.

Each screen only reacts to the app's messages and redraws from the shared `RunStore`; commands
go back to the engine through its public surface (`gausynth_engine`), never its private modules.
"""
