"""The stage graph: every stage, in the order the orchestrator runs them."""

from __future__ import annotations

from .._stage import Stage
from . import blend, export, mask, preprocess, propagate, reimagine, sfm, sheet, splat, upscale

STAGES: tuple[Stage, ...] = (
    preprocess.STAGE,
    sheet.STAGE,
    reimagine.STAGE,
    propagate.STAGE,
    sfm.STAGE,
    mask.STAGE,
    blend.STAGE,
    upscale.STAGE,
    splat.STAGE_REIM,
    splat.STAGE_ORIG,
)

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
    "export": export.Params,  # run by the splat stages after training (issue 17)
}

__all__ = ["BY_ID", "SECTIONS", "STAGES"]
