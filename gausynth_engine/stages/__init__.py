"""The stage graph: every stage, in the order the orchestrator runs them, and the routes.

`run.pipeline` picks a route; a stage outside its route is "off" with the route as the reason.
- reimagine (2D): … reimagine → propagate (optical flow) → blend → upscale → splat_reim.
- reimagine-3d: preprocess → sfm → splat_orig → sheet → reimagine → transfer (through the
  original 3DGS) → splat_reim on `reim3d_frames/`; no propagate, blend or upscale.
- original: preprocess → (blend cut-outs) → sfm → splat_orig.

The order below is one topological order valid for every route (a test checks it); the
planner runs stages in it, so in the 3D route the diffusion runs before SfM, which changes no
fingerprint (a new prompt reruns reimagine, transfer and splat_reim only). splat_orig still
sits after blend because in the 2D route it trains on blend's `orig_transparent`; once the
`mask` stage (after sfm) writes those cut-outs, the order can become preprocess, sfm, mask,
splat_orig, sheet, reimagine, transfer, propagate, blend, upscale, splat_reim (then
`--until sheet` also runs sfm: tests that stop at sheet need `--from`/`--only` instead).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from .._stage import Stage
from . import blend, preprocess, propagate, reimagine, sfm, sheet, splat, transfer, upscale

if TYPE_CHECKING:
    from .._preset import Preset

# Routes that hand splat_reim frames made in 3D (`reim3d_frames/`, already undistorted).
ROUTES_3D = ("reimagine-3d",)

# Stages each route leaves out (on top of each stage's own off_when).
OFF_IN_ROUTE: dict[str, frozenset[str]] = {
    "reimagine": frozenset({"transfer"}),
    "reimagine-3d": frozenset({"propagate", "blend", "upscale"}),
    "original": frozenset({"transfer"}),
}
_WHY = {"transfer": "the 2D route carries key frames by optical flow (propagate)",
        "propagate": "the 3D route carries key views through the original 3DGS (transfer)",
        "blend": "the 3D route's frames are cut out by the original's silhouette already",
        "upscale": "the 3D route renders frames at the SfM size already"}


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
    blend.STAGE,
    upscale.STAGE,
    sfm.STAGE,
    splat.STAGE_ORIG,
    transfer.STAGE,
    splat.STAGE_REIM,
))

BY_ID: dict[str, Stage] = {s.id: s for s in STAGES}

# Preset sections and the dataclass that declares each (the two splat variants share one).
SECTIONS: dict[str, type] = {
    "preprocess": preprocess.Params,
    "sheet": sheet.Params,
    "reimagine": reimagine.Params,
    "propagate": propagate.Params,
    "transfer": transfer.Params,
    "blend": blend.Params,
    "upscale": upscale.Params,
    "sfm": sfm.Params,
    "splat": splat.Params,
}

__all__ = ["BY_ID", "OFF_IN_ROUTE", "ROUTES_3D", "SECTIONS", "STAGES"]
