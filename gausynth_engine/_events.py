"""Run events: small frozen dataclasses, one JSON line each in the run's journal."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    """Base of every journal event; `t` is the Unix time it happened."""

    type: ClassVar[str] = ""
    t: float = field(default_factory=time.time, kw_only=True)

    def to_json(self) -> str:
        return json.dumps({"type": self.type, **dataclasses.asdict(self)}, ensure_ascii=False)


@dataclass(frozen=True)
class RunStarted(Event):
    type: ClassVar[str] = "run_started"
    pid: int
    preset: str  # the preset file the run was started from
    command: str  # what was asked: "run", "run --only sfm", ...
    # Who the orchestrator is, beyond its pid (so that a reused pid is never mistaken for it).
    start: str | None = None  # process start time, clock ticks since boot
    host: str = ""
    boot: str = ""


@dataclass(frozen=True)
class StagePlanned(Event):
    type: ClassVar[str] = "stage_planned"
    stage: str
    action: str  # "run", "skip" (unchanged), "off" (not in this preset), "out" (outside --from/--until)
    reason: str


@dataclass(frozen=True)
class StageStarted(Event):
    type: ClassVar[str] = "stage_started"
    stage: str
    pid: int  # the worker; also its process group
    fingerprint: str
    log: str  # the stage's log file
    start: str | None = None  # the worker's start time (see RunStarted)
    host: str = ""
    boot: str = ""


@dataclass(frozen=True)
class Progress(Event):
    type: ClassVar[str] = "progress"
    stage: str
    value: float
    total: float
    unit: str = ""


@dataclass(frozen=True)
class Log(Event):
    type: ClassVar[str] = "log"
    stage: str
    message: str
    level: str = "info"  # "info", "warning", "error"


@dataclass(frozen=True)
class Metric(Event):
    type: ClassVar[str] = "metric"
    stage: str
    name: str
    value: float
    step: int | None = None


@dataclass(frozen=True)
class Artifact(Event):
    type: ClassVar[str] = "artifact"
    stage: str
    kind: str  # "image", "video", "ply", ...
    path: str


@dataclass(frozen=True)
class Telemetry(Event):
    """One GPU sample; None fields are unsupported there (shown as N/A)."""

    type: ClassVar[str] = "telemetry"
    device: str  # the GPU's name, or why there is none
    vram_used: int | None = None  # bytes
    vram_total: int | None = None  # bytes
    utilization: float | None = None  # percent
    gpu: int | None = None  # the NVML index sampled (a queue pins stages to GPUs)


@dataclass(frozen=True)
class StageDone(Event):
    type: ClassVar[str] = "stage_done"
    stage: str
    seconds: float
    peak_vram: int | None = None  # bytes torch allocated at most in the worker
    peak_rss: int | None = None  # bytes


@dataclass(frozen=True)
class StageFailed(Event):
    type: ClassVar[str] = "stage_failed"
    stage: str
    error: str  # one line for people
    detail: str = ""  # the traceback, when there is one


@dataclass(frozen=True)
class StageCancelled(Event):
    type: ClassVar[str] = "stage_cancelled"
    stage: str


@dataclass(frozen=True)
class RunFinished(Event):
    type: ClassVar[str] = "run_finished"
    status: str  # "done", "failed", "cancelled"
    seconds: float


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (RunStarted, StagePlanned, StageStarted, Progress, Log, Metric, Artifact,
                Telemetry, StageDone, StageFailed, StageCancelled, RunFinished)
}


def event_from_dict(data: dict[str, Any]) -> Event | None:
    """Gives the event a JSON object describes, or None for a type this version does not know."""
    data = dict(data)
    cls = EVENT_TYPES.get(data.pop("type", ""))
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
