"""blend: fill the reimagined frames into the original object's silhouette (the 2D route).

The original's masks come from the mask stage (`orig_transparent/`, RGBA at the SfM frames'
size), cut to the diffusion square at the recorded `sd_box`. Outputs, one file per frame:
- `ebsynth_transparent/`: the propagated reimagined frame (RGBA, diffusion size) whose alpha is
  the original's mask times its own: the reimagined object seen through the original outline.
- `blend_transparent/`: RGB over white at the diffusion size: the reimagined object inside the
  original silhouette, holes filled from the original (upscale brings it to the SfM size).
The reimagined frame's own mask needs the rembg model (`blend.model`); without its weights the
original silhouette alone is used, and the log says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._params import param
from .._stage import Stage, StageContext, StageError
from ..preview_timing import preview_fps, record_fps  # noqa: F401 (preview_fps: for old imports)
from ._common import off_without_reimagine

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class Params:
    model: str = param("u2net", "Background-removal model: a rembg model name or a local .onnx file.",
                       choices=("u2net", "isnet-general-use", "birefnet-general",
                                "birefnet-general-lite", "bria-rmbg"), open_choices=True)
    clip_model: str = param("openai/clip-vit-base-patch32",
                            "CLIP model for the text–image score of the 2D stages (a Hugging Face "
                            "id or a local folder); skipped when its weights are not on this machine.")


def write_preview(ctx: StageContext, name: str, files: list[Path], fps: float) -> None:
    """Encodes the written frames `files` into new_videos/<name>.mp4, reading them back one by one."""
    from .._media import read_image, write_video

    write_video(ctx.out.video(name), (read_image(f) for f in files), fps=fps)
    ctx.artifact(ctx.out.video(name), "video")


def _frame_pairs(ctx: StageContext) -> list[str]:
    """Gives the frame names, checking that every folder the stage reads has each of them."""
    from .._media import list_images

    names = [f.name for f in list_images(ctx.layout.filtered_frames_sd)]
    if not names:
        raise StageError(f"{ctx.layout.filtered_frames_sd}: no frames; rerun preprocess")
    for folder in (ctx.layout.ebsynth_all,):
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise StageError(f"{folder / missing[0]}: missing ({len(missing)} of {len(names)} frames); "
                             f"every frame of filtered_frames_sd needs one of the same name there")
    return names


def run(ctx: StageContext) -> None:
    import numpy as np

    from .. import metrics2d
    from .._media import read_image, write_image
    from ..compositing import fill_silhouette, on_white, rgba
    from ..framing import box_of, cut_square
    from .mask import choose_method

    p: Params = ctx.params
    names = _frame_pairs(ctx)
    method, why = choose_method(ctx.preset.mask, p.model)
    session = None
    if method == "model":
        from ..cutout import MaskSession

        session = MaskSession(p.model, ctx.device, ctx.log)  # one session for every frame
    else:
        ctx.log(f"the reimagined frames keep the original silhouette ({why})")
    record = ctx.upstream("preprocess").record
    prompt = ctx.preset.reimagine.prompt
    scores, skipped = metrics2d.learned_scorers(ctx, p.clip_model, prompt)
    resized_note = False
    masked = ctx.layout.orig_transparent.is_dir()
    if not masked:
        ctx.log("no object masks (mask.method = 'off'): the whole frame is the object", "warning")
    for n, name in enumerate(names):
        orig = read_image(ctx.layout.filtered_frames_sd / name)[..., :3]
        side = orig.shape[0]
        if masked:
            cut = read_image(ctx.layout.orig_transparent / name)
            if cut.shape[2] != 4:
                raise StageError(f"{ctx.layout.orig_transparent / name}: no alpha channel; rerun mask")
            box = box_of(record, cut.shape[1], cut.shape[0])
            alpha = cut_square(cut[..., 3], box, side, fill=0).astype(np.float32) / 255.0
        else:
            alpha = np.ones(orig.shape[:2], np.float32)
        reim = read_image(ctx.layout.ebsynth_all / name)[..., :3]
        if reim.shape[:2] != orig.shape[:2]:
            import cv2

            if not resized_note:
                ctx.log(f"ebsynth_all frames are {reim.shape[1]}×{reim.shape[0]}, not the "
                        f"diffusion size {side}×{side}: resizing them to line up", "warning")
                resized_note = True
            reim = cv2.resize(reim, (side, side), interpolation=cv2.INTER_AREA)
        alpha_reim = session.mask(reim) if session is not None else np.ones_like(alpha)
        cut_reim = rgba(reim, alpha * alpha_reim)
        blended = fill_silhouette(orig, reim, alpha, alpha_reim)
        write_image(ctx.out.ebsynth_transparent / name, cut_reim)
        write_image(ctx.out.blend_transparent / name, blended)
        orig_cut = on_white(orig, alpha)
        reim_cut = on_white(reim, alpha * alpha_reim)
        scores.compare("propagate", name, orig, reim, output="ebsynth_all",
                       reference="filtered_frames_sd (original frames, uncut)")
        scores.compare("propagate_cutout", name, orig_cut, reim_cut, output="ebsynth_transparent",
                       reference="original cut-out at the diffusion size")
        row = scores.compare("blend", name, orig_cut, blended, output="blend_transparent",
                             reference="original cut-out at the diffusion size")
        ctx.metric("blend.frame_ssim", row["ssim"], step=n)
        scores.clip_score(name, {"original": orig_cut, "propagate": reim_cut, "blend": blended})
        ctx.progress(n + 1, len(names), "frames")
    ctx.record(model=p.model if session is not None else None,
               providers=session.providers if session is not None else [], frames=names)
    fps = record_fps(record, len(names), fallback=30.0)
    write_preview(ctx, "blend_transparent", [ctx.out.blend_transparent / n for n in names], fps)
    metrics2d.publish(ctx, "blend", scores, skipped)


STAGE = Stage(
    id="blend",
    title="Cut out and blend",
    section="blend",
    params=Params,
    after=("preprocess", "propagate", "mask"),
    outputs=("ebsynth_transparent", "blend_transparent", "new_videos/blend_transparent.mp4",
             "metrics.json"),
    version=2,
    run=run,
    reads=("mask.method",),
    gpu=True,
    off_when=off_without_reimagine,
)
