"""blend: cut out the object (rembg) and fill the reimagined frames into its silhouette.

Outputs, one file per frame with the frame's name:
- `orig_transparent/`: the original frame cut out onto white (RGB), at the SfM frames' size
  (preprocess.colmap_size): what the original 3DGS trains on, pixel-aligned with SfM's frames.
- `ebsynth_transparent/`: the propagated reimagined frame (RGBA, diffusion size) whose alpha is
  the original's mask times its own: the reimagined object seen through the original outline.
- `blend_transparent/`: RGB over white at the diffusion size: the reimagined object inside the
  original silhouette, holes filled from the original (upscale brings it to the SfM size).
With run.pipeline = 'original' only `orig_transparent` is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._params import param
from .._stage import Stage, StageContext, StageError

if TYPE_CHECKING:
    from pathlib import Path

    from .._layout import RunLayout
    from .._preset import Preset


@dataclass(frozen=True)
class Params:
    remove_background: bool = param(
        True, "Cut the object out of the original frames (always on when reimagining).")
    model: str = param("u2net", "Background-removal model: a rembg model name or a local .onnx file.",
                       choices=("u2net", "isnet-general-use", "birefnet-general",
                                "birefnet-general-lite", "bria-rmbg"), open_choices=True)
    clip_model: str = param("openai/clip-vit-base-patch32",
                            "CLIP model for the text–image score of the 2D stages (a Hugging Face "
                            "id or a local folder); skipped when its weights are not on this machine.")


def _off(preset: Preset) -> str | None:
    if preset.run.pipeline == "original" and not preset.blend.remove_background:
        return "blend.remove_background = false"
    return None


def preview_fps(layout: RunLayout, frames: int) -> float:
    """Gives the preview frame rate that keeps the clip's duration (as preprocess's preview does)."""
    from .._plan import read_manifest

    record = (read_manifest(layout, "preprocess") or {}).get("record", {})
    fps, total = record.get("fps"), record.get("input_frames")
    if not fps or not total:
        return 30.0
    return min(60.0, max(1.0, frames / (total / fps)))


def write_preview(ctx: StageContext, name: str, files: list[Path], fps: float) -> None:
    """Encodes the written frames `files` into new_videos/<name>.mp4, reading them back one by one."""
    from .._media import read_image, write_video

    write_video(ctx.out.video(name), (read_image(f) for f in files), fps=fps)
    ctx.artifact(ctx.out.video(name), "video")


def _frame_pairs(ctx: StageContext, reimagining: bool) -> list[str]:
    """Gives the frame names, checking that every folder the stage reads has each of them."""
    from .._media import list_images

    names = [f.name for f in list_images(ctx.layout.filtered_frames_sd)]
    if not names:
        raise StageError(f"{ctx.layout.filtered_frames_sd}: no frames; rerun preprocess")
    folders = [ctx.layout.filtered_frames_colmap] + ([ctx.layout.ebsynth_all] if reimagining else [])
    for folder in folders:
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise StageError(f"{folder / missing[0]}: missing ({len(missing)} of {len(names)} frames); "
                             f"every frame of filtered_frames_sd needs one of the same name there")
    return names


def run(ctx: StageContext) -> None:
    from .. import metrics2d
    from .._media import read_image, write_image
    from ..cutout import MaskSession, fill_silhouette, on_white, resize_alpha, rgba

    p: Params = ctx.params
    reimagining = ctx.preset.run.pipeline != "original"
    if reimagining and not p.remove_background:
        ctx.log("blend.remove_background = false is ignored: reimagined frames are always cut out")
    names = _frame_pairs(ctx, reimagining)
    session = MaskSession(p.model, ctx.device, ctx.log)  # one session for every frame
    prompt = ctx.preset.reimagine.prompt if reimagining else None
    scores, skipped = (metrics2d.learned_scorers(ctx, p.clip_model, prompt) if reimagining
                       else (None, []))
    coverage: dict[str, float] = {}
    resized_note = False
    for n, name in enumerate(names):
        orig_big = read_image(ctx.layout.filtered_frames_colmap / name)[..., :3]
        # The mask comes from the larger frame: models with big inputs (BiRefNet) see more detail.
        alpha_big = session.mask(orig_big)
        coverage[name] = round(float(alpha_big.mean()), 4)
        write_image(ctx.out.orig_transparent / name, on_white(orig_big, alpha_big))
        if reimagining:
            orig = read_image(ctx.layout.filtered_frames_sd / name)[..., :3]
            side = orig.shape[0]
            reim = read_image(ctx.layout.ebsynth_all / name)[..., :3]
            if reim.shape[:2] != orig.shape[:2]:
                import cv2

                if not resized_note:
                    ctx.log(f"ebsynth_all frames are {reim.shape[1]}×{reim.shape[0]}, not the "
                            f"diffusion size {side}×{side}: resizing them to line up", "warning")
                    resized_note = True
                reim = cv2.resize(reim, (side, side), interpolation=cv2.INTER_AREA)
            alpha = resize_alpha(alpha_big, side)
            alpha_reim = session.mask(reim)
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
    empty = [k for k, v in coverage.items() if v < 0.005]
    if empty:
        ctx.log(f"the cut-out is (nearly) empty in {len(empty)} frame(s), e.g. {empty[0]}: "
                f"try another blend.model", "warning")
    ctx.record(model=p.model, providers=session.providers, frames=names,
               mask_coverage={"mean": round(sum(coverage.values()) / len(coverage), 4),
                              "min": min(coverage.values()), "max": max(coverage.values())})
    fps = preview_fps(ctx.layout, len(names))
    write_preview(ctx, "orig_transparent", [ctx.out.orig_transparent / n for n in names], fps)
    if reimagining:
        write_preview(ctx, "blend_transparent", [ctx.out.blend_transparent / n for n in names], fps)
        metrics2d.publish(ctx, "blend", scores, skipped)


STAGE = Stage(
    id="blend",
    title="Cut out and blend",
    section="blend",
    after=("preprocess", "propagate"),
    outputs=("orig_transparent", "ebsynth_transparent", "blend_transparent",
             "new_videos/orig_transparent.mp4", "new_videos/blend_transparent.mp4", "metrics.json"),
    version=1,
    run=run,
    reads=("run.pipeline",),
    gpu=True,
    off_when=_off,
)
