"""A pure-PyTorch Gaussian rasterizer: slow but runs anywhere (CPU CI), differentiable.

Projection reuses gsplat's pure-torch helpers (`gsplat.cuda._torch_impl`); compositing is ours:
every pixel–Gaussian pair inside the Gaussian's 3σ box, sorted by pixel then depth, alpha-blended
front to back with a segmented transmittance (exclusive cumulative sum of log(1 − α) in float64),
scatter-added into the image. It follows gsplat's classic CUDA rules: pixel centres at +0.5,
α = min(0.999, o·exp(−½ dᵀΣ⁻¹d)), pairs with α < 1/255 skipped, a pixel stops once its
transmittance would fall to 1e-4 or below.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
T_MIN = 1e-4
SH_C0 = 0.28209479177387814


def project(means: Tensor, quats: Tensor, scales: Tensor, viewmats: Tensor, Ks: Tensor,
            width: int, height: int, eps2d: float = 0.3, near_plane: float = 0.01
            ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gives (radii [C, N, 2] int px, means2d [C, N, 2] px, depths [C, N], conics [C, N, 3]).

    means [N, 3], quats [N, 4] (unnormalised, wxyz), scales [N, 3] (activated, world units),
    viewmats [C, 4, 4] world→camera (OpenCV), Ks [C, 3, 3] pixels. radii are 0 for culled ones.
    """
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

    covars, _ = _quat_scale_to_covar_preci(quats, scales, True, False, triu=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        means, covars, viewmats, Ks, width, height, eps2d=eps2d, near_plane=near_plane)
    return radii, means2d, depths, conics


def sh_colors(means: Tensor, coeffs: Tensor, viewmats: Tensor, sh_degree: int) -> Tensor:
    """Gives view-dependent RGB [C, N, 3] from SH coefficients coeffs [N, K, 3] (gsplat's rule)."""
    if sh_degree == 0:
        rgb = (coeffs[:, 0, :] * SH_C0)[None].expand(len(viewmats), -1, -1)
    else:
        from gsplat.cuda._torch_impl import _spherical_harmonics

        campos = torch.inverse(viewmats)[:, :3, 3]  # [C, 3]
        dirs = means[None] - campos[:, None]  # [C, N, 3]
        k = (sh_degree + 1) ** 2
        rgb = _spherical_harmonics(sh_degree, dirs, coeffs[None, :, :k].expand(len(viewmats), -1, -1, -1))
    return torch.clamp_min(rgb + 0.5, 0.0)


