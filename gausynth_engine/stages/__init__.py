"""The stage graph: every stage, in the order the orchestrator runs them."""

from __future__ import annotations

from .._stage import Stage
from . import blend, preprocess, propagate, reimagine, sfm, sheet, splat, sync, upscale

STAGES: tuple[Stage, ...] = (
    preprocess.STAGE,
    sheet.STAGE,
    reimagine.STAGE,
    propagate.STAGE,
    blend.STAGE,
    upscale.STAGE,
    sfm.STAGE,
    splat.STAGE_REIM,
    splat.STAGE_ORIG,
    sync.STAGE,  # issue 18: after splat_orig; splat_reim should train on reim3d_frames after it
)

BY_ID: dict[str, Stage] = {s.id: s for s in STAGES}

# Preset sections and the dataclass that declares each (the two splat variants share one).
SECTIONS: dict[str, type] = {
    "preprocess": preprocess.Params,
    "sheet": sheet.Params,
    "reimagine": reimagine.Params,
    "propagate": propagate.Params,
    "blend": blend.Params,
    "upscale": upscale.Params,
    "sfm": sfm.Params,
    "splat": splat.Params,
    "sync": sync.Params,
}

__all__ = ["BY_ID", "SECTIONS", "STAGES"]
