"""The stage graph: every stage, in the order the orchestrator runs them, and the routes.

`run.pipeline` picks a route; a stage outside its route is "off" with the route as the reason.
- reimagine (2D): preprocess → sheet → reimagine → propagate (optical flow) → sfm → mask →
  blend → upscale → splat_orig, splat_reim (on the upscaled squares placed in the SfM frames).
- reimagine-3d: preprocess → sfm → mask → splat_orig → sheet → reimagine → transfer (key views
  carried through the original 3DGS) → splat_reim on `reim3d_frames/`.
- reimagine-sync: preprocess → sfm → mask → splat_orig → sync (synchronised diffusion over the
  original Gaussians) → splat_reim on `reim3d_frames/`.
- original: preprocess → sfm → mask → splat_orig.

The order below is one topological order valid for every route (a test checks it); the planner
runs stages in it. In the 3D route the diffusion runs before SfM, which changes no fingerprint:
a new prompt reruns reimagine, transfer and splat_reim only.
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


STAGES: tuple[Stage, ...] = tuple(_in_route(s) for s in (
    preprocess.STAGE,
    sheet.STAGE,
    reimagine.STAGE,
    propagate.STAGE,
    sfm.STAGE,
    mask.STAGE,
    blend.STAGE,
    upscale.STAGE,
    splat.STAGE_ORIG,
    transfer.STAGE,
    sync.STAGE,
    splat.STAGE_REIM,
))

BY_ID: dict[str, Stage] = {s.id: s for s in STAGES}

# Preset sections and the dataclass that declares each (the two splat variants share one).
SECTIONS: dict[str, type] = {
    "preprocess": preprocess.Params,
    "sheet": sheet.Params,
    "reimagine": reimagine.Params,
    "propagate": propagate.Params,
    "mask": mask.Params,
    "blend": blend.Params,
    "upscale": upscale.Params,
    "sfm": sfm.Params,
    "splat": splat.Params,
    "transfer": transfer.Params,
    "sync": sync.Params,
    "export": export.Params,  # run by the splat stages after training (issue 17)
}

__all__ = ["BY_ID", "OFF_IN_ROUTE", "ROUTES_3D", "SECTIONS", "STAGES"]
