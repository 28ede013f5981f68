"""Turn-arounds of a trained model: cameras on a circle about the object, and their renders.

The circle follows the SfM cameras when there are any (their mean up, distance, height and
focal length), else it is placed from the Gaussians alone. Renders use gsplat on CUDA and the
pure-PyTorch rasterizer elsewhere, at a small size (it is for the terminal).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .models import Cameras
from .server import scene_axes


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Gives the world→camera matrix [4, 4] (OpenCV: x right, y down, z forward) at `eye`
    looking at `target` with `up` pointing up in the image."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(-up, z)
    if np.linalg.norm(x) < 1e-9:  # looking along up: any right will do
        x = np.cross(np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0]), z)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    w2c = np.eye(4)
    w2c[:3, :3] = np.stack([x, y, z])
    w2c[:3, 3] = -w2c[:3, :3] @ eye
    return w2c


def looked_at(eyes: np.ndarray, forward: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Gives the point nearest to every camera's optical axis (least squares), the object the
    cameras circle; `fallback` when the axes are (nearly) parallel.

    eyes [C, 3] camera centres, forward [C, 3] unit viewing directions, in world.
    """
    d = forward / np.linalg.norm(forward, axis=1, keepdims=True)
    P = np.eye(3)[None] - d[:, :, None] * d[:, None, :]  # projectors onto each axis' normal plane
    A, b = P.sum(0), (P @ eyes[:, :, None]).sum(0)[:, 0]
    if np.linalg.cond(A) > 1e6:
        return fallback
    return np.linalg.solve(A, b)


def orbit_cameras(means: np.ndarray, cams: Cameras | None, frames: int = 24, size: int = 96
                  ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Gives (viewmats [F, 4, 4], Ks [F, 3, 3], width, height): `frames` views on a circle
    about the model's centre, the long side `size` px."""
    up, _, extent = scene_axes(cams, means)
    centre = np.median(means, axis=0) if len(means) else np.zeros(3)
    if cams is not None:
        eyes = np.stack([-v[:3, :3].T @ v[:3, 3] for v in cams.viewmats])
        centre = looked_at(eyes, cams.viewmats[:, 2, :3], centre)
        rel = eyes - centre
        height = float(np.median(rel @ up))
        flat = rel - np.outer(rel @ up, up)
        radius = float(np.median(np.linalg.norm(flat, axis=1))) or extent
        start = flat[0] / (np.linalg.norm(flat[0]) or 1.0)
        scale = size / max(cams.width, cams.height)
        width, h = max(2, round(cams.width * scale)), max(2, round(cams.height * scale))
        fx, fy = float(cams.Ks[0][0, 0]) * scale, float(cams.Ks[0][1, 1]) * scale
    else:
        height, radius = 0.3 * extent, 1.2 * extent
        start = np.cross(up, [0.0, 0.0, 1.0]) if abs(up[2]) < 0.9 else np.cross(up, [1.0, 0.0, 0.0])
        start = start / np.linalg.norm(start)
        width = h = size
        fx = fy = 0.5 * size / math.tan(math.radians(25))
    side = np.cross(up, start)
    viewmats = []
    for i in range(frames):
        a = 2 * math.pi * i / frames
        eye = centre + radius * (math.cos(a) * start + math.sin(a) * side) + height * up
        viewmats.append(look_at(eye, centre, up))
    K = np.array([[fx, 0, width / 2], [0, fy, h / 2], [0, 0, 1]], dtype=np.float64)
    return np.stack(viewmats), np.repeat(K[None], frames, 0), width, h


def render_orbit(params: dict[str, np.ndarray], cams: Cameras | None, frames: int = 24,
                 size: int = 96, device: str = "cpu", max_gaussians: int = 200_000,
                 background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Gives uint8 [F, H, W, 3]: the model seen from `orbit_cameras`, degree-0 colours.

    On the CPU only the `max_gaussians` most opaque Gaussians are drawn (the rest barely show
    at this size and would cost minutes).
    """
    import torch

    from ..splatting.rasterize import pick_backend, render

    means = np.asarray(params["means"], np.float32)
    keep = np.arange(len(means))
    if device == "cpu" and len(keep) > max_gaussians:
        keep = np.argsort(-np.asarray(params["opacities"]))[:max_gaussians]
    t = {k: torch.as_tensor(np.asarray(params[k], np.float32)[keep], device=device)
         for k in ("means", "scales", "quats", "opacities", "sh0")}
    t["sh0"] = t["sh0"].reshape(-1, 1, 3)
    viewmats, Ks, w, h = orbit_cameras(means, cams, frames, size)
    out = []
    bg = torch.tensor(background, device=device)
    with torch.no_grad():
        for i in range(frames):  # one at a time: the CPU rasterizer's memory grows with views
            rgb, _, _ = render(t, torch.as_tensor(viewmats[i:i + 1], dtype=torch.float32, device=device),
                               torch.as_tensor(Ks[i:i + 1], dtype=torch.float32, device=device), w, h,
                               sh_degree=0, background=bg, backend=pick_backend(device))
            out.append((rgb[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy())
    return np.stack(out)


def orbit_folder(layout, model) -> Path:
    """Gives where the orbit of a final model is kept: `.gausynth/artifacts/orbit/<training>-<iteration>/`."""
    return layout.artifacts / "orbit" / f"{model.path.parents[2].name}-{model.path.parent.name}"


def orbit_frames(layout, model, frames: int = 24, size: int = 96, device: str | None = None) -> list[Path]:
    """Gives the orbit's frame files of a run's model (rendered once, then kept beside the run).

    `model` is a `viewer.models.Model` (a final PLY); frames are PNGs `000.png`, `001.png`, …
    """
    import os
    import shutil

    from .._media import list_images, write_image
    from .models import cameras, load

    folder = orbit_folder(layout, model)
    done = list_images(folder) if folder.is_dir() else []
    if len(done) == frames and folder.stat().st_mtime >= model.path.stat().st_mtime:
        return done
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    images = render_orbit(load(model), cameras(layout), frames, size, device)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for i, image in enumerate(images):
        write_image(tmp / f"{i:03d}.png", image)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)
    return list_images(folder)
