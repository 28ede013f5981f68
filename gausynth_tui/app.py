"""The GauSynth app: runs list, run board, preset editor, training monitor, previews.

`make_app()` builds the app for the launcher and the tests alike (Posting's `make_posting()`).
A thread worker tails the journals (≤ 4 polls a second) and posts typed messages; screens only
react to those messages and redraw from the shared `RunStore`.
"""

from __future__ import annotations

import argparse
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.worker import get_current_worker

from gausynth_engine import LayoutError, RunFinished, RunLayout, pid_alive

from .commands import GauSynthCommands
from .launch import RunRequest, start_run
from .messages import JournalBatch, RunLaunched, RunsChanged
from .store import RunStore

POLL_INTERVAL = 0.25  # seconds between journal polls: at most 4 redraws a second per change
SCAN_INTERVAL = 2.0  # seconds between looks for new run folders under the outputs root


class GauSynthApp(App[int]):
    """Views runs (never owns them): every run is a detached engine process with a journal."""

    TITLE = "GauSynth"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {GauSynthCommands}
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(self, outputs_root: Path, *, attach: Path | None = None, live: bool = True,
                 clock: Callable[[], float] = time.time, alive: Callable[[int], bool] = pid_alive,
                 poll_interval: float = POLL_INTERVAL, images: str = "auto",
                 cwd: Path | None = None) -> None:
        super().__init__()
        self.store = RunStore(outputs_root, alive=alive)
        self.attach = attach
        self.live = live  # False: no worker, no timers, no blinking (snapshots)
        self.clock = clock
        self.poll_interval = poll_interval
        # "auto"/"halfblocks": draw images with half blocks; "kitty"/"sixel": splat orbits with that
        # graphics protocol (widgets.graphics); "off": describe them
        self.images = images
        self.cwd = cwd
        self.watched: set[str] = set()
        self._wake = threading.Event()
        self.polls = 0  # journal polls done (the bench reads it)

    # --- lifecycle ------------------------------------------------------------------------------
    def on_mount(self) -> None:
        from .screens.board import BoardScreen
        from .screens.runs import RunsScreen

        self.store.scan()
        if self.attach is not None:
            self.store.add(RunLayout(self.attach.absolute()))
        self.store.load_all()
        self.push_screen(RunsScreen())
        if self.attach is not None:
            self.push_screen(BoardScreen(str(self.attach.absolute())))
        if self.live:
            self.tail_journals()

    def on_unmount(self) -> None:
        self._wake.set()

    @work(thread=True, exclusive=True, group="tail", name="journal tail")
    def tail_journals(self) -> None:
        """Polls journals and the outputs root; posts what is new as one `JournalBatch`."""
        worker = get_current_worker()
        last_scan = time.monotonic()
        while not worker.is_cancelled:
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            if worker.is_cancelled:
                return
            added: list[str] = []
            now = time.monotonic()
            full = now - last_scan >= SCAN_INTERVAL
            if full:
                last_scan = now
                added = self.store.scan()
            keys = None if full else sorted(set(self.store.live_keys()) | self.watched)
            batches = self.store.read_new(keys)
            self.polls += 1
            if batches or added or full:
                self.post_message(JournalBatch(batches, added))

    def poll_now(self) -> None:
        """Wakes the tailing worker for an immediate poll (after a command)."""
        self._wake.set()

    def on_journal_batch(self, message: JournalBatch) -> None:
        changed = set(message.added)
        for key, events in message.batches.items():
            if key in self.store.runs:
                was_running = self.store.runs[key].view.status == "running"
                self.store.apply(key, events)
                changed.add(key)
                if was_running and any(isinstance(e, RunFinished) for e in events):
                    self._say_finished(self.store.runs[key])  # seen live: not an old run's history
        changed.update(self.store.refresh_liveness())
        if changed:
            self.screen.post_message(RunsChanged(frozenset(changed)))

    def _say_finished(self, entry) -> None:
        """Notifies the end of a run seen live, with the first lines of its result card."""
        from gausynth_engine import read_card

        from .store import display_path

        lines = read_card(entry.layout, entry.view).lines(display_path)
        body = "\n".join(line for line in lines[1:] if not line.startswith(("folder", "next")))
        self.notify(body + "\ns on its board shows the result card", title=f"{entry.name}: {entry.view.status}",
                    severity="error" if entry.view.status == "failed" else "information", timeout=12)

    # --- actions shared by screens --------------------------------------------------------------
    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def launch(self, request: RunRequest) -> None:
        """Starts a detached run in a worker; `RunLaunched` says how it went."""
        self.notify(f"starting: {request.describe()}", timeout=4)
        self._launch(request)

    @work(thread=True, group="commands")
    def _launch(self, request: RunRequest) -> None:
        result = start_run(request, cwd=self.cwd)
        m = re.search(r"started run (.+?) \(pid \d+\)", result.message)
        self.post_message(RunLaunched(result.ok, result.message, m.group(1) if m else None))

    def on_run_launched(self, message: RunLaunched) -> None:
        busy = re.search(r"(\S+) is already being run by process (\d+) since ([\d-]+ [\d:]+)", message.message)
        if busy:  # the engine names the holder; in the app, its board is what to open
            folder, pid, since = busy.groups()
            self.notify(f"{Path(folder).name} is already running (process {pid}, since {since}): its board "
                        "shows it; c cancels it there, then start again", title="already running",
                        severity="warning", timeout=15)
            self.show_board(folder)
            return
        if not message.ok or message.folder is None:
            self.notify(message.message, title="the run did not start", severity="error", timeout=15)
            return
        self.notify(message.message.splitlines()[-1], title="run started", timeout=6)
        self.show_board(message.folder)

    def open_editor(self, preset: Path, run_key: str | None) -> None:
        """Opens the preset editor on a preset file (and, from a board, that run's snapshot)."""
        from .screens.editor import EditorScreen

        self.push_screen(EditorScreen(Path(preset), run_key))

    def show_board(self, folder: str) -> None:
        """Brings the board of a run folder to the top, reading its journal first."""
        from .screens.board import BoardScreen
        from .screens.runs import RunsScreen

        entry = self.store.add(RunLayout(Path(folder).absolute()))
        self.watched.add(entry.key)
        for key, events in self.store.read_new([entry.key]).items():
            self.store.apply(key, events)
        while len(self.screen_stack) > 2 and not isinstance(self.screen, RunsScreen):
            if isinstance(self.screen, BoardScreen) and self.screen.run_key == entry.key:
                break
            self.pop_screen()
        if not (isinstance(self.screen, BoardScreen) and self.screen.run_key == entry.key):
            self.push_screen(BoardScreen(entry.key))
        self.screen.post_message(RunsChanged(frozenset({entry.key})))
        self.poll_now()


