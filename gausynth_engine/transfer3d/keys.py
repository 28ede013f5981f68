"""Key views on the cameras: a square sheet tile → the undistorted camera's image, and masks.

The sheet's tiles are square, at the diffusion size S, cut from each SfM frame (W × H,
`filtered_frames_colmap`) at `sd_box` = [x0, y0, side] (in frame pixels; negative x0/y0 where
the square was padded). Tile pixel (u, v) covers frame pixel x = x0 + (u + ½)·side/S − ½,
likewise y; COLMAP's undistortion then maps the frame onto its pinhole camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KeyView:
    """One key view on camera `index`: rgb float32 [H, W, 3] in 0..1, valid float32 [H, W]
    (1 where the tile covers the camera's image), mask float32 [H, W] (the key's object)."""

    index: int
    name: str
    rgb: np.ndarray
    valid: np.ndarray
    mask: np.ndarray


def key_to_camera(tile: np.ndarray, box: tuple[float, float, float], frame_size: tuple[int, int],
                  undistort: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Gives (rgb float32 [H', W', 3] in 0..1, valid float32 [H', W']) of a square tile
    [S, S, 3] uint8 placed at `box` in a frame of `frame_size` (W, H), then undistorted with
    the cv2.remap maps `undistort` (x, y) [H', W'] (None: the camera is the frame's)."""
    import cv2

    x0, y0, side = (float(b) for b in box)
    s = side / tile.shape[0]
    M = np.array([[s, 0, x0 + 0.5 * s - 0.5], [0, s, y0 + 0.5 * s - 0.5]], np.float64)
    w, h = frame_size
    rgba = np.dstack([tile[..., :3].astype(np.float32) / 255.0, np.ones(tile.shape[:2], np.float32)])
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    placed = cv2.warpAffine(rgba, M, (w, h), flags=interp, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=(0, 0, 0, 0))
    if undistort is not None:
        placed = cv2.remap(placed, undistort[0], undistort[1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    valid = placed[..., 3]
    rgb = placed[..., :3] / np.maximum(valid, 1e-6)[..., None]
    # Only pixels fully inside the tile are trusted (its rim is blended with the black border).
    return np.clip(rgb, 0, 1), (valid > 0.99).astype(np.float32)


def object_mask(rgb: np.ndarray, valid: np.ndarray | None = None, threshold: float = 14.0) -> np.ndarray:
    """Gives float32 [H, W] in {0, 1}: the object of a key view, without any model.

    The backdrop is taken to be the median colour of the tile's rim; the object is what differs
    from it by more than `threshold` (CIE ΔE), closed, holes filled. A rembg mask would be
    better on busy backdrops; this one needs no weights.
    """
    import cv2

    valid = np.ones(rgb.shape[:2], np.float32) if valid is None else valid
    lab = cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2LAB)
    inner = cv2.erode(valid, np.ones((3, 3), np.uint8))
    rim = (valid > 0) & (inner == 0)
    if not rim.any():
        rim = np.zeros(valid.shape, bool)
        rim[[0, -1], :], rim[:, [0, -1]] = True, True
    backdrop = np.median(lab[rim], axis=0)
    far = (np.linalg.norm(lab - backdrop, axis=2) > threshold).astype(np.uint8) * (valid > 0)
    far = cv2.morphologyEx(far.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    # Fill holes: whatever the backdrop cannot reach from the rim belongs to the object.
    flood = far.copy()
    pad = np.zeros((far.shape[0] + 2, far.shape[1] + 2), np.uint8)
    seeds = np.argwhere(rim & (far == 0))
    for y, x in seeds[:: max(1, len(seeds) // 64)]:
        if flood[y, x] == 0:
            cv2.floodFill(flood, pad, (int(x), int(y)), 2)
    return ((flood != 2) & (valid > 0)).astype(np.float32)


def alpha_mismatch(key_mask: np.ndarray, alpha: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """Gives how far a key view's object disagrees with the original's silhouette at that
    camera: iou, extra (share of the union only the key covers: new shape the 3D route drops)
    and missing (only the original covers: kept in the original's geometry)."""
    key, orig, v = key_mask > 0.5, alpha > 0.5, valid > 0.5
    key, orig = key & v, orig & v
    union = float((key | orig).sum()) or 1.0
    return {"iou": round(float((key & orig).sum()) / union, 4),
            "extra": round(float((key & ~orig).sum()) / union, 4),
            "missing": round(float((orig & ~key).sum()) / union, 4)}
