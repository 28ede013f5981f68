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


@dataclass(frozen=True)
class ColourMap:
    """A look-up from original colours to restyled ones, learnt from pixel pairs (a key view
    against the original picture at the same pixels): the mean restyled colour of each cell of
    a `bins`³ RGB grid, shrunk towards a Reinhard transfer of the same pairs where a cell holds
    few pixels (`strength` pixels' worth of it), read with trilinear interpolation. Unlike one
    Reinhard transfer it follows a palette change that differs from colour to colour (a hue
    rotation, a posterisation); like it, it knows nothing of where a pixel is."""

    table: np.ndarray  # float32 [bins, bins, bins, 3]: RGB 0..255 at the cells' centres

    @classmethod
    def learn(cls, original: np.ndarray, styled: np.ndarray, bins: int = 16, strength: float = 2.0
              ) -> ColourMap:
        """Gives the map from pixel pairs: `original` and `styled` float or uint8 [N, 3], 0..255."""
        a = np.asarray(original, np.float32).reshape(-1, 3)
        b = np.asarray(styled, np.float32).reshape(-1, 3)
        cell = np.clip((a / 256.0 * bins).astype(np.int64), 0, bins - 1)
        flat = (cell[:, 0] * bins + cell[:, 1]) * bins + cell[:, 2]
        counts = np.bincount(flat, minlength=bins ** 3).astype(np.float32)
        sums = np.stack([np.bincount(flat, weights=b[:, c], minlength=bins ** 3) for c in range(3)], -1)
        centres = (np.stack(np.meshgrid(*[np.arange(bins)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) \
            * (256.0 / bins)
        prior = ColourTransfer.learn(a[None], b[None]).apply(centres[None].astype(np.float32))[0]
        table = (sums + strength * prior) / (counts + strength)[:, None]
        return cls(table.reshape(bins, bins, bins, 3).astype(np.float32))

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Gives `image` [H, W, 3] (0..255) recoloured: float32 RGB [H, W, 3], 0..255."""
        bins = self.table.shape[0]
        x = np.asarray(image, np.float32)
        pos = np.clip(x / 256.0 * bins - 0.5, 0, bins - 1)  # continuous cell coordinate
        lo = np.minimum(np.floor(pos).astype(np.int64), bins - 2) if bins > 1 else np.zeros(pos.shape, np.int64)
        frac = pos - lo
        out = np.zeros(x.shape, np.float32)
        for corner in range(8):
            bits = [(corner >> d) & 1 for d in range(3)]
            idx = [np.minimum(lo[..., d] + bits[d], bins - 1) for d in range(3)]
            weight = np.prod([frac[..., d] if bits[d] else 1 - frac[..., d] for d in range(3)], axis=0)
            out += weight[..., None] * self.table[idx[0], idx[1], idx[2]]
        return np.clip(out, 0.0, 255.0)




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
