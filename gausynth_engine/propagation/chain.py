"""Following pixels from a key frame through a run of frames, with a per-pixel confidence.

A chain holds, for every pixel of the current frame, where it came from in the key frame
(absolute coordinates, float32 [H, W, 2]) and how far that can be trusted (float32 [H, W] in
0..1). Each step composes one more flow; the key image itself is resampled only once per
frame, so detail does not blur away along the chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=4)
def identity_grid(height: int, width: int) -> np.ndarray:
    """Gives float32 [H, W, 2] with each pixel's own (x, y) (shared: do not write into it)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    grid = np.dstack([xs, ys])
    grid.flags.writeable = False
    return grid


def sample(image: np.ndarray, coords: np.ndarray, *, border: str = "replicate",
           cubic: bool = False) -> np.ndarray:
    """Gives `image` [H, W, C] or [H, W] read at float32 [H', W', 2] coordinates (x, y)."""
    import cv2

    mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    interp = cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR
    return cv2.remap(image, coords, None, interp, borderMode=mode, borderValue=0)


def consistency(flow: np.ndarray, back: np.ndarray, landing: np.ndarray, tolerance_px: float) -> np.ndarray:
    """Gives float32 [H, W] in 0..1: how well going along `flow` and back along `back` returns.

    `flow` [H, W, 2] goes from this frame to the other, `back` [H, W, 2] from the other to this
    one, `landing` = grid + flow. Occluded and mismatched pixels fail the round trip (Sundaram et
    al. 2010: the error may grow with the motion); pixels that land outside the frame get 0.
    """
    import cv2

    h, w = flow.shape[:2]
    returned = sample(back, landing)
    square = lambda v: np.einsum("ijk,ijk->ij", v, v)  # noqa: E731 - squared length per pixel
    err2 = square(flow + returned)
    allowed = 0.01 * (square(flow) + square(returned)) + tolerance_px**2
    conf = np.exp(-np.maximum(err2 - allowed, 0.0) / (tolerance_px**2))
    inside = ((landing[..., 0] > -0.5) & (landing[..., 0] < w - 0.5)
              & (landing[..., 1] > -0.5) & (landing[..., 1] < h - 0.5))
    conf *= inside
    # Distrust a thin rim around failures too: flow is unreliable next to occlusion edges.
    conf = cv2.erode(conf.astype(np.float32), np.ones((3, 3), np.uint8))
    return cv2.GaussianBlur(conf, (0, 0), 1.0)


@dataclass
class Chain:
    """Where each pixel of the current frame was in the key frame, and how sure that is."""

    coords: np.ndarray  # float32 [H, W, 2], (x, y) in the key frame
    confidence: np.ndarray  # float32 [H, W], 0..1

    @classmethod
    def start(cls, height: int, width: int) -> Chain:
        """Gives the chain of the key frame itself: every pixel is where it is, fully trusted."""
        return cls(identity_grid(height, width).copy(), np.ones((height, width), np.float32))

    def step(self, flow: np.ndarray, back: np.ndarray, tolerance_px: float) -> Chain:
        """Gives the chain one frame further, along `flow` [H, W, 2] (new frame → current frame).

        `back` [H, W, 2] is the flow from the current frame to the new one, for the round trip.
        """
        h, w = flow.shape[:2]
        landing = identity_grid(h, w) + flow
        coords = sample(self.coords, landing)
        trusted = sample(self.confidence, landing, border="constant")
        return Chain(coords, trusted * consistency(flow, back, landing, tolerance_px))

    def follow(self, flow: np.ndarray) -> Chain:
        """Gives the chain one frame further along `flow` alone, trusting it blindly (the baseline)."""
        h, w = flow.shape[:2]
        return Chain(sample(self.coords, identity_grid(h, w) + flow), self.confidence)

    def warp(self, key: np.ndarray) -> np.ndarray:
        """Gives the key image float32 [H, W, C] carried onto the current frame."""
        return sample(key, self.coords, cubic=True)
