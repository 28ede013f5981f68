"""The bundled sample: a synthetic turn-around of a textured object, with its true cameras.

The object (a sphere resting on a rounded box) is ray-cast analytically in NumPy with a solid
procedural texture and fixed world lighting, so every view is consistent, as SfM and 3DGS need.
Cameras follow the OpenCV convention (x right, y down, z forward); `world_to_camera` is 4×4.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._media import write_video


@dataclass(frozen=True)
class SampleSpec:
    frames: int = 96
    width: int = 640
    height: int = 480
    fps: float = 24.0
    fov_deg: float = 40.0
    radius: float = 5.0  # camera distance from the object's centre
    elevation_deg: float = 20.0


def orbit_cameras(spec: SampleSpec) -> tuple[np.ndarray, np.ndarray]:
    """Gives (K [3, 3], world_to_camera [F, 4, 4]) of a full 360° orbit around the z axis."""
    f = 0.5 * spec.width / math.tan(math.radians(spec.fov_deg) / 2)
    K = np.array([[f, 0, spec.width / 2], [0, f, spec.height / 2], [0, 0, 1]], dtype=np.float64)
    target = np.array([0.0, 0.0, 0.15])
    el = math.radians(spec.elevation_deg)
    poses = []
    for i in range(spec.frames):
        az = 2 * math.pi * i / spec.frames
        eye = target + spec.radius * np.array([math.cos(el) * math.cos(az),
                                               math.cos(el) * math.sin(az), math.sin(el)])
        forward = (target - eye) / np.linalg.norm(target - eye)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        R = np.stack([right, down, forward])  # rows: camera axes in world coordinates
        w2c = np.eye(4)
        w2c[:3, :3], w2c[:3, 3] = R, -R @ eye
        poses.append(w2c)
    return K, np.stack(poses)


def _hash3(ix: np.ndarray, iy: np.ndarray, iz: np.ndarray) -> np.ndarray:
    h = (ix * 73856093) ^ (iy * 19349663) ^ (iz * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h ^ (h >> 16)) & 0xFFFF).astype(np.float64) / 65535.0


def value_noise(p: np.ndarray, freq: float) -> np.ndarray:
    """Gives smooth 3-D value noise in [0, 1] at points p [N, 3]."""
    q = p * freq
    i = np.floor(q).astype(np.int64)
    f = q - i
    f = f * f * (3 - 2 * f)
    out = np.zeros(len(p))
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                w = ((f[:, 0] if dx else 1 - f[:, 0]) * (f[:, 1] if dy else 1 - f[:, 1])
                     * (f[:, 2] if dz else 1 - f[:, 2]))
                out += w * _hash3(i[:, 0] + dx, i[:, 1] + dy, i[:, 2] + dz)
    return out


def albedo(p: np.ndarray) -> np.ndarray:
    """Gives the solid texture's colour in [0, 1] at surface points p [N, 3] → [N, 3]."""
    n = sum(value_noise(p, fr) / k for k, fr in enumerate((2.5, 5.0, 10.0, 20.0), start=1))
    n = n / sum(1 / k for k in range(1, 5))
    spots = value_noise(p + 7.3, 28.0) > 0.72  # small sharp spots: corners for SIFT
    colour = np.stack([0.5 + 0.5 * np.sin(2 * np.pi * (3 * n + c)) for c in (0.0, 0.33, 0.66)], 1)
    colour = 0.15 + 0.8 * colour
    colour[spots] = 1.0 - colour[spots]
    return colour


def _intersect(origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gives (t [N], hit [N], normal [N, 3]) against the sphere and the box; inf where none."""
    n = len(dirs)
    t_best = np.full(n, np.inf)
    normal = np.zeros((n, 3))
    # Sphere of radius 0.75 centred at (0, 0, 0.35).
    c, r = np.array([0.0, 0.0, 0.35]), 0.75
    oc = origins - c
    b = np.einsum("ij,ij->i", oc, dirs)
    disc = b * b - (np.einsum("ij,ij->i", oc, oc) - r * r)
    ok = disc > 0
    t = np.where(ok, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
    t = np.where(t > 1e-6, t, np.inf)
    better = t < t_best
    t_best[better] = t[better]
    normal[better] = (origins[better] + t[better, None] * dirs[better] - c) / r
    # Box [-0.7, 0.7] × [-0.7, 0.7] × [-0.75, -0.25] (slab method).
    lo, hi = np.array([-0.7, -0.7, -0.75]), np.array([0.7, 0.7, -0.25])
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dirs
        t1, t2 = (lo - origins) * inv, (hi - origins) * inv
    tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
    t_near, t_far = tmin.max(1), tmax.min(1)
    t = np.where((t_near < t_far) & (t_near > 1e-6), t_near, np.inf)
    better = t < t_best
    t_best[better] = t[better]
    axis = tmin[better].argmax(1)
    nrm = np.zeros((better.sum(), 3))
    nrm[np.arange(len(axis)), axis] = -np.sign(dirs[better][np.arange(len(axis)), axis])
    normal[better] = nrm
    return t_best, np.isfinite(t_best), normal


def pixel_rays(K: np.ndarray, w2c: np.ndarray, width: int, height: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Gives (origins [H·W, 3], unit directions [H·W, 3]) in world space of every pixel centre."""
    R, tvec = w2c[:3, :3], w2c[:3, 3]
    eye = -R.T @ tvec
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    pix = np.stack([(xs + 0.5 - K[0, 2]) / K[0, 0], (ys + 0.5 - K[1, 2]) / K[1, 1],
                    np.ones_like(xs)], -1).reshape(-1, 3)
    dirs = pix @ R  # camera → world (R is orthonormal)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return np.broadcast_to(eye, dirs.shape), dirs


def render_view(K: np.ndarray, w2c: np.ndarray, width: int, height: int,
                texture: Callable[[np.ndarray], np.ndarray] = albedo) -> np.ndarray:
    """Gives the RGB uint8 [H, W, 3] image of the object seen by one camera (`texture`: the
    colour [N, 3] in [0, 1] at surface points [N, 3]; another one restyles every view alike)."""
    origins, dirs = pixel_rays(K, w2c, width, height)
    t, hit, normal = _intersect(origins, dirs)
    image = np.full((len(dirs), 3), 0.96)  # a plain light backdrop
    points = origins[hit] + t[hit, None] * dirs[hit]
    light = np.array([0.4, -0.5, 0.77])
    light /= np.linalg.norm(light)
    shade = 0.45 + 0.55 * np.clip(normal[hit] @ light, 0, 1)
    image[hit] = texture(points) * shade[:, None]
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(height, width, 3)


def make_sample(folder: Path, spec: SampleSpec = SampleSpec()) -> Path:
    """Renders the turn-around into `folder/turnaround.mp4` (+ cameras JSON); gives the video path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    K, poses = orbit_cameras(spec)
    video = folder / "turnaround.mp4"
    tmp = folder / ".turnaround.tmp.mp4"
    write_video(tmp, (render_view(K, p, spec.width, spec.height) for p in poses), spec.fps)
    cameras = {"width": spec.width, "height": spec.height, "fps": spec.fps, "K": K.tolist(),
               "convention": "OpenCV; world_to_camera maps world points into the camera",
               "frames": [{"index": i, "world_to_camera": p.tolist()} for i, p in enumerate(poses)]}
    (folder / "turnaround.cameras.json").write_text(json.dumps(cameras, indent=1))
    tmp.replace(video)
    return video
