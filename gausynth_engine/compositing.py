"""Compositing: the one copy of alpha-over-background, cut-outs and alpha resizing.

Alpha is float [H, W] in [0, 1] (straight, not premultiplied), images uint8. The cut-outs of
blend and mask, the preview videos of RGBA frames, the 3D route's frames and the 3DGS training
targets are all put over their background here.
"""

from __future__ import annotations

import numpy as np

WHITE = (1.0, 1.0, 1.0)


def resize_alpha(alpha: np.ndarray, side: int) -> np.ndarray:
    """Gives a square alpha resized to side × side (area when shrinking, linear when growing)."""
    import cv2

    if alpha.shape == (side, side):
        return alpha
    interp = cv2.INTER_AREA if alpha.shape[0] > side else cv2.INTER_LINEAR
    return np.clip(cv2.resize(alpha, (side, side), interpolation=interp), 0.0, 1.0)


def over(rgb: np.ndarray, alpha: np.ndarray,
         background: tuple[float, float, float] = WHITE) -> np.ndarray:
    """Gives RGB uint8 [H, W, 3]: the image over `background` (RGB in [0, 1]) through `alpha`
    [H, W] in [0, 1] (rgb·a + 255·bg·(1 − a), rounded half up)."""
    a = alpha[..., None].astype(np.float32)
    bg = np.asarray(background, np.float32) * 255.0
    out = rgb[..., :3].astype(np.float32) * a + bg * (1.0 - a)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Gives RGB uint8 [H, W, 3]: the image over white through `alpha` (rgb·a + 255·(1 − a))."""
    return over(rgb, alpha)


def flatten(image: np.ndarray, background: tuple[float, float, float] = WHITE) -> np.ndarray:
    """Gives RGB uint8 [H, W, 3]: an RGBA uint8 image over `background` through its own alpha;
    an RGB image unchanged."""
    if image.shape[2] == 3:
        return image
    return over(image[..., :3], image[..., 3].astype(np.float32) / 255.0, background)


def rgba(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Gives RGBA uint8 [H, W, 4]: the image's own colours with `alpha` (straight, not premultiplied)."""
    a = np.clip(np.rint(alpha * 255.0), 0, 255).astype(np.uint8)
    return np.concatenate([rgb[..., :3], a[..., None]], axis=2)


def fill_silhouette(orig: np.ndarray, reim: np.ndarray, orig_alpha: np.ndarray,
                    reim_alpha: np.ndarray) -> np.ndarray:
    """Gives RGB uint8 [H, W, 3] over white: the reimagined object inside the original's silhouette.

    Where the reimagined cut-out is empty (its alpha low) the original object shows through, so
    the outline is always the original's (what SfM's poses were estimated on).
    """
    e = reim_alpha[..., None].astype(np.float32)
    inside = reim[..., :3].astype(np.float32) * e + orig[..., :3].astype(np.float32) * (1.0 - e)
    return on_white(inside, orig_alpha)
