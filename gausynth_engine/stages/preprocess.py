"""preprocess: sample frames evenly over the clip and write both working sizes.

`filtered_frames_colmap` holds the frames as the camera saw them (aspect kept, long side at most
preprocess.colmap_size, never upsampled): what SfM and 3DGS use. `filtered_frames_sd` holds the
square diffusion frames cut at `sd_box` (see `framing`), recorded in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._params import param
from .._stage import Stage, StageContext, StageError
from ..preview_timing import clip_fps

SD_VIDEO = "frames"
VIDEO_FRAMES = 48  # what num_frames = 0 samples from a video (the reference's count)


@dataclass(frozen=True)
class Params:
    fps: float = param(0.0, "Frame rate of the input; 0 = read it from the video (30 for an image "
                       "folder).", min=0.0, max=240.0)
    num_frames: int = param(0, "How many frames to sample evenly over the whole clip; 0 = every "
                            f"image of a folder (in order), {VIDEO_FRAMES} frames of a video.",
                            min=0, max=5000)
    sd_size: int = param(512, "Side of the square frames for diffusion (filtered_frames_sd), px.",
                         min=64, max=2048)
    colmap_size: int = param(2048, "Longest side of the frames for SfM and 3DGS "
                             "(filtered_frames_colmap), px; they keep their aspect ratio and are "
                             "never upsampled past the source.", min=64, max=8192)
    square: str = param("crop", "How the diffusion frames become square without stretching: "
                        "centre-crop, or pad with white (the SfM frames are never squared).",
                        choices=("crop", "pad"))


def sample_indices(available: int, wanted: int) -> list[int]:
    """Gives `wanted` frame indices spread evenly over a cyclic clip of `available` frames."""
    return [i * available // wanted for i in range(wanted)]


def run(ctx: StageContext) -> None:
    from .._media import frame_name, list_images, probe_input, read_frames, write_image, write_video
    from ..framing import cut_square, sfm_size, square_box
    from ..resizing import resize

    p: Params = ctx.params
    info = probe_input(ctx.preset.input_path)
    if info.frame_count < p.num_frames:
        raise StageError(f"{info.path}: {info.frame_count} frames, fewer than "
                         f"preprocess.num_frames = {p.num_frames}; lower it, set it to 0 (every "
                         f"frame) or use a longer clip")
    if info.frame_count < 2:
        raise StageError(f"{info.path}: {info.frame_count} frame; a turn-around needs at least 2")
    count = p.num_frames or (info.frame_count if info.kind == "images"
                             else min(VIDEO_FRAMES, info.frame_count))
    fps = p.fps or info.fps or 30.0
    indices = sample_indices(info.frame_count, count)
    width, height = sfm_size(info.width, info.height, p.colmap_size)
    box = square_box(width, height, p.square)
    ctx.log(f"{info.kind} {info.width}×{info.height}, {info.frame_count} frames at {fps:g} fps; "
            f"sampling {count}; SfM frames {width}×{height}, diffusion squares {p.sd_size}² "
            f"({p.square})")
    sd_frames = []
    for n, (i, image) in enumerate(read_frames(info, indices)):
        if image.shape[:2] != (info.height, info.width):
            where = list_images(info.path)[i] if info.kind == "images" else f"{info.path}: frame {i}"
            raise StageError(f"{where}: {image.shape[1]}×{image.shape[0]} px, unlike the first "
                             f"frame ({info.width}×{info.height}); accepted: frames of one size "
                             "(and aspect), as one camera takes them")
        name = frame_name(n, count)
        frame = resize(image[..., :3], width, height)
        # The square comes from the source frame itself, so a small SfM size costs it no detail.
        scale = info.width / width
        source_box = (round(box[0] * scale), round(box[1] * scale), round(box[2] * scale))
        sd = cut_square(image[..., :3], source_box, p.sd_size)
        write_image(ctx.out.filtered_frames_sd / name, sd)
        write_image(ctx.out.filtered_frames_colmap / name, frame)
        sd_frames.append(sd)
        ctx.progress(n + 1, count, "frames")
    # The preview lasts as long as the clip did.
    write_video(ctx.out.video(SD_VIDEO), sd_frames, fps=clip_fps(count, info.frame_count, fps, fallback=fps))
    ctx.artifact(ctx.out.video(SD_VIDEO), "video")
    ctx.record(source_indices=indices, input_kind=info.kind, input_frames=info.frame_count,
               input_size=[info.width, info.height], fps=fps, sfm_size=[width, height],
               sd_box=list(box), frames=[frame_name(n, count) for n in range(count)])


STAGE = Stage(
    id="preprocess",
    title="Extract frames",
    section="preprocess",
    params=Params,
    after=(),
    outputs=("filtered_frames_sd", "filtered_frames_colmap", f"new_videos/{SD_VIDEO}.mp4"),
    version=2,
    run=run,
)