def composite(means2d: Tensor, conics: Tensor, colors: Tensor, opacities: Tensor, depths: Tensor,
              radii: Tensor, width: int, height: int, background: Tensor | None = None
              ) -> tuple[Tensor, Tensor]:
    """Gives (image [H, W, D], alpha [H, W, 1]) for one camera, front-to-back alpha blending.

    means2d [N, 2] px, conics [N, 3] (inverse 2-D covariance a, b, c), colors [N, D],
    opacities [N] in [0, 1], depths [N], radii [N, 2] px (0 = not visible), background [D].
    """
    device = means2d.device
    visible = (radii > 0).all(dim=-1)
    ids = torch.nonzero(visible).squeeze(1)
    # Integer pixel boxes, clipped to the image, as gsplat's 3σ radii define them.
    centre = means2d[ids].detach()
    r = radii[ids].to(centre.dtype)
    x0 = torch.clamp(torch.floor(centre[:, 0] - r[:, 0]), 0, width).long()
    x1 = torch.clamp(torch.ceil(centre[:, 0] + r[:, 0]), 0, width).long()
    y0 = torch.clamp(torch.floor(centre[:, 1] - r[:, 1]), 0, height).long()
    y1 = torch.clamp(torch.ceil(centre[:, 1] + r[:, 1]), 0, height).long()
    bw, bh = x1 - x0, y1 - y0
    counts = bw * bh
    keep = counts > 0
    ids, x0, y0, bw, counts = ids[keep], x0[keep], y0[keep], bw[keep], counts[keep]
    dim = colors.shape[-1]
    if len(ids) == 0:
        image = torch.zeros(height, width, dim, device=device, dtype=colors.dtype)
        if background is not None:
            image = image + background
        return image, torch.zeros(height, width, 1, device=device, dtype=colors.dtype)
    # One row per pixel–Gaussian pair.
    pair_g = torch.repeat_interleave(torch.arange(len(ids), device=device), counts)
    starts = torch.cumsum(counts, 0) - counts
    local = torch.arange(int(counts.sum()), device=device) - starts[pair_g]
    px = x0[pair_g] + local % bw[pair_g]
    py = y0[pair_g] + local // bw[pair_g]
    g = ids[pair_g]
    dx = px.to(means2d.dtype) + 0.5 - means2d[g, 0]
    dy = py.to(means2d.dtype) + 0.5 - means2d[g, 1]
    a, b, c = conics[g].unbind(-1)
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = torch.clamp_max(opacities[g] * torch.exp(-sigma), ALPHA_MAX)
    ok = (sigma >= 0) & (alpha >= ALPHA_MIN)
    alpha, g, pix = alpha[ok], g[ok], (py * width + px)[ok]
    # Sort by pixel, then by depth (a stable sort on depth rank, then on pixel).
    rank = torch.empty_like(depths, dtype=torch.long)
    rank[torch.argsort(depths.detach())] = torch.arange(len(depths), device=device)
    order = torch.argsort(pix * len(depths) + rank[g])
    alpha, g, pix = alpha[order], g[order], pix[order]
    # Exclusive transmittance within each pixel's run, in float64 so long runs stay exact.
    log_keep = torch.log1p(-alpha.double())
    inclusive = torch.cumsum(log_keep, 0)
    seg_start = torch.ones_like(pix, dtype=torch.bool)
    seg_start[1:] = pix[1:] != pix[:-1]
    first = torch.nonzero(seg_start).squeeze(1)
    run_id = torch.cumsum(seg_start.long(), 0) - 1
    before = (inclusive - log_keep)[first]  # cumulative sum just before each run
    excl = inclusive - log_keep - before[run_id]
    incl = excl + log_keep
    # gsplat stops a pixel once the next transmittance would be ≤ 1e-4 (that pair not drawn).
    drawn = incl > math.log(T_MIN)
    weights = (torch.exp(excl) * alpha.double()).to(colors.dtype) * drawn
    image = torch.zeros(height * width, dim, device=device, dtype=colors.dtype)
    image = image.index_add(0, pix, weights[:, None] * colors[g])
    t_sum = torch.zeros(height * width, device=device, dtype=torch.float64)
    t_sum = t_sum.index_add(0, pix, log_keep * drawn)
    transmittance = torch.exp(t_sum).to(colors.dtype)[:, None]
    if background is not None:
        image = image + transmittance * background
    return image.view(height, width, dim), (1.0 - transmittance).view(height, width, 1)


def rasterize(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, coeffs: Tensor,
              viewmats: Tensor, Ks: Tensor, width: int, height: int, sh_degree: int,
              background: Tensor | None = None) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Gives (rgb [C, H, W, 3], alpha [C, H, W, 1], info) like `gsplat.rasterization` unpacked.

    opacities [N] in [0, 1]; coeffs [N, K, 3] SH; background [3]. `info` has the keys the
    densification strategies read: means2d [C, N, 2] (retain its grad), radii [C, N, 2],
    width, height, n_cameras, gaussian_ids (None: not packed).
    """
    radii, means2d, depths, conics = project(means, quats, scales, viewmats, Ks, width, height)
    colors = sh_colors(means, coeffs, viewmats, sh_degree)
    images, alphas = [], []
    for cam in range(len(viewmats)):
        image, alpha = composite(means2d[cam], conics[cam], colors[cam], opacities, depths[cam],
                                 radii[cam], width, height, background)
        images.append(image)
        alphas.append(alpha)
    info = {"means2d": means2d, "radii": radii, "depths": depths, "conics": conics,
            "width": width, "height": height, "n_cameras": len(viewmats), "gaussian_ids": None}
    return torch.stack(images), torch.stack(alphas), info
