"""The stage graph: every stage, in the order the orchestrator runs them, and the routes.

`run.pipeline` picks a route; a stage outside its route is "off" with the route as the reason.
- reimagine (2D): preprocess → sheet → reimagine → propagate (optical flow) → sfm → mask →
  blend → upscale → splat_orig, splat_reim (on the upscaled squares placed in the SfM frames).
- reimagine-3d: preprocess → sfm → mask → splat_orig → sheet → reimagine → transfer (key views
  carried through the original 3DGS) → splat_reim on `reim3d_frames/`.
- reimagine-sync: preprocess → sfm → mask → splat_orig → sync (synchronised diffusion over the
  original Gaussians) → splat_reim on `reim3d_frames/`.
- original: preprocess → sfm → mask → splat_orig.

A stage is one module here plus one line in `DECLARED` below. Its declaration (`Stage`: id,
upstreams, outputs, its preset section's `Params`, the fields of other sections it reads) is all
the planner, the orchestrator and the preset schema know of it: the schema's sections come from
the declarations, in the list's order. The run order is the list's order with every stage moved
after its upstreams (`run_order`): one topological order valid for every route (a test checks
it). In the 3D route the diffusion runs before SfM, which changes no fingerprint: a new prompt
reruns reimagine, transfer and splat_reim only.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from .._stage import Stage
from . import (
    blend,
    export,
    mask,
    preprocess,
    propagate,
    reimagine,
    sfm,
    sheet,
    splat,
    sync,
    transfer,
    upscale,
)
from ._common import ROUTES_3D

if TYPE_CHECKING:
    from .._preset import Preset

# Stages each route leaves out (on top of each stage's own off_when).
OFF_IN_ROUTE: dict[str, frozenset[str]] = {
    "reimagine": frozenset({"transfer", "sync"}),
    "reimagine-3d": frozenset({"propagate", "blend", "upscale", "sync"}),
    "reimagine-sync": frozenset({"sheet", "reimagine", "propagate", "blend", "upscale", "transfer"}),
    "original": frozenset({"transfer", "sync"}),
}
_WHY = {"transfer": "the 2D route carries key frames by optical flow (propagate)",
        "sync": "synchronised diffusion belongs to the reimagine-sync route",
        "propagate": "the 3D routes carry the restyle through the original 3DGS",
        "blend": "the 3D routes' frames are cut out by the original's silhouette already",
        "upscale": "the 3D routes render frames at the SfM size already",
        "sheet": "the synchronised route diffuses every chosen view itself",
        "reimagine": "the synchronised route diffuses every chosen view itself"}


def _in_route(stage: Stage) -> Stage:
    """Gives the stage with the route table in front of its own off_when."""
    own = stage.off_when

    def off(preset: Preset) -> str | None:
        route = preset.run.pipeline
        if stage.id in OFF_IN_ROUTE.get(route, ()):
            why = "no diffusion" if route == "original" else _WHY.get(stage.id, "not in this route")
            return f"run.pipeline = {route!r} ({why})"
        return own(preset) if own else None

    return dataclasses.replace(stage, off_when=off)


# Every stage, one line each, in the preset schema's section order.
DECLARED: tuple[Stage, ...] = (
    preprocess.STAGE,
    sheet.STAGE,
    reimagine.STAGE,
    propagate.STAGE,
    mask.STAGE,
    blend.STAGE,
    upscale.STAGE,
    sfm.STAGE,
    splat.STAGE_ORIG,
    splat.STAGE_REIM,
    transfer.STAGE,
    sync.STAGE,
)
# Sections no stage of their own declares: export is run by the splat stages after training.
EXTRA_SECTIONS: dict[str, type] = {"export": export.Params}


def run_order(stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
    """Gives the stages in list order, each moved after its upstreams (a stable topological order)."""
    placed: list[Stage] = []
    waiting = list(stages)
    while waiting:
        done = {s.id for s in placed}
        ready = next((s for s in waiting if set(s.after) <= done), None)
        if ready is None:
            raise ValueError(f"stages {', '.join(s.id for s in waiting)} wait on each other or on "
                             "an undeclared stage")
        placed.append(ready)
        waiting.remove(ready)
    return tuple(placed)


STAGES: tuple[Stage, ...] = tuple(_in_route(s) for s in run_order(DECLARED))

BY_ID: dict[str, Stage] = {s.id: s for s in STAGES}


def upstream_of(stage_id: str) -> frozenset[str]:
    """Gives every stage whose outputs `stage_id` may read: its upstreams, theirs, and so on."""
    seen: set[str] = set()
    todo = list(BY_ID[stage_id].after)
    while todo:
        up = todo.pop()
        if up not in seen:
            seen.add(up)
            todo.extend(BY_ID[up].after)
    return frozenset(seen)


def _sections(stages: tuple[Stage, ...]) -> dict[str, type]:
    """Gives {section: Params} from the declarations (the two splat variants share one)."""
    out: dict[str, type] = {}
    for s in stages:
        if s.params is None:
            raise TypeError(f"stage {s.id} declares no params (its preset section's dataclass)")
        if out.setdefault(s.section, s.params) is not s.params:
            raise TypeError(f"stages disagree on the dataclass of section [{s.section}]")
    return {**out, **EXTRA_SECTIONS}


# Preset sections and the dataclass that declares each, in schema order.
SECTIONS: dict[str, type] = _sections(DECLARED)

__all__ = ["BY_ID", "DECLARED", "OFF_IN_ROUTE", "ROUTES_3D", "SECTIONS", "STAGES", "run_order", "upstream_of"]
