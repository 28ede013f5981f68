"""How the two working sizes of a frame relate: the SfM frame as the camera saw it, the diffusion square.

The SfM/3DGS branch (`filtered_frames_colmap`) keeps each frame's aspect ratio and is never
upsampled past the source; only the diffusion branch (`filtered_frames_sd`) is square. The square
is cut from the frame at `sd_box` = (x0, y0, side) in SfM-frame pixels: a centre crop
(`square = "crop"`, inside the frame) or a centre pad (`"pad"`, x0 or y0 negative, padded white).
Everything that moves pixels between the two branches goes through this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .resizing import resize

if TYPE_CHECKING:
    import numpy as np

Box = tuple[int, int, int]  # (x0, y0, side) in SfM-frame pixels


def sfm_size(width: int, height: int, longest: int) -> tuple[int, int]:
    """Gives (width, height) of the SfM frame: the source's aspect, long side ≤ `longest`, never
    larger than the source."""
    scale = min(1.0, longest / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def square_box(width: int, height: int, how: str) -> Box:
    """Gives the centred square of a width × height frame: inside it ("crop") or around it ("pad")."""
    side = min(width, height) if how == "crop" else max(width, height)
    return (width - side) // 2, (height - side) // 2, side


def cut_square(image: np.ndarray, box: Box, side: int, fill: int = 255) -> np.ndarray:
    """Gives the box of an [H, W, C] or [H, W] image as a side × side square; outside the image
    (pad boxes) is `fill`."""
    import numpy as np

    x0, y0, s = box
    h, w = image.shape[:2]
    canvas = np.full((s, s, *image.shape[2:]), fill, dtype=image.dtype)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + s), min(h, y0 + s)
    canvas[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return resize(canvas, side, side)


def place_square(square: np.ndarray, box: Box, width: int, height: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Gives (image [H, W, C] of the frame's size holding the square at `box`, zeros elsewhere;
    valid bool [H, W]: where the square covers the frame)."""
    import numpy as np

    x0, y0, s = box
    big = resize(square, s, s)
    out = np.zeros((height, width, *square.shape[2:]), dtype=square.dtype)
    valid = np.zeros((height, width), dtype=bool)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(width, x0 + s), min(height, y0 + s)
    out[sy0:sy1, sx0:sx1] = big[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0]
    valid[sy0:sy1, sx0:sx1] = True
    return out, valid


def box_of(record: dict, width: int, height: int) -> Box:
    """Gives the sd box recorded by preprocess (`sd_box`), or the whole square frame for runs made
    before it was recorded (their SfM frames were square)."""
    box = record.get("sd_box")
    if box:
        return int(box[0]), int(box[1]), int(box[2])
    return 0, 0, min(width, height)
