"""The queue's journal (`<outputs_root>/.queue/events.jsonl`) and the state rebuilt from it.

Every process that changes the queue appends one event under an exclusive `flock`: the CLI
(add, move, cancel, retry), the runner (jobs started and finished, stages placed and released)
and, on a Ray cluster, the stage launchers. Nothing else is stored: a killed runner's successor
rebuilds everything from this file and from each run's own journal.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .._events import Event

QUEUE_FOLDER = ".queue"  # under the outputs root; a dot name can never be a run folder
STATES = ("waiting", "running", "done", "failed", "cancelled")


@dataclass(frozen=True)
class JobAdded(Event):
    type: ClassVar[str] = "job_added"
    job: str
    preset: str  # absolute path of the preset file
    sets: tuple[str, ...]  # --set overrides, run.outputs_root and run.directory included
    directory: str  # the run folder's name under the outputs root
    options: dict[str, Any] = field(default_factory=dict)  # start/until/only/force of `run`


@dataclass(frozen=True)
class JobMoved(Event):
    type: ClassVar[str] = "job_moved"
    job: str
    before: str | None  # the job it now stands before; None: the end of the queue


@dataclass(frozen=True)
class JobCancelled(Event):
    type: ClassVar[str] = "job_cancelled"
    job: str


@dataclass(frozen=True)
class JobRetried(Event):
    type: ClassVar[str] = "job_retried"
    job: str


@dataclass(frozen=True)
class JobStarted(Event):
    type: ClassVar[str] = "job_started"
    job: str
    pid: int  # the run's orchestrator process (`gausynth run`), in a session of its own
    start: str | None  # its start time in clock ticks, to tell a reused pid apart
    host: str


@dataclass(frozen=True)
class JobRequeued(Event):
    """A job whose run process died with the runner, unfinished: it waits again and resumes."""

    type: ClassVar[str] = "job_requeued"
    job: str
    reason: str


@dataclass(frozen=True)
class JobFinished(Event):
    type: ClassVar[str] = "job_finished"
    job: str
    status: str  # "done", "failed", "cancelled"
    error: str = ""


@dataclass(frozen=True)
class StagePlaced(Event):
    type: ClassVar[str] = "stage_placed"
    job: str
    stage: str
    gpus: tuple[int, ...]  # NVML indices (local) or the GPU ids Ray gave (cluster)
    cores: int
    vram: int  # bytes reserved on each GPU (a GPU's total when its need is unknown)
    host: str
    uuids: tuple[str, ...] = ()  # the GPUs' NVML UUIDs, pinned through CUDA_VISIBLE_DEVICES
    exclusive: bool = False  # its need was unknown: the GPU is its alone


@dataclass(frozen=True)
class StageReleased(Event):
    type: ClassVar[str] = "stage_released"
    job: str
    stage: str


@dataclass(frozen=True)
class RunnerStarted(Event):
    type: ClassVar[str] = "runner_started"
    pid: int
    host: str
    gpus: tuple[str, ...]  # "0: NVIDIA H200, 139.8 GiB" …
    cores: int
    max_runs: int
    cluster: str = ""  # the Ray address, or "" for this machine


@dataclass(frozen=True)
class RunnerStopped(Event):
    type: ClassVar[str] = "runner_stopped"
    reason: str


@dataclass(frozen=True)
class GpuSample(Event):
    """One NVML sample of one GPU, taken by the runner every ~0.5 s while runs are going."""

    type: ClassVar[str] = "gpu_sample"
    gpu: int
    vram_used: int | None = None  # bytes
    vram_total: int | None = None  # bytes
    utilization: float | None = None  # percent


QUEUE_EVENTS: dict[str, type[Event]] = {
    cls.type: cls for cls in (JobAdded, JobMoved, JobCancelled, JobRetried, JobStarted, JobRequeued,
                              JobFinished, StagePlaced, StageReleased, RunnerStarted, RunnerStopped,
                              GpuSample)
}


def queue_event_from_dict(data: dict[str, Any]) -> Event | None:
    """Gives the queue event a JSON object describes, or None for a type this version does not know."""
    data = dict(data)
    cls = QUEUE_EVENTS.get(data.pop("type", ""))
    if cls is None:
        return None
    kinds = {f.name: f.type for f in dataclasses.fields(cls)}
    kept = {k: tuple(v) if isinstance(v, list) and "tuple" in str(kinds[k]) else v
            for k, v in data.items() if k in kinds}
    return cls(**kept)


# --- the state --------------------------------------------------------------------------------
@dataclass
class Job:
    """One run of the queue, as its events tell it."""

    id: str
    preset: str
    sets: tuple[str, ...]
    directory: str
    options: dict[str, Any]
    state: str = "waiting"
    attempts: int = 0
    pid: int | None = None
    start: str | None = None
    host: str = ""
    error: str = ""
    cancel_asked: bool = False
    placed: dict[str, StagePlaced] = field(default_factory=dict)  # stage -> its place, while held
    history: list[StagePlaced] = field(default_factory=list)  # every placement, in order

    @property
    def gpus(self) -> tuple[int, ...]:
        """The GPUs its running stages hold now."""
        return tuple(sorted({g for p in self.placed.values() for g in p.gpus}))

    @property
    def stage(self) -> str:
        return ", ".join(self.placed) if self.placed else ""


@dataclass
class QueueView:
    jobs: dict[str, Job] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # every job id, in queue order
    runner: RunnerStarted | None = None
    runner_stopped: bool = True
    samples: list[GpuSample] = field(default_factory=list)

    def apply(self, e: Event) -> None:
        if isinstance(e, JobAdded):
            self.jobs[e.job] = Job(e.job, e.preset, tuple(e.sets), e.directory, dict(e.options))
            self.order.append(e.job)
            return
        if isinstance(e, RunnerStarted):
            self.runner, self.runner_stopped = e, False
            return
        if isinstance(e, RunnerStopped):
            self.runner_stopped = True
            return
        if isinstance(e, GpuSample):
            self.samples.append(e)
            return
        job = self.jobs.get(getattr(e, "job", ""))
        if job is None:
            return
        if isinstance(e, JobMoved):
            self.order.remove(job.id)
            at = self.order.index(e.before) if e.before in self.order else len(self.order)
            self.order.insert(at, job.id)
        elif isinstance(e, JobCancelled):
            if job.state == "waiting":
                job.state = "cancelled"
            elif job.state == "running":
                job.cancel_asked = True
        elif isinstance(e, JobRetried):
            if job.state in ("failed", "cancelled"):
                job.state, job.error, job.cancel_asked = "waiting", "", False
        elif isinstance(e, JobStarted):
            job.state, job.pid, job.start, job.host = "running", e.pid, e.start, e.host
            job.attempts += 1
            job.placed.clear()
        elif isinstance(e, JobRequeued):
            job.state, job.pid, job.error = "waiting", None, e.reason
            job.placed.clear()
        elif isinstance(e, JobFinished):
            job.state, job.error, job.cancel_asked = e.status, e.error, False
            job.placed.clear()
        elif isinstance(e, StagePlaced):
            job.placed[e.stage] = e
            job.history.append(e)
        elif isinstance(e, StageReleased):
            job.placed.pop(e.stage, None)

    def in_order(self, state: str | None = None) -> list[Job]:
        return [self.jobs[j] for j in self.order if state is None or self.jobs[j].state == state]


# --- the file ---------------------------------------------------------------------------------
class QueueJournal:
    """The queue folder: its journal, the runner's lock and log."""

    def __init__(self, outputs_root: Path) -> None:
        self.root = Path(outputs_root).absolute() / QUEUE_FOLDER
        self.path = self.root / "events.jsonl"

    @property
    def lock(self) -> Path:
        return self.root / "runner.lock"

    @property
    def log(self) -> Path:
        return self.root / "runner.log"

    @property
    def outputs_root(self) -> Path:
        return self.root.parent

    @property
    def socket(self) -> Path:
        """Where the runner listens for stage claims (short: a Unix socket path has ~100 bytes)."""
        digest = hashlib.sha1(str(self.root).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"gausynth-{os.getuid()}" / f"queue-{digest}.sock"

    def reader(self) -> QueueReader:
        return QueueReader(self.path)

    def read(self) -> QueueView:
        view = QueueView()
        for e in self._events():
            view.apply(e)
        return view

    def append(self, *events: Event) -> None:
        with self.locked():
            self._write(events)

    @contextmanager
    def transaction(self) -> Iterator[tuple[QueueView, list[Event]]]:
        """Gives (the view, a list to fill) under the lock; the events are appended on exit."""
        with self.locked():
            pending: list[Event] = []
            yield self.read(), pending
            self._write(pending)

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "events.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _write(self, events: tuple[Event, ...] | list[Event]) -> None:
        if not events:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(e.to_json() + "\n" for e in events))
            f.flush()
            os.fsync(f.fileno())

    def _events(self) -> Iterator[Event]:
        yield from QueueReader(self.path).read_new()


class QueueReader:
    """Reads the queue journal incrementally: each `read_new()` gives the events appended since."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read_new(self) -> list[Event]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # an unfinished last line waits for its end
        events = []
        for line in lines:
            if not line.strip():
                continue
            try:
                event = queue_event_from_dict(json.loads(line))
            except (ValueError, TypeError):
                continue  # a torn line of a killed writer is not worth stopping for
            if event is not None:
                events.append(event)
        return events
