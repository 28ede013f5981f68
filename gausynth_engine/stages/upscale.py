"""upscale: Swin2SR super-resolution of the blended frames, tiled, padding cropped exactly.

`sr_frames/` are the diffusion squares at preprocess.sd_size × upscale.scale; the 3DGS of the
reimagined frames places each at its frame's `sd_box` in the SfM frame (see `framing`), so they
line up with the poses whatever the two sizes are.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._params import param
from .._stage import Stage, StageContext, StageError
from ._common import off_without_reimagine

if TYPE_CHECKING:
    import numpy as np

SR_VIDEO = "sr"


@dataclass(frozen=True)
class Params:
    model: str = param("caidas/swin2SR-realworld-sr-x4-64-bsrgan-psnr",
                       "Swin2SR model: a Hugging Face id or a local folder.")
    scale: int = param(4, "Upscaling factor (must match the model).", choices=(2, 4))
    tile: int = param(512, "Largest input piece the model sees at once, px; bigger frames are tiled.",
                      min=64, max=4096)
    overlap: int = param(32, "Overlap between neighbouring tiles, px of the input (blended linearly).",
                         min=0, max=256)
    batch: int = param(4, "Tiles per forward pass on the GPU.", min=1, max=64)


def run(ctx: StageContext) -> None:
    from functools import partial

    from .. import metrics2d, superres
    from .._media import frame_workers, in_order, list_images, read_image, write_image
    from ..compositing import on_white
    from ..framing import box_of, cut_square
    from ..preview_timing import record_fps
    from .blend import PreviewVideo

    p: Params = ctx.params
    if p.overlap >= p.tile // 2:
        raise StageError(f"upscale.overlap = {p.overlap} must be less than half of upscale.tile = "
                         f"{p.tile}; accepted: 0 to {p.tile // 2 - 1}")
    files = list_images(ctx.layout.blend_transparent)
    if not files:
        raise StageError(f"{ctx.layout.blend_transparent}: no frames; rerun blend")
    record = ctx.upstream("preprocess").record
    started = time.perf_counter()
    up = superres.load(p.model, p.scale, ctx.device, ctx.log)
    load_seconds = time.perf_counter() - started
    ctx.log(f"Swin2SR ×{p.scale} ({p.model}) on {ctx.device}; tile {p.tile} px, overlap "
            f"{p.overlap} px, {p.batch} tiles per pass")
    clip_model = ctx.preset.blend.clip_model
    scores, skipped = metrics2d.learned_scorers(ctx, clip_model, ctx.preset.reimagine.prompt)
    group = max(1, p.batch)
    reference = "the original cut-out's square at the SfM size"

    def made() -> Iterator[tuple[Path, np.ndarray]]:
        """Yields (input file, upscaled frame) in order; the model runs here, in the stage's thread."""
        for g in range(0, len(files), group):
            batch_files = files[g : g + group]
            images = [read_image(f)[..., :3] for f in batch_files]
            yield from zip(batch_files, superres.upscale(up, images, tile=p.tile, overlap=p.overlap,
                                                         batch=p.batch), strict=True)

    def finish(f: Path, sr: np.ndarray) -> tuple[Path, np.ndarray, dict[str, float]]:
        """Writes one frame and scores it against the original's square (in a worker thread)."""
        write_image(ctx.out.sr_frames / f.name, sr)
        orig = read_image(ctx.layout.filtered_frames_colmap / f.name)
        if (ctx.layout.orig_transparent / f.name).is_file():
            cut = read_image(ctx.layout.orig_transparent / f.name)
            orig = on_white(cut[..., :3], cut[..., 3] / 255.0) if cut.shape[2] == 4 else cut
        box = box_of(record, orig.shape[1], orig.shape[0])
        return f, sr, scores.measure(cut_square(orig[..., :3], box, sr.shape[0]), sr)

    try:
        with PreviewVideo(ctx, SR_VIDEO, record_fps(record, len(files), fallback=30.0)) as video:
            jobs = (partial(finish, f, sr) for f, sr in made())
            for done, (f, sr, row) in enumerate(in_order(jobs, frame_workers()), start=1):
                scores.add("upscale", f.name, row, output="sr_frames", reference=reference)
                ctx.metric("upscale.frame_ssim", row["ssim"], step=done - 1)
                scores.clip_score(f.name, {"upscale": sr})
                video.add(sr)
                ctx.progress(done, len(files), "frames")
    except Exception as e:
        if type(e).__name__ == "OutOfMemoryError":
            raise StageError(f"out of GPU memory at upscale.tile = {p.tile}, upscale.batch = "
                             f"{p.batch}; lower upscale.batch first, then upscale.tile") from e
        raise
    ctx.record(model=p.model, scale=p.scale, frames=[f.name for f in files],
               load_seconds=round(load_seconds, 3))
    metrics2d.publish(ctx, "upscale", scores, skipped)


STAGE = Stage(
    id="upscale",
    title="Super-resolve",
    section="upscale",
    after=("blend",),
    outputs=("sr_frames", f"new_videos/{SR_VIDEO}.mp4", "metrics.json"),
    version=2,
    run=run,
    reads=("blend.clip_model",),
    gpu=True,
    off_when=off_without_reimagine,
    params=Params,
)
