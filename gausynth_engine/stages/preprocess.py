"""preprocess: sample frames evenly over the clip, square them, write both working sizes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._params import param
from .._stage import Stage, StageContext, StageError

if TYPE_CHECKING:
    import numpy as np

SD_VIDEO = "frames"


@dataclass(frozen=True)
class Params:
    fps: float = param(0.0, "Frame rate of the input; 0 = read it from the video (30 for an image "
                       "folder).", min=0.0, max=240.0)
    num_frames: int = param(48, "How many frames to sample evenly over the whole clip.",
                            min=4, max=5000)
    sd_size: int = param(512, "Side of the square frames for diffusion (filtered_frames_sd), px.",
                         min=64, max=2048)
    colmap_size: int = param(2048, "Side of the square frames for SfM and 3DGS "
                             "(filtered_frames_colmap), px.", min=64, max=8192)
    square: str = param("crop", "How frames become square without stretching: centre-crop, or pad "
                        "with white.", choices=("crop", "pad"))


def sample_indices(available: int, wanted: int) -> list[int]:
    """Gives `wanted` frame indices spread evenly over a cyclic clip of `available` frames."""
    return [i * available // wanted for i in range(wanted)]


def make_square(image: np.ndarray, how: str) -> np.ndarray:
    """Gives the centre square crop of an [H, W, C] image, or the image padded with white."""
    h, w = image.shape[:2]
    if how == "crop":
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        return image[top : top + side, left : left + side]
    import numpy as np

    side = max(h, w)
    out = np.full((side, side, image.shape[2]), 255, dtype=image.dtype)
    top, left = (side - h) // 2, (side - w) // 2
    out[top : top + h, left : left + w] = image
    return out


def resize(image: np.ndarray, side: int) -> np.ndarray:
    """Gives a square image resized to side × side (area when shrinking, Lanczos when growing)."""
    import cv2

    interp = cv2.INTER_AREA if image.shape[0] > side else cv2.INTER_LANCZOS4
    return cv2.resize(image, (side, side), interpolation=interp)


def run(ctx: StageContext) -> None:
    from .._media import frame_name, probe_input, read_frames, write_image, write_video

    p: Params = ctx.params
    info = probe_input(ctx.preset.input_path)
    if info.frame_count < p.num_frames:
        raise StageError(f"{info.path}: {info.frame_count} frames, fewer than "
                         f"preprocess.num_frames = {p.num_frames}; lower it or use a longer clip")
    fps = p.fps or info.fps or 30.0
    indices = sample_indices(info.frame_count, p.num_frames)
    ctx.log(f"{info.kind} {info.width}×{info.height}, {info.frame_count} frames at {fps:g} fps; "
            f"sampling {p.num_frames}")
    sd_frames = []
    for n, (_, image) in enumerate(read_frames(info, indices)):
        square = make_square(image[..., :3], p.square)
        name = frame_name(n, p.num_frames)
        sd = resize(square, p.sd_size)
        write_image(ctx.out.filtered_frames_sd / name, sd)
        write_image(ctx.out.filtered_frames_colmap / name, resize(square, p.colmap_size))
        sd_frames.append(sd)
        ctx.progress(n + 1, p.num_frames, "frames")
    # The preview lasts as long as the clip did.
    duration = info.frame_count / fps
    write_video(ctx.out.video(SD_VIDEO), sd_frames, fps=min(60.0, max(1.0, p.num_frames / duration)))
    ctx.artifact(ctx.out.video(SD_VIDEO), "video")
    ctx.record(source_indices=indices, input_kind=info.kind, input_frames=info.frame_count,
               input_size=[info.width, info.height], fps=fps,
               frames=[frame_name(n, p.num_frames) for n in range(p.num_frames)])


STAGE = Stage(
    id="preprocess",
    title="Extract frames",
    section="preprocess",
    after=(),
    outputs=("filtered_frames_sd", "filtered_frames_colmap", f"new_videos/{SD_VIDEO}.mp4"),
    version=1,
    run=run,
)
