"""Renders the sparse point cloud and the camera frusta from an orbiting viewpoint (no display).

Plain NumPy projection with a painter's sort and OpenCV lines; frames are RGB uint8 [H, W, 3].
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

BACKGROUND = (24, 24, 28)
FRUSTUM = (235, 90, 60)
FIRST = (90, 220, 120)


def scene_of(reconstruction: Any) -> dict[str, np.ndarray]:
    """Gives points [N, 3], colours [N, 3] uint8, camera centres [C, 3], camera-to-world
    rotations [C, 3, 3], and per camera (fx, fy, cx, cy, w, h) [C, 6], ordered by image name."""
    pts = [(p.xyz, p.color) for p in reconstruction.points3D.values()]
    points = np.array([p for p, _ in pts], dtype=np.float64).reshape(-1, 3)
    colours = np.array([c for _, c in pts], dtype=np.uint8).reshape(-1, 3)
    images = sorted((im for im in reconstruction.images.values() if im.has_pose), key=lambda i: i.name)
    rots, centres, intr = [], [], []
    for im in images:
        cam_from_world = im.cam_from_world()
        R = cam_from_world.rotation.matrix()
        rots.append(R.T)
        centres.append(im.projection_center())
        cam = im.camera
        K = cam.calibration_matrix()
        intr.append([K[0, 0], K[1, 1], K[0, 2], K[1, 2], cam.width, cam.height])
    return {"points": points, "colours": colours, "centres": np.array(centres).reshape(-1, 3),
            "rotations": np.array(rots).reshape(-1, 3, 3), "intrinsics": np.array(intr).reshape(-1, 6)}


def render_orbit(reconstruction: Any, frames: int = 72, size: tuple[int, int] = (640, 480)
                 ) -> Iterator[np.ndarray]:
    """Yields `frames` RGB views [H, W, 3] circling the model once around its cameras' up axis."""
    import cv2

    scene = scene_of(reconstruction)
    centres, points = scene["centres"], scene["points"]
    centre = np.median(centres, axis=0) if len(points) == 0 else np.median(points, axis=0)
    # Up: against the cameras' mean y axis (OpenCV cameras look along z with y down).
    up = -scene["rotations"][:, :, 1].mean(0)
    up /= np.linalg.norm(up) + 1e-12
    radius = np.percentile(np.linalg.norm(centres - centre, axis=1), 90) if len(centres) else 1.0
    if len(points):
        keep = np.linalg.norm(points - centre, axis=1) < 1.5 * radius
        points, colours = points[keep], scene["colours"][keep]
    else:
        colours = scene["colours"]
    side = np.cross(up, [1.0, 0.0, 0.0])
    if np.linalg.norm(side) < 0.1:
        side = np.cross(up, [0.0, 1.0, 0.0])
    side /= np.linalg.norm(side)
    ahead = np.cross(up, side)
    w, h = size
    f = 1.1 * w
    depth = 0.12 * radius
    corners = _frustum_corners(scene["intrinsics"], scene["rotations"], centres, depth)
    for k in range(frames):
        angle = 2 * np.pi * k / frames
        eye = centre + 2.4 * radius * (np.cos(angle) * side + np.sin(angle) * ahead) + 1.1 * radius * up
        R = _look_at(eye, centre, up)
        image = np.full((h, w, 3), BACKGROUND, dtype=np.uint8)
        uv, z = _project(points, R, eye, f, w, h)
        ok = (z > 1e-6) & (uv[:, 0] >= 0) & (uv[:, 0] < w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] < h - 1)
        order = np.argsort(-z[ok])  # far first, near last: near points win
        u = uv[ok][order].astype(int)
        c = colours[ok][order]
        for du in (0, 1):
            for dv in (0, 1):
                image[u[:, 1] + dv, u[:, 0] + du] = c
        for n in range(len(centres)):
            _draw_frustum(image, centres[n], corners[n], R, eye, f, FIRST if n == 0 else FRUSTUM, cv2)
        yield image


def _frustum_corners(intr: np.ndarray, rots: np.ndarray, centres: np.ndarray, depth: float) -> np.ndarray:
    """Gives the four image corners of each camera at `depth` in world coordinates [C, 4, 3]."""
    out = np.zeros((len(centres), 4, 3))
    for n, (fx, fy, cx, cy, w, h) in enumerate(intr):
        rays = np.array([[(x - cx) / fx, (y - cy) / fy, 1.0] for x, y in ((0, 0), (w, 0), (w, h), (0, h))])
        out[n] = centres[n] + depth * rays @ rots[n].T
    return out


def _look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Gives the world-to-camera rotation [3, 3] of an OpenCV camera at eye looking at target."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right) + 1e-12
    down = np.cross(forward, right)
    return np.stack([right, down, forward])


def _project(points: np.ndarray, R: np.ndarray, eye: np.ndarray, f: float, w: int, h: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Gives pixel positions [N, 2] and depths [N] of world points in the orbit camera."""
    cam = (points - eye) @ R.T
    z = cam[:, 2]
    safe = np.where(np.abs(z) < 1e-9, 1e-9, z)
    uv = np.stack([f * cam[:, 0] / safe + w / 2, f * cam[:, 1] / safe + h / 2], axis=1)
    return uv, z


def _draw_frustum(image: np.ndarray, centre: np.ndarray, corners: np.ndarray, R: np.ndarray,
                  eye: np.ndarray, f: float, colour: tuple[int, int, int], cv2: Any) -> None:
    h, w = image.shape[:2]
    uv, z = _project(np.vstack([centre, corners]), R, eye, f, w, h)
    if (z <= 1e-6).any():
        return
    p = [tuple(int(round(v)) for v in q) for q in np.clip(uv, -10 * w, 10 * w)]
    for k in range(4):
        cv2.line(image, p[0], p[1 + k], colour, 1, cv2.LINE_AA)
        cv2.line(image, p[1 + k], p[1 + (k + 1) % 4], colour, 1, cv2.LINE_AA)