def make_app(outputs_root: Path | str | None = None, *, attach: Path | str | None = None,
             live: bool = True, **options) -> GauSynthApp:
    """Gives the app over an outputs root, optionally opened on one run (`gausynth attach RUN`)."""
    from gausynth_engine import default_outputs_root

    root = Path(outputs_root) if outputs_root else default_outputs_root()
    return GauSynthApp(root, attach=Path(attach) if attach else None, live=live,
                       **options)


def run_app(args: list[str]) -> int:
    """Runs the app for `gausynth [attach RUN] [--root DIR]`; gives the exit code."""
    parser = argparse.ArgumentParser(prog="gausynth attach", description="The GauSynth app.")
    parser.add_argument("run", nargs="?", help="a run folder, or a run name under --root")
    # The same outputs root as the CLI's (`resolve_outputs_root`): --outputs-root, else
    # $GAUSYNTH_OUTPUTS_ROOT, else ~/.local/share/gausynth/runs.
    parser.add_argument("--outputs-root", "--root", dest="root", default=None,
                        help="the outputs root whose runs are listed")
    parser.add_argument("--no-images", action="store_true", help="describe images instead of drawing them")
    ns = parser.parse_args(args)
    from gausynth_engine import resolve_outputs_root

    root = resolve_outputs_root(ns.root)
    if ns.root:  # the runs the app starts (engine CLI subprocesses) land where it looks
        os.environ["GAUSYNTH_OUTPUTS_ROOT"] = str(root)
    attach = None
    if ns.run:
        from gausynth_engine import find_run

        try:
            attach = find_run(ns.run, str(root)).root
        except LayoutError as e:
            print(f"error: {e}")
            return 2
        if not ns.root:
            root = attach.parent
    from .widgets.graphics import detect

    # Ask the terminal for Kitty/sixel graphics now: once Textual runs, it reads the answers.
    app = make_app(root, attach=attach, images="off" if ns.no_images else detect())
    app.run()
    return app.return_code or 0
