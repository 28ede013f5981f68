"""sheet: tile N×N key frames, evenly spaced around the turn-around, into the model sheet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._params import param
from .._stage import Stage, StageContext, StageError

if TYPE_CHECKING:
    import numpy as np
from ._common import off_without_reimagine

SHEET_NAME = "sheet.png"


@dataclass(frozen=True)
class Params:
    grid: int = param(3, "The model sheet holds grid × grid key frames.", choices=(2, 3, 4))


def key_frame_indices(frame_count: int, grid: int) -> list[int]:
    """Gives the grid² key-frame indices spread evenly around a cyclic clip of frame_count."""
    keys = grid * grid
    if frame_count < keys:
        raise StageError(f"preprocess.num_frames = {frame_count} is fewer than sheet.grid² = {keys}; "
                         f"accepted: at least {keys} frames")
    return [k * frame_count // keys for k in range(keys)]


def tile(images: list[np.ndarray], grid: int) -> np.ndarray:
    """Gives the row-major grid of equal [S, S, C] images as one [grid·S, grid·S, C] sheet."""
    import numpy as np

    rows = [np.concatenate(images[r * grid : (r + 1) * grid], axis=1) for r in range(grid)]
    return np.concatenate(rows, axis=0)


def untile(sheet: np.ndarray, grid: int) -> list[np.ndarray]:
    """Gives the grid² tiles of a sheet in row-major order (inverse of `tile`)."""
    h, w = sheet.shape[0] // grid, sheet.shape[1] // grid
    return [sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] for r in range(grid) for c in range(grid)]


def run(ctx: StageContext) -> None:
    from .._media import list_images, read_image, write_image

    frames = list_images(ctx.layout.filtered_frames_sd)
    keys = key_frame_indices(len(frames), ctx.params.grid)
    images = [read_image(frames[k])[..., :3] for k in keys]
    sheet = tile(images, ctx.params.grid)
    write_image(ctx.out.orig_sheets / SHEET_NAME, sheet)
    ctx.artifact(ctx.out.orig_sheets / SHEET_NAME, "image")
    ctx.progress(1, 1, "sheet")
    ctx.record(key_frames=keys, key_frame_files=[frames[k].name for k in keys],
               grid=ctx.params.grid, tile_size=images[0].shape[0])


STAGE = Stage(
    id="sheet",
    title="Model sheet",
    section="sheet",
    params=Params,
    after=("preprocess",),
    outputs=("orig_sheets",),
    version=1,
    run=run,
    off_when=off_without_reimagine,
)
