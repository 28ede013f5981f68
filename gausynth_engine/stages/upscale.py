"""upscale: Swin2SR super-resolution of the blended frames, tiled, padding cropped exactly."""

from __future__ import annotations

from dataclasses import dataclass

from .._params import param
from .._stage import Stage
from ._common import off_without_reimagine


@dataclass(frozen=True)
class Params:
    model: str = param("caidas/swin2SR-realworld-sr-x4-64-bsrgan-psnr",
                       "Swin2SR model: a Hugging Face id or a local folder.")
    scale: int = param(4, "Upscaling factor (must match the model).", choices=(2, 4))


STAGE = Stage(
    id="upscale",
    title="Super-resolve",
    section="upscale",
    after=("blend",),
    outputs=("sr_frames", "new_videos/sr.mp4"),
    version=1,
    run=None,
    gpu=True,
    off_when=off_without_reimagine,
    pending_issue="issue 5",
)
