"""Dense optical flow between neighbouring frames (OpenCV DIS or Farnebäck, on the CPU)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

METHODS = ("dis", "farneback")


def gray(image: np.ndarray) -> np.ndarray:
    """Gives the luminance of an RGB uint8 [H, W, 3] image as uint8 [H, W]."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)


def dense_flow(a: np.ndarray, b: np.ndarray, method: str = "dis", *, fast: bool = False) -> np.ndarray:
    """Gives the flow from gray uint8 [H, W] `a` to `b`: float32 [H, W, 2], (dx, dy) in pixels.

    Pixel x of `a` shows what pixel x + flow[x] of `b` shows. `fast` trades accuracy for speed
    (for small residual motions).
    """
    import cv2

    if method == "dis":
        # One instance per call: DIS objects are not safe to share between threads.
        preset = cv2.DISOPTICAL_FLOW_PRESET_FAST if fast else cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
        dis = cv2.DISOpticalFlow_create(preset)
        return dis.calc(a, b, None)
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale=0.5, levels=2 if fast else 5,
                                            winsize=15, iterations=3, poly_n=5, poly_sigma=1.1, flags=0)
    raise ValueError(f"flow method {method!r}; accepted: {', '.join(METHODS)}")


def pair_flows(grays: Sequence[np.ndarray], method: str = "dis",
               workers: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Gives (forward, backward) flow for each neighbour pair (grays[j], grays[j + 1]).

    forward: [H, W, 2] from j to j + 1; backward: [H, W, 2] from j + 1 to j. OpenCV releases the
    GIL, so the pairs are computed on a few threads.
    """
    jobs = [(grays[j], grays[j + 1]) for j in range(len(grays) - 1)]
    workers = workers or min(8, os.cpu_count() or 1)

    def both(pair: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        a, b = pair
        return dense_flow(a, b, method), dense_flow(b, a, method)

    if workers <= 1 or len(jobs) <= 1:
        return [both(job) for job in jobs]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(both, jobs))
