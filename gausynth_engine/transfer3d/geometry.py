"""Cameras, the original Gaussians, and their renders with depth (for both rasterizers)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Cameras:
    """Undistorted pinhole cameras of one size: Ks [V, 3, 3] px, viewmats [V, 4, 4] world→camera
    (OpenCV), names [V] (the frames' file names)."""

    names: tuple[str, ...]
    Ks: np.ndarray
    viewmats: np.ndarray
    width: int
    height: int

    def __len__(self) -> int:
        return len(self.names)

    def centres(self) -> np.ndarray:
        """Gives the camera centres in world coordinates [V, 3]."""
        R, t = self.viewmats[:, :3, :3], self.viewmats[:, :3, 3]
        return -np.einsum("vji,vj->vi", R, t)


@dataclass
class Geometry:
    """Renders of the original Gaussians at every camera: premultiplied rgb [V, H, W, 3] in
    0..1, alpha [V, H, W], depth [V, H, W] (expected camera-space z, 0 where alpha ≈ 0)."""

    rgb: Tensor
    alpha: Tensor
    depth: Tensor


def load_gaussians(path: Path, device: str = "cpu") -> dict[str, Tensor]:
    """Gives the raw Gaussians of a 3DGS PLY as float32 tensors on `device`."""
    from ..splatting.ply import read_ply

    return {k: torch.as_tensor(np.ascontiguousarray(v), dtype=torch.float32, device=device)
            for k, v in read_ply(path).items()}


def sh_degree_of(params: dict[str, Tensor]) -> int:
    """Gives the SH degree the coefficients of `params` hold."""
    k = 1 + (params["shN"].shape[1] if "shN" in params else 0)
    return int(round(k ** 0.5)) - 1


def render_rgbd(params: dict[str, Tensor], viewmat: Tensor, K: Tensor, width: int, height: int,
                backend: str, sh_degree: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Gives (premultiplied rgb [H, W, 3], alpha [H, W], accumulated depth [H, W]) of one camera.

    Depth rides along as a fourth colour channel (Σ wᵢ zᵢ), so it is the same blend of the same
    Gaussians as the colours; divide by alpha for the expected depth. Differentiable.
    """
    degree = sh_degree_of(params) if sh_degree is None else sh_degree
    coeffs = params["sh0"] if "shN" not in params or degree == 0 else \
        torch.cat([params["sh0"], params["shN"]], 1)
    means, quats = params["means"], params["quats"]
    scales, opacities = torch.exp(params["scales"]), torch.sigmoid(params["opacities"])
    if backend == "gsplat":
        from gsplat import rasterization

        out, alpha, _ = rasterization(means, quats, scales, opacities, coeffs, viewmat[None], K[None],
                                      width, height, sh_degree=degree, packed=False,
                                      render_mode="RGB+D")
        return out[0, ..., :3], alpha[0, ..., 0], out[0, ..., 3]
    from ..splatting.rasterize_torch import composite, project, sh_colors

    radii, means2d, depths, conics = project(means, quats, scales, viewmat[None], K[None], width, height)
    colors = sh_colors(means, coeffs, viewmat[None], degree)[0]
    image, alpha = composite(means2d[0], conics[0], torch.cat([colors, depths[0][:, None]], 1),
                             opacities, depths[0], radii[0], width, height, None)
    return image[..., :3], alpha[..., 0], image[..., 3]


@torch.no_grad()
def render_geometry(params: dict[str, Tensor], cams: Cameras, backend: str,
                    sh_degree: int | None = None) -> Geometry:
    """Gives the renders (colour, alpha, expected depth) of `params` at every camera."""
    device = params["means"].device
    Ks = torch.as_tensor(cams.Ks, dtype=torch.float32, device=device)
    views = torch.as_tensor(cams.viewmats, dtype=torch.float32, device=device)
    rgbs, alphas, depths = [], [], []
    for v in range(len(cams)):
        rgb, alpha, acc = render_rgbd(params, views[v], Ks[v], cams.width, cams.height, backend,
                                      sh_degree)
        rgbs.append(rgb.clamp(0, 1))
        alphas.append(alpha)
        depths.append(torch.where(alpha > 1e-3, acc / alpha.clamp_min(1e-3), torch.zeros_like(acc)))
    return Geometry(torch.stack(rgbs), torch.stack(alphas), torch.stack(depths))
