"""upscale: Swin2SR super-resolution of the blended frames, tiled, padding cropped exactly.

`sr_frames/` must line up pixel for pixel with the SfM frames (`filtered_frames_colmap`). With
the reference sizes (512 × 4 = 2048) the model's output is already that size; when
preprocess.sd_size × upscale.scale differs from preprocess.colmap_size the upscaled frames are
resized to the SfM size (same framing, so poses still fit) and the log says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._params import param
from .._stage import Stage, StageContext, StageError
from ._common import off_without_reimagine

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
    import cv2

    from .. import metrics2d, superres
    from .._media import list_images, read_image, write_image
    from .blend import preview_fps, write_preview

    p: Params = ctx.params
    if p.overlap >= p.tile // 2:
        raise StageError(f"upscale.overlap = {p.overlap} must be less than half of upscale.tile = "
                         f"{p.tile}; accepted: 0 to {p.tile // 2 - 1}")
    files = list_images(ctx.layout.blend_transparent)
    if not files:
        raise StageError(f"{ctx.layout.blend_transparent}: no frames; rerun blend")
    missing = [f.name for f in files if not (ctx.layout.orig_transparent / f.name).is_file()]
    if missing:
        raise StageError(f"{ctx.layout.orig_transparent / missing[0]}: missing; rerun blend")
    target = read_image(ctx.layout.orig_transparent / files[0].name).shape[0]  # the SfM side
    up = superres.load(p.model, p.scale, ctx.device, ctx.log)
    ctx.log(f"Swin2SR ×{p.scale} ({p.model}) on {ctx.device}; tile {p.tile} px, overlap "
            f"{p.overlap} px, {p.batch} tiles per pass")
    clip_model = ctx.preset.blend.clip_model
    scores, skipped = metrics2d.learned_scorers(ctx, clip_model, ctx.preset.reimagine.prompt)
    noted = False
    done = 0
    group = max(1, p.batch)
    try:
        for g in range(0, len(files), group):
            batch_files = files[g : g + group]
            images = [read_image(f)[..., :3] for f in batch_files]
            for f, sr in zip(batch_files, superres.upscale(up, images, tile=p.tile, overlap=p.overlap,
                                                           batch=p.batch), strict=True):
                if sr.shape[0] != target:
                    if not noted:
                        ctx.log(f"upscaled frames are {sr.shape[0]} px but the SfM frames are {target} "
                                f"px (preprocess.sd_size × upscale.scale ≠ preprocess.colmap_size): "
                                f"resizing them to {target} px", "warning")
                        noted = True
                    interp = cv2.INTER_AREA if sr.shape[0] > target else cv2.INTER_LANCZOS4
                    sr = cv2.resize(sr, (target, target), interpolation=interp)
                write_image(ctx.out.sr_frames / f.name, sr)
                orig_cut = read_image(ctx.layout.orig_transparent / f.name)[..., :3]
                row = scores.compare("upscale", f.name, orig_cut, sr, output="sr_frames",
                                     reference="orig_transparent (original cut-out, SfM size)")
                ctx.metric("upscale.frame_ssim", row["ssim"], step=done)
                scores.clip_score(f.name, {"upscale": sr})
                done += 1
                ctx.progress(done, len(files), "frames")
    except Exception as e:
        if type(e).__name__ == "OutOfMemoryError":
            raise StageError(f"out of GPU memory at upscale.tile = {p.tile}, upscale.batch = "
                             f"{p.batch}; lower upscale.batch first, then upscale.tile") from e
        raise
    ctx.record(model=p.model, scale=p.scale, size=target, resized_to_sfm=noted,
               frames=[f.name for f in files])
    write_preview(ctx, SR_VIDEO, [ctx.out.sr_frames / f.name for f in files],
                  preview_fps(ctx.layout, len(files)))
    metrics2d.publish(ctx, "upscale", scores, skipped)


STAGE = Stage(
    id="upscale",
    title="Super-resolve",
    section="upscale",
    after=("blend",),
    outputs=("sr_frames", f"new_videos/{SR_VIDEO}.mp4", "metrics.json"),
    version=1,
    run=run,
    reads=("blend.clip_model",),
    gpu=True,
    off_when=off_without_reimagine,
)
