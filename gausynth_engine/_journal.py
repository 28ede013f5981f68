"""The run journal (`.gausynth/events.jsonl`) and the state any viewer rebuilds from it."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import types
import typing
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from ._events import (
    EVENT_TYPES,
    Artifact,
    Event,
    Log,
    Metric,
    Progress,
    RunFinished,
    RunStarted,
    StageCancelled,
    StageDone,
    StageFailed,
    StagePlanned,
    StageStarted,
    Telemetry,
    event_from_dict,
)
from ._lock import ProcessId, probe


class JournalWriter:
    """Appends events to the journal, one flushed line each (the orchestrator is the only writer)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the run

    def write(self, event: Event) -> None:
        try:
            self._file.write(event.to_json() + "\n")
            self._file.flush()
        except OSError as e:  # name the journal: a full disk's error carries no path here
            raise OSError(e.errno, e.strerror, str(self.path)) from None

    def close(self) -> None:
        self._file.close()


class JournalReader:
    """Reads a journal incrementally: each `read_new()` gives the events appended since the last."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._line = 0
        self._partial = b""
        self.skipped: list[str] = []  # one warning per line that was not a valid event

    def read_new(self) -> list[Event]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an unfinished last line waits for its end
        events = []
        for line in lines:
            self._line += 1
            if not line.strip():
                continue
            event, why = parse_event(line)
            if why:  # a torn or damaged line is not worth stopping a viewer for: say it, go on
                self.skipped.append(f"{self.path}:{self._line}: skipped ({why})")
            elif event is not None:
                events.append(event)
        return events


def parse_event(line: bytes | str) -> tuple[Event | None, str]:
    """Gives (event, "") for a well-formed journal line, (None, "") for an unknown type, or
    (None, why) for a line that is not JSON or whose fields have the wrong types."""
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None, "not JSON"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    cls = EVENT_TYPES.get(data.get("type", "")) if isinstance(data.get("type"), str) else None
    if cls is None:
        return None, "" if isinstance(data.get("type"), str) else "no event type"
    for name, hint in _hints(cls).items():
        if name in data and not _fits(data[name], hint):
            return None, f"{cls.type}.{name} = {data[name]!r} is not {_hint_name(hint)}"
    try:
        return event_from_dict(data), ""
    except TypeError as e:
        return None, f"{cls.type}: {e}"


@cache
def _hints(cls: type) -> dict[str, object]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _fits(value: object, hint: object) -> bool:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _hint_name(hint: object) -> str:
    return getattr(hint, "__name__", str(hint))


def read_journal(path: Path) -> list[Event]:
    """Gives every complete event of a journal."""
    return JournalReader(path).read_new()


def follow_journal(path: Path, poll: float = 0.2, stop_when_finished: bool = True,
                   alive: Callable[[], bool] | None = None) -> Iterator[Event]:
    """Yields the journal's events, then new ones as they come (like `tail -f`).

    With `alive`, it also ends once the writer is gone (checked when nothing new came).
    """
    reader = JournalReader(path)
    while True:
        events = reader.read_new()
        yield from events
        if stop_when_finished and events and isinstance(events[-1], RunFinished):
            return
        if not events:
            if alive is not None and not alive():
                yield from reader.read_new()  # what it wrote just before it went
                return
            time.sleep(poll)


STATES = ("pending", "running", "done", "skipped", "failed", "cancelled", "off", "out")


@dataclass
class StageView:
    """What is known of one stage, rebuilt from events."""

    id: str
    state: str = "pending"
    reason: str = ""
    value: float = 0.0
    total: float = 0.0
    unit: str = ""
    started: float | None = None
    ended: float | None = None
    pid: int | None = None
    proc: ProcessId | None = None  # the worker, as its start event named it
    fingerprint: str = ""
    error: str = ""
    detail: str = ""
    log_file: str = ""
    peak_vram: int | None = None
    logs: deque[Log] = field(default_factory=lambda: deque(maxlen=500))
    metrics: dict[str, list[tuple[int | None, float]]] = field(default_factory=dict)
    artifacts: list[Artifact] = field(default_factory=list)
    # Progress samples (time, value) for the rate and ETA over a sliding window.
    _rate_window: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=50))

    @property
    def fraction(self) -> float:
        return min(1.0, self.value / self.total) if self.total else 0.0

    @property
    def rate(self) -> float | None:
        """Gives units per second over the recent window, or None before two samples."""
        w = self._rate_window
        if len(w) < 2 or w[-1][0] <= w[0][0]:
            return None
        return (w[-1][1] - w[0][1]) / (w[-1][0] - w[0][0])

    @property
    def eta(self) -> float | None:
        """Gives the seconds left at the recent rate, or None when unknown."""
        rate = self.rate
        if not rate or rate <= 0 or self.state != "running":
            return None
        return max(0.0, (self.total - self.value) / rate)


@dataclass
class RunView:
    """A run's whole state, rebuilt from its journal alone (how viewers attach and re-attach)."""

    stages: dict[str, StageView] = field(default_factory=dict)
    status: str = "new"  # "new", "running", "done", "failed", "cancelled"
    pid: int | None = None
    preset: str = ""
    command: str = ""
    started: float | None = None
    last_event: float | None = None
    telemetry: deque[Telemetry] = field(default_factory=lambda: deque(maxlen=240))
    events: int = 0
    orchestrator: ProcessId | None = None
    note: str = ""  # what liveness or the manifests added to the journal's story
    warnings: list[str] = field(default_factory=list)  # journal lines that were skipped

    def stage(self, stage_id: str) -> StageView:
        if stage_id not in self.stages:
            self.stages[stage_id] = StageView(stage_id)
        return self.stages[stage_id]

    def apply(self, e: Event) -> None:
        """Folds one event into the state."""
        self.events += 1
        self.last_event = e.t
        if isinstance(e, RunStarted):
            self.status, self.pid, self.preset, self.command, self.started = (
                "running", e.pid, e.preset, e.command, e.t)
            self.orchestrator = ProcessId(e.pid, e.start, e.host, e.boot) if e.host else None
            self.note = ""
        elif isinstance(e, StagePlanned):
            s = self.stage(e.stage)
            if e.action == "out" and s.state in ("done", "skipped"):
                s.reason = f"{e.reason}; {s.state} before"  # out of range now, still current
            else:
                s.reason = e.reason
                s.state = {"run": "pending", "skip": "skipped"}.get(e.action, e.action)
        elif isinstance(e, StageStarted):
            s = self.stage(e.stage)
            s.state, s.started, s.ended, s.pid, s.log_file = "running", e.t, None, e.pid, e.log
            s.proc = ProcessId(e.pid, e.start, e.host, e.boot) if e.host else None
            s.fingerprint = e.fingerprint
            s.error, s.detail, s.value, s.total = "", "", 0.0, 0.0
            s._rate_window.clear()
        elif isinstance(e, Progress):
            s = self.stage(e.stage)
            s.value, s.total, s.unit = e.value, e.total, e.unit
            s._rate_window.append((e.t, e.value))
        elif isinstance(e, Log):
            self.stage(e.stage).logs.append(e)
        elif isinstance(e, Metric):
            self.stage(e.stage).metrics.setdefault(e.name, []).append((e.step, e.value))
        elif isinstance(e, Artifact):
            self.stage(e.stage).artifacts.append(e)
        elif isinstance(e, Telemetry):
            self.telemetry.append(e)
        elif isinstance(e, StageDone):
            s = self.stage(e.stage)
            s.state, s.ended, s.peak_vram = "done", e.t, e.peak_vram
            s.reason = f"done in {e.seconds:.1f} s"
        elif isinstance(e, StageFailed):
            s = self.stage(e.stage)
            s.state, s.ended, s.error, s.detail = "failed", e.t, e.error, e.detail
        elif isinstance(e, StageCancelled):
            s = self.stage(e.stage)
            s.state, s.ended = "cancelled", e.t
        elif isinstance(e, RunFinished):
            self.status = e.status
            for s in self.stages.values():  # a stage left hanging belongs to a dead worker
                if s.state == "running":
                    s.state = "cancelled" if e.status == "cancelled" else "failed"

    @classmethod
    def from_journal(cls, path: Path) -> RunView:
        """Gives a run's state from its journal, checked against liveness and the manifests."""
        view = cls()
        reader = JournalReader(path)
        for e in reader.read_new():
            view.apply(e)
        view.warnings = reader.skipped
        view.settle(Path(path).parent)
        return view

    def settle(self, meta: Path) -> None:
        """Corrects what the journal alone would claim: a dead writer, a lost journal.

        `meta` is the run's `.gausynth` folder (its lock and manifests)."""
        if self.status == "running":
            orchestrator = self.orchestrator
            alive = (orchestrator.alive() if orchestrator is not None
                     else (pid_alive(self.pid) if self.pid else False))
            if alive is False:
                self.status = "died"  # killed, rebooted: it never wrote run_finished
            elif alive is None and not probe(meta / "lock").held and not (meta / "lock").exists():
                self.status = "died"
            elif alive is None and orchestrator is not None:
                self.note = f"runs on host {orchestrator.host}; its liveness cannot be checked here"
        if self.status == "died":
            orphans = []
            for s in self.stages.values():
                if s.state != "running":
                    continue
                if s.proc is not None and s.proc.alive():
                    orphans.append(s)
                    s.reason = (f"orphan worker {s.pid} of the dead run, still running; "
                                "`gausynth cancel` stops it")
                elif s.fingerprint and _manifest_fingerprint(meta, s.id) == s.fingerprint:
                    # Its outputs were placed and recorded; the run died before saying so.
                    s.state, s.reason = "done", "done (its manifest was written just before the run died)"
                else:
                    s.state, s.error = "failed", "interrupted: its run died while it ran (nothing was kept)"
                    s.ended = s.ended or self.last_event
            self.note = (f"the run process {self.pid} died without finishing"
                         + (f"; {len(orphans)} orphan worker(s) still run" if orphans else "")
                         + "; a plain `gausynth run` resumes it")
        if self.events == 0:
            done = sorted((meta / "manifests").glob("*.json")) if (meta / "manifests").is_dir() else []
            if done:
                for m in done:
                    s = self.stage(m.stem)
                    s.state = "done"
                    s.reason = "done (says its manifest; the journal is gone)"
                self.status = "running" if probe(meta / "lock").held else "stopped"
                self.note = (f"no journal at {meta / 'events.jsonl'}; the states come from "
                             f"{len(done)} manifest(s)")


def _manifest_fingerprint(meta: Path, stage_id: str) -> str | None:
    try:
        data = json.loads((meta / "manifests" / f"{stage_id}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("fingerprint") if isinstance(data, dict) else None


def pid_alive(pid: int) -> bool:
    """Gives whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
