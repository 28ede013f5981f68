"""PyraCanny: the multi-scale canny edge map that guides the ControlNet (no model needed)."""

from __future__ import annotations

import numpy as np

SCALES = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
DECAY = 0.75  # weight of the running sum when a finer scale is added


def pyra_canny(image: np.ndarray, low: int, high: int) -> np.ndarray:
    """Gives the PyraCanny edge map of an RGB uint8 image [H, W, 3] as uint8 [H, W] (0 = no edge).

    At each scale 0.2, 0.3 … 1.0 the image is shrunk (area), canny runs on every RGB channel
    with the `low`/`high` thresholds, and the running sum is upsampled and accumulated as
    `acc = 0.75·acc + 0.25·edges`. The channels are summed and stretched from the 1st to the
    99th percentile onto 0–255. Edges too sparse to reach the 99th percentile are stretched to
    their maximum instead (the reference divided by zero there); a flat image gives all zeros.
    """
    import cv2

    if image.ndim != 3 or image.shape[2] < 3 or image.dtype != np.uint8:
        raise ValueError(f"pyra_canny needs RGB uint8 [H, W, 3]; got {image.dtype} {image.shape}")
    rgb = np.ascontiguousarray(image[..., :3])
    h, w = rgb.shape[:2]
    acc: np.ndarray | None = None
    for k in SCALES:
        size = (max(1, int(w * k)), max(1, int(h * k)))
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        edges = np.stack([cv2.Canny(small[..., c], int(low), int(high)) for c in range(3)], axis=2)
        edges = edges.astype(np.float32) / 255.0
        if acc is None:
            acc = edges
        else:
            acc = cv2.resize(acc, size, interpolation=cv2.INTER_LINEAR)
            acc = acc * DECAY + edges * (1.0 - DECAY)
    assert acc is not None
    total = acc.sum(axis=2)
    return _stretch(total, 1.0, 99.0)


def _stretch(x: np.ndarray, low_pct: float, high_pct: float) -> np.ndarray:
    """Gives x mapped from its [low_pct, high_pct] percentiles onto 0–255 as uint8."""
    lo, hi = np.percentile(x, low_pct), np.percentile(x, high_pct)
    if hi <= lo:
        hi = float(x.max())
    if hi <= lo:
        return np.zeros(x.shape, np.uint8)
    return np.clip((x - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)


def control_image(edges: np.ndarray) -> np.ndarray:
    """Gives the ControlNet's RGB uint8 [H, W, 3] input for an edge map [H, W]."""
    return np.repeat(edges[..., None], 3, axis=2)
