"""The fallback where no warp can be trusted: the key's colours transferred onto the frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _lab(image: np.ndarray) -> np.ndarray:
    """Gives float32 CIE Lab [H, W, 3] of an RGB image with values 0..255."""
    import cv2

    return cv2.cvtColor(np.asarray(image, np.float32) / 255.0, cv2.COLOR_RGB2LAB)


@dataclass(frozen=True)
class ColourTransfer:
    """Reinhard et al. (2001): match Lab mean and spread of the original key to its restyling."""

    source_mean: np.ndarray  # [3], Lab
    source_std: np.ndarray  # [3]
    target_mean: np.ndarray  # [3]
    target_std: np.ndarray  # [3]

    @classmethod
    def learn(cls, original: np.ndarray, styled: np.ndarray) -> ColourTransfer:
        """Gives the transfer that takes `original` [H, W, 3] towards `styled` [H', W', 3]."""
        a, b = _lab(original).reshape(-1, 3), _lab(styled).reshape(-1, 3)
        return cls(a.mean(0), a.std(0) + 1e-3, b.mean(0), b.std(0) + 1e-3)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Gives `image` [H, W, 3] (0..255) recoloured: float32 RGB [H, W, 3], 0..255."""
        return recolour(image, [(self, 1.0)])




def recolour(image: np.ndarray, transfers: list[tuple[ColourTransfer, float]]) -> np.ndarray:
    """Gives `image` [H, W, 3] through each transfer, mixed by weight: float32 RGB [H, W, 3], 0..255.

    The mix is taken in RGB (a mix of Lab maps would tint: half red, half blue is not purple).
    """
    import cv2

    lab = _lab(image)
    out = np.zeros(lab.shape, np.float32)
    for t, weight in transfers:
        if weight <= 0:
            continue
        scale = (t.target_std / t.source_std).astype(np.float32)
        offset = (t.target_mean - t.source_mean * scale).astype(np.float32)
        out += weight * np.clip(cv2.cvtColor(lab * scale + offset, cv2.COLOR_LAB2RGB) * 255.0, 0.0, 255.0)
    return out
