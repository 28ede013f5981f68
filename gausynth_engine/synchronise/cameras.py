"""Which V of the SfM cameras the synchronised diffusion sees, and their square diffusion frames."""

from __future__ import annotations

import math

import numpy as np

from ..splatting.dataset import camera_centres, optical_axes_system

VIEW_CHOICES = ("turnaround", "frames")


def azimuths(viewmats: np.ndarray) -> np.ndarray:
    """Gives each camera's angle [V] (radians) around the object, in the plane of the orbit.

    The orbit's plane is the best-fit plane of the camera centres; the object's centre is the
    point nearest to all optical axes (least squares), which a turn-around looks at.
    """
    centres = camera_centres(viewmats)
    target = np.linalg.lstsq(*optical_axes_system(viewmats), rcond=None)[0]
    _, _, vt = np.linalg.svd(centres - centres.mean(0))
    normal = vt[2]
    u = centres[0] - target
    u = u - normal * (u @ normal)
    if np.linalg.norm(u) < 1e-9:
        u = vt[0]
    u /= np.linalg.norm(u)
    w = np.cross(normal, u)
    rel = centres - target
    return np.arctan2(rel @ w, rel @ u)


def select_views(viewmats: np.ndarray, count: int, how: str = "turnaround") -> list[int]:
    """Gives `count` camera indices (sorted) spread around the object.

    "turnaround": evenly spaced in azimuth over the arc the cameras cover (the whole circle for
    a full turn), each target taking the nearest unused camera; "frames": evenly spaced in
    frame order. All cameras when there are no more than `count`.
    """
    n = len(viewmats)
    if count >= n:
        return list(range(n))
    if how == "frames":
        return sorted({round(k * n / count) % n for k in range(count)})
    if how != "turnaround":
        raise ValueError(f"view choice {how!r}; accepted: {', '.join(VIEW_CHOICES)}")
    angles = np.mod(azimuths(viewmats), 2 * math.pi)
    order = np.argsort(angles)
    sorted_angles = angles[order]
    gaps = np.diff(np.concatenate([sorted_angles, sorted_angles[:1] + 2 * math.pi]))
    widest = int(np.argmax(gaps))
    start = sorted_angles[(widest + 1) % n]
    span = 2 * math.pi - gaps[widest]
    if gaps[widest] > 2 * math.pi / count:  # a partial arc: spread from one end to the other
        targets = start + np.linspace(0.0, span, count)
    else:  # a full turn: evenly around the circle
        targets = start + 2 * math.pi * np.arange(count) / count
    free = set(range(n))
    chosen = []
    for target in targets:
        diff = np.abs(np.angle(np.exp(1j * (angles - target))))
        best = min(free, key=lambda i: diff[i])
        free.discard(best)
        chosen.append(best)
    return sorted(chosen)


def square_intrinsics(K: np.ndarray, width: int, height: int, side: int) -> np.ndarray:
    """Gives K [3, 3] for a side × side image that holds the whole width × height view, scaled
    so that its long side fits and centred (the short side padded), as the diffusion sees it."""
    scale = side / max(width, height)
    out = np.array(K, dtype=np.float64)
    out[:2] *= scale
    out[0, 2] += (side - width * scale) / 2
    out[1, 2] += (side - height * scale) / 2
    return out
