"""How a stage declares itself, and what its code sees while it runs (`StageContext`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import StageError

if TYPE_CHECKING:
    from ._layout import RunLayout
    from ._preset import Preset

__all__ = ["Stage", "StageContext", "StageError"]  # StageError lives in _errors (the bottom)


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline, as the planner and orchestrator know it.

    `run(ctx)` does the work inside a worker subprocess; it must import heavy libraries (torch,
    cv2, diffusers, pycolmap) inside itself so that planning stays fast. `run=None` declares a
    stage whose implementation has not landed: it refuses to run and says so.
    """

    id: str
    title: str
    section: str  # the preset section it reads entirely (shared by the two splat variants)
    after: tuple[str, ...]  # upstream stages whose outputs it reads
    outputs: tuple[str, ...]  # paths relative to the run folder that it writes
    version: int
    run: Callable[[StageContext], None] | None
    reads: tuple[str, ...] = ()  # fields of other sections it reads, as "section.field"
    gpu: bool = False
    # Gives why the stage is off for a preset, or None when it runs.
    off_when: Callable[[Preset], str | None] | None = None
    pending_issue: str = ""  # where the missing implementation is tracked

    def off_reason(self, preset: Preset) -> str | None:
        return self.off_when(preset) if self.off_when else None


class StageContext:
    """What a stage's `run` gets: its params, where to read, where to write, how to report.

    `layout` is the run folder (inputs); `out` is the stage's staging folder with the same
    layout: everything the stage writes goes there, and is renamed into place only after the
    stage returns without error.
    """

    def __init__(self, stage: Stage, preset: Preset, layout: RunLayout, out: RunLayout,
                 emit: Callable[[dict[str, Any]], None], device: str) -> None:
        self.stage = stage
        self.preset = preset
        self.layout = layout
        self.out = out
        self.device = device  # "cuda" or "cpu"
        self._emit = emit
        self.record_data: dict[str, Any] = {}
        self._last_progress = 0.0

    @property
    def params(self) -> Any:
        """The stage's own preset section (a frozen dataclass)."""
        return self.preset.section(self.stage.section)

    def progress(self, value: float, total: float, unit: str = "", *, force: bool = False) -> None:
        """Reports progress; coalesced to at most ~10 per second except the last one."""
        now = time.monotonic()
        if force or value >= total or now - self._last_progress >= 0.1:
            self._last_progress = now
            self._emit({"type": "progress", "value": value, "total": total, "unit": unit})

    def log(self, message: str, level: str = "info") -> None:
        self._emit({"type": "log", "level": level, "message": message})

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        self._emit({"type": "metric", "name": name, "value": float(value), "step": step})

    def artifact(self, path: Path, kind: str) -> None:
        """Announces a file viewers may show (a preview image, a video); `path` may be staged."""
        self._emit({"type": "artifact", "kind": kind, "path": str(self._final_path(path))})

    def record(self, **data: Any) -> None:
        """Adds JSON-able facts (key-frame indices, the seed used) to the stage's manifest."""
        self.record_data.update(data)

    def _final_path(self, path: Path) -> Path:
        """Maps a path under the staging folder to where it will live once renamed in."""
        try:
            return self.layout.root / Path(path).relative_to(self.out.root)
        except ValueError:
            return Path(path)
