"""How a stage declares itself, and what its code sees while it runs (`StageContext`).

A stage reads what its upstream stages left through `ctx.upstream(id)` (an `Upstream` record
from the stage's manifest), never through the planner.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import StageError

if TYPE_CHECKING:
    from ._layout import RunLayout
    from ._preset import Preset

__all__ = ["Stage", "StageContext", "StageError", "Upstream"]  # StageError lives in _errors (the bottom)


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
    outputs: tuple[str, ...]  # paths relative to the run folder that it writes (every one, every run)
    version: int
    run: Callable[[StageContext], None] | None
    # The dataclass of its preset section (fields made with `param()`): the preset schema is built
    # from these declarations (stages/__init__.py), so a new stage brings its own section.
    params: type | None = None
    reads: tuple[str, ...] = ()  # fields of other sections it reads, as "section.field"
    may_write: tuple[str, ...] = ()  # paths it writes only in some presets (e.g. exports/)
    gpu: bool = False
    # Gives why the stage is off for a preset, or None when it runs.
    off_when: Callable[[Preset], str | None] | None = None
    # Gives the stages of `after` that it does not read under a preset (e.g. the reimagined
    # 3DGS reads the original one only when it fine-tunes it): it neither waits for them nor
    # takes their fingerprints.
    unread_when: Callable[[Preset], tuple[str, ...]] | None = None
    pending_issue: str = ""  # where the missing implementation is tracked

    def off_reason(self, preset: Preset) -> str | None:
        return self.off_when(preset) if self.off_when else None

    def upstreams(self, preset: Preset) -> tuple[str, ...]:
        """Gives the stages of `after` it reads under `preset`."""
        unread = self.unread_when(preset) if self.unread_when else ()
        return tuple(up for up in self.after if up not in unread)


@dataclass(frozen=True)
class Upstream:
    """What a finished upstream stage left: its fingerprint, placed outputs and recorded facts.

    A stage that has not finished (or is off in this route) gives `ran` False and empty fields.
    """

    id: str
    fingerprint: str = ""
    outputs: tuple[str, ...] = ()
    record: dict[str, Any] = field(default_factory=dict)  # what its ctx.record() said

    @property
    def ran(self) -> bool:
        return bool(self.fingerprint)


class StageContext:
    """What a stage's `run` gets: its params, where to read, where to write, how to report.

    `layout` is the run folder (inputs); `out` is the stage's staging folder with the same
    layout: everything the stage writes goes there, and is renamed into place only after the
    stage returns without error.
    """

    def __init__(self, stage: Stage, preset: Preset, layout: RunLayout, out: RunLayout,
                 emit: Callable[[dict[str, Any]], None], device: str,
                 upstreams: Collection[str] | None = None) -> None:
        self.stage = stage
        # The stages it may read (its upstreams and theirs); None: not checked (a test's context).
        self.upstreams = frozenset(upstreams) if upstreams is not None else None
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

    def upstream(self, stage_id: str) -> Upstream:
        """Gives what upstream stage `stage_id` left in the run folder (its manifest's record)."""
        from ._manifest import read_manifest

        if self.upstreams is not None and stage_id not in self.upstreams:
            raise StageError(f"stage {self.stage.id} reads {stage_id}, which is not upstream of it "
                             f"(upstream: {', '.join(sorted(self.upstreams)) or 'none'}); declare it in after=")
        manifest = read_manifest(self.layout, stage_id) or {}
        record = manifest.get("record")
        return Upstream(stage_id, str(manifest.get("fingerprint", "")),
                        tuple(str(o) for o in manifest.get("outputs", [])),
                        dict(record) if isinstance(record, dict) else {})

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


def check_outputs(stage: Stage, staged: Path) -> None:
    """Raises StageError when a stage left a declared output unwritten or wrote an undeclared path.

    `staged` is the stage's staging folder. Shared folders (new_videos, gs, exports) are checked
    entry by entry; empty folders (made by merely naming a layout path) count as nothing written.
    """
    from ._layout import SHARED_FOLDERS

    missing = [o for o in stage.outputs if not (staged / o).exists()]
    if missing:
        raise StageError(f"stage {stage.id} did not write its declared output {missing[0]} "
                         f"(declared: {', '.join(stage.outputs)})")
    written = []
    for top in sorted(staged.iterdir()) if staged.is_dir() else []:
        shared = top.name in SHARED_FOLDERS and top.is_dir()
        written += [p for p in (sorted(top.iterdir()) if shared else [top]) if not _empty_folder(p)]
    allowed = (*stage.outputs, *stage.may_write)
    for path in written:
        rel = path.relative_to(staged).as_posix()
        if not any(rel == o or rel.startswith(o.rstrip("/") + "/") for o in allowed):
            raise StageError(f"stage {stage.id} wrote {rel}, which it does not declare (outputs: "
                             f"{', '.join(allowed)}); declare it in the stage's outputs or may_write")


def _empty_folder(path: Path) -> bool:
    return path.is_dir() and all(_empty_folder(p) for p in path.iterdir())
