"""[export]: write each finished training's splat for other viewers, right after it trains.

Not a stage of its own: the splat stages call `after_training` once their model is in place,
so the files land in `exports/` with the training's outputs. The section is not part of the
splat stages' fingerprint (changing it does not retrain); to export a model that is already
trained, use `gausynth export RUN --format …`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._params import param
from .._stage import StageContext

CHOICES = ("off", "ply", "splat", "compressed-ply", "spz", "all")


@dataclass(frozen=True)
class Params:
    format: str = param("off", "After each 3DGS training, also write its splat in this format into "
                        "exports/, read back and checked (all = every format).", choices=CHOICES)


def after_training(ctx: StageContext, variant: str, training: Path) -> None:
    """Exports the final model of `training` (a staged `gs/<variant>_…` folder) as [export] says."""
    fmt = ctx.preset.export.format
    if fmt == "off":
        return
    from ..export import FORMATS, check_cameras, export_training
    from ..viewer.models import cameras, final_ply

    ply = final_ply(training)
    if ply is None:
        ctx.log(f"{training}: no PLY to export", "warning")
        return
    cams = cameras(ctx.layout)
    formats = FORMATS if fmt == "all" else (fmt,)
    results = export_training(ply, formats, ctx.out.exports, training.name,
                              check_cameras(cams) if cams is not None else None)
    for r in results:
        ctx.log(("export " if r.ok else "export FAILED its check: ") + r.line(),
                "info" if r.ok else "warning")
        ctx.artifact(r.path, "export")
    ctx.record(exports={r.format: {"path": str(ctx._final_path(r.path)), "bytes": r.bytes,
                                   "ok": r.ok, "psnr": r.psnr} for r in results})
