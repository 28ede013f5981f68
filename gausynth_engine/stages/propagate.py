"""propagate: carry the reimagined key frames to every frame along the optical flow."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._params import param
from .._stage import Stage, StageContext, StageError
from ..preview_timing import record_fps
from ._common import off_without_reimagine

if TYPE_CHECKING:
    import numpy as np

VIDEO = "ebsynth"


@dataclass(frozen=True)
class Params:
    flow: str = param("dis", "Dense optical flow between original frames.", choices=("dis", "farneback"))
    cyclic: bool = param(True, "The clip is a closed turn-around: frames after the last key frame blend "
                         "back towards the first one.")
    tolerance_px: float = param(1.0, "Forward–backward flow error (px) tolerated before a carried key "
                                "frame loses trust there; the frame's own picture, recoloured like "
                                "the key, fills in what no key covers.", min=0.1, max=20.0)
    colour_tolerance: float = param(25.0, "Colour difference (0–255) between a frame and its original "
                                    "key frame carried onto it at which the carried restyle loses "
                                    "most of its trust there.", min=1.0, max=255.0)


def load_keys(folder: Path, frame_files: list[Path], shape: tuple[int, int],
              expected: list[int] | None) -> dict[int, np.ndarray]:
    """Gives frame index → key tile RGB uint8 [H, W, 3] at the frames' size, from `folder`.

    Tiles are named like the frame they restyle; `expected` (the sheet's key indices) must all
    be there when given.
    """
    import numpy as np

    from .._media import list_images, read_image
    from ..resizing import resize

    if not folder.is_dir():
        raise StageError(f"{folder}: no key-frame tiles (the reimagine stage writes them); rerun reimagine")
    index = {f.stem: i for i, f in enumerate(frame_files)}
    keys: dict[int, np.ndarray] = {}
    for path in list_images(folder):
        if path.stem not in index:
            raise StageError(f"{path}: named like no frame of filtered_frames_sd; accepted: a frame's "
                             f"name, {frame_files[0].name} … {frame_files[-1].name}")
        tile = read_image(path)[..., :3]
        if tile.shape[:2] != shape:  # sheets are cut at the diffusion size: bring tiles to the frames'
            tile = resize(tile, shape[1], shape[0])
        keys[index[path.stem]] = np.ascontiguousarray(tile)
    missing = sorted(set(expected or ()) - set(keys))
    if missing:
        names = ", ".join(frame_files[i].name for i in missing if i < len(frame_files))
        raise StageError(f"{folder}: key-frame tiles missing for {names} (the sheet chose frames {expected})")
    if not keys:
        raise StageError(f"{folder}: holds no key-frame images; rerun reimagine")
    return keys


def run(ctx: StageContext) -> None:
    from .._media import list_images, read_image, write_image, write_video
    from ..propagation import propagate
    from ..propagation.sequence import check_inputs

    p: Params = ctx.params
    files = list_images(ctx.layout.filtered_frames_sd)
    if not files:
        raise StageError(f"{ctx.layout.filtered_frames_sd}: no frames; rerun preprocess")
    frames = [read_image(f)[..., :3] for f in files]
    sheet = ctx.upstream("sheet").record
    keys = load_keys(ctx.layout.key_frames, files, frames[0].shape[:2], sheet.get("key_frames"))
    try:
        check_inputs(frames, keys, p.flow)
    except ValueError as error:
        raise StageError(f"{ctx.layout.filtered_frames_sd}: {error}") from None
    ctx.log(f"{len(frames)} frames, key frames {sorted(keys)}; flow {p.flow}, "
            f"{'cyclic' if p.cyclic else 'open'} clip")

    fallback: dict[int, float] = {}

    def written() -> Iterator[np.ndarray]:
        results = propagate(frames, keys, flow=p.flow, cyclic=p.cyclic, tolerance_px=p.tolerance_px,
                            colour_tolerance=p.colour_tolerance, fallback=fallback)
        for n, image in enumerate(results):
            write_image(ctx.out.ebsynth_all / files[n].name, image)
            ctx.progress(n + 1, len(frames), "frames")
            yield image

    preprocess = ctx.upstream("preprocess").record
    write_video(ctx.out.video(VIDEO), written(), fps=record_fps(preprocess, len(frames), fallback=10.0))
    ctx.artifact(ctx.out.video(VIDEO), "video")
    inner = {files[t].name: round(share, 4) for t, share in sorted(fallback.items()) if t not in keys}
    if inner:
        share = sum(inner.values()) / len(inner)
        worst = max(inner, key=inner.get)
        # Honest about wide baselines: flow between far-apart views is mostly rejected.
        ctx.log(f"{share:.0%} of the non-key pixels fell back to the recoloured original "
                f"(worst {worst}: {inner[worst]:.0%}); a wide-baseline turn-around carries "
                "better through run.pipeline = 'reimagine-3d'",
                "warning" if share > 0.5 else "info")
        ctx.metric("propagate.fallback_share", share)
    ctx.record(key_frames=sorted(keys), frames=len(frames), flow=p.flow, cyclic=p.cyclic,
               fallback_share=round(sum(inner.values()) / len(inner), 4) if inner else 0.0,
               fallback_per_frame=inner)


STAGE = Stage(
    id="propagate",
    title="Propagate key frames",
    section="propagate",
    params=Params,
    after=("preprocess", "reimagine"),
    outputs=("ebsynth_all", f"new_videos/{VIDEO}.mp4"),
    version=1,
    run=run,
    off_when=off_without_reimagine,
)
