"""The runs the app knows: one journal reader and one reduced `RunView` per run folder.

Pure Python (no Textual): the app's tailing worker reads journals here, the screens read views.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gausynth_engine import STAGES, Event, JournalReader, RunFinished, RunLayout, RunView, pid_alive

STAGE_IDS: tuple[str, ...] = tuple(s.id for s in STAGES)
STAGE_TITLES: dict[str, str] = {s.id: s.title for s in STAGES}


@dataclass
class RunEntry:
    """One run folder: its layout, the reader that tails its journal, and the state so far."""

    layout: RunLayout
    reader: JournalReader
    view: RunView = field(default_factory=RunView)

    @property
    def name(self) -> str:
        return self.layout.root.name

    @property
    def key(self) -> str:
        return str(self.layout.root)

    @property
    def live(self) -> bool:
        """Whether the journal may still grow (the run has not finished)."""
        return self.view.status in ("new", "running")


class RunStore:
    """Every run under an outputs root (plus runs attached by path), tailed incrementally.

    `alive(pid)` says whether an orchestrator process still exists; a run whose journal stops
    without `run_finished` and whose process is gone is shown as "died".
    """

    def __init__(self, outputs_root: Path, alive: Callable[[int], bool] = pid_alive) -> None:
        self.outputs_root = Path(outputs_root)
        self.alive = alive
        self.runs: dict[str, RunEntry] = {}

    # --- discovery -----------------------------------------------------------------------------
    def scan(self) -> list[str]:
        """Adds run folders that appeared under the outputs root; gives their keys."""
        root = self.outputs_root
        if not root.is_dir():
            return []
        added = []
        for p in sorted(root.iterdir()):
            if (p / ".gausynth").is_dir() and str(RunLayout(p.absolute()).root) not in self.runs:
                added.append(self.add(RunLayout(p.absolute())).key)
        return added

    def add(self, layout: RunLayout) -> RunEntry:
        """Gives the entry of a run folder, creating it (unread) if new."""
        key = str(layout.root)
        if key not in self.runs:
            self.runs[key] = RunEntry(layout, JournalReader(layout.journal))
        return self.runs[key]

    # --- tailing -------------------------------------------------------------------------------
    def read_new(self, keys: list[str] | None = None) -> dict[str, list[Event]]:
        """Gives the events appended since the last call, per run (I/O only: safe in a thread)."""
        out = {}
        for key in keys if keys is not None else list(self.runs):
            entry = self.runs.get(key)
            if entry is None:
                continue
            events = entry.reader.read_new()
            if events:
                out[key] = events
        return out

    def apply(self, key: str, events: list[Event]) -> None:
        """Folds events into a run's view (on the UI thread: views are read while rendering)."""
        view = self.runs[key].view
        for e in events:
            view.apply(e)
        if events and isinstance(events[-1], RunFinished):
            return
        self._check_died(self.runs[key])

    def _check_died(self, entry: RunEntry) -> None:
        v = entry.view
        if v.status == "running" and v.pid and not self.alive(v.pid):
            v.status = "died"
            v.settle(entry.layout.meta)  # its stages are no longer "running … ETA"

    def refresh_liveness(self) -> list[str]:
        """Marks runs whose orchestrator vanished; gives the keys that changed."""
        changed = []
        for entry in self.runs.values():
            before = entry.view.status
            self._check_died(entry)
            if entry.view.status != before:
                changed.append(entry.key)
        return changed

    def load_all(self) -> None:
        """Reads every known journal to its end (what a viewer does when it attaches)."""
        for key, events in self.read_new().items():
            self.apply(key, events)
        self.refresh_liveness()

    def live_keys(self) -> list[str]:
        return [k for k, e in self.runs.items() if e.live]

    def ordered(self) -> list[RunEntry]:
        """Gives the runs, most recent activity first."""
        return sorted(self.runs.values(), key=lambda e: -(e.view.last_event or 0.0))


def ago(t: float | None, now: float) -> str:
    """Gives how long ago `t` was, in a few characters ("12s ago", "3h ago")."""
    if t is None:
        return "–"
    s = max(0.0, now - t)
    for limit, div, unit in ((60, 1, "s"), (3600, 60, "m"), (86400, 3600, "h")):
        if s < limit:
            return f"{int(s // div)}{unit} ago"
    return f"{int(s // 86400)}d ago"


def display_path(path: str | Path) -> str:
    """Gives a path relative to the current folder when it lies inside it (shorter on screen)."""
    p = Path(path)
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def clock_text(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "–"
