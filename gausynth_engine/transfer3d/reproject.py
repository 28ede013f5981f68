"""Reproject: every camera's surface points, looked up in the key views that see them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .geometry import Cameras, Geometry
from .keys import KeyView

SELF_WEIGHT = 1e4  # a key camera takes its own key view wherever that view is valid


def _sample(image: Tensor, u: Tensor, v: Tensor, mode: str) -> Tensor:
    """Gives image [H, W, C] read at continuous pixel coordinates u, v [H', W'] (centres at +½)."""
    h, w = image.shape[:2]
    grid = torch.stack([u / w * 2 - 1, v / h * 2 - 1], -1)[None]
    out = F.grid_sample(image.permute(2, 0, 1)[None], grid, mode=mode, padding_mode="zeros",
                        align_corners=False)
    return out[0].permute(1, 2, 0)


def lift(depth: Tensor, K: Tensor, viewmat: Tensor) -> Tensor:
    """Gives the world points [H, W, 3] of every pixel of one camera at its rendered depth [H, W]."""
    h, w = depth.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=depth.device, dtype=depth.dtype) + 0.5,
                            torch.arange(w, device=depth.device, dtype=depth.dtype) + 0.5, indexing="ij")
    rays = torch.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], torch.ones_like(xs)], -1)
    cam = rays * depth[..., None]
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    return (cam - t) @ R  # Rᵀ(x − t), row vectors


@torch.no_grad()
def reproject(geometry: Geometry, cams: Cameras, keys: Sequence[KeyView], fill: Tensor, *,
              depth_tolerance: float = 0.03, angle_power: float = 8.0,
              views: Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
    """Gives (rgb [V, H, W, 3] in 0..1, coverage [V, H, W] in 0..1) for the cameras `views`
    (default: all): the key views carried onto each camera through the rendered depth.

    A key sees a pixel's surface point when the point projects inside its image, in front of
    it, onto its object (alpha > ½) at the depth the key camera renders there (relative error ≤
    `depth_tolerance`). Keys that see it are blended with weight cos(angle between the two
    viewing rays)^`angle_power`; `fill` [V, H, W, 3] colours what no key sees (coverage 0).
    """
    device = geometry.depth.device
    Ks = torch.as_tensor(cams.Ks, dtype=torch.float32, device=device)
    W2C = torch.as_tensor(cams.viewmats, dtype=torch.float32, device=device)
    centres = torch.as_tensor(cams.centres(), dtype=torch.float32, device=device)
    key_rgb = [torch.as_tensor(np.dstack([k.rgb, k.valid, k.mask]), dtype=torch.float32, device=device)
               for k in keys]
    views = list(range(len(cams))) if views is None else list(views)
    out_rgb, out_cov = [], []
    for v in views:
        points = lift(geometry.depth[v], Ks[v], W2C[v])  # [H, W, 3]
        ray_v = F.normalize(points - centres[v], dim=-1)
        total = torch.zeros(points.shape[:2], device=device)
        colour = torch.zeros(*points.shape[:2], 3, device=device)
        for key, image in zip(keys, key_rgb, strict=True):
            k = key.index
            local = points @ W2C[k, :3, :3].T + W2C[k, :3, 3]
            z = local[..., 2]
            zs = z.clamp_min(1e-6)
            u = Ks[k, 0, 0] * local[..., 0] / zs + Ks[k, 0, 2]
            uv_v = Ks[k, 1, 1] * local[..., 1] / zs + Ks[k, 1, 2]
            seen_depth = _sample(geometry.depth[k][..., None], u, uv_v, "nearest")[..., 0]
            seen_alpha = _sample(geometry.alpha[k][..., None], u, uv_v, "nearest")[..., 0]
            looked = _sample(image, u, uv_v, "bilinear")  # rgb, valid, mask
            visible = ((z > 1e-6) & (seen_alpha > 0.5)
                       & ((z - seen_depth).abs() <= depth_tolerance * seen_depth)).float()
            cos = (ray_v * F.normalize(points - centres[k], dim=-1)).sum(-1).clamp_min(0)
            weight = visible * looked[..., 3] * (0.05 + 0.95 * looked[..., 4]) * cos ** angle_power
            if k == v:
                weight = weight * SELF_WEIGHT
            rgb = looked[..., :3] / looked[..., 3:4].clamp_min(1e-6)
            colour += weight[..., None] * rgb
            total += weight
        coverage = (total / 1e-3).clamp(0, 1) * (geometry.alpha[v] > 1e-3)
        carried = colour / total.clamp_min(1e-8)[..., None]
        out_rgb.append((coverage[..., None] * carried + (1 - coverage[..., None]) * fill[v]).clamp(0, 1))
        out_cov.append(coverage)
    return torch.stack(out_rgb), torch.stack(out_cov)
