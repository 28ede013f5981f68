"""Renders Gaussians with gsplat's CUDA rasterizer, or the pure-PyTorch one where CUDA is absent."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

BACKENDS = ("gsplat", "torch")


def pick_backend(device: str) -> str:
    """Gives "gsplat" on a CUDA device, "torch" otherwise (gsplat has no CPU rasterizer)."""
    return "gsplat" if str(device).startswith("cuda") else "torch"


def render(params: dict[str, Tensor], viewmats: Tensor, Ks: Tensor, width: int, height: int, *,
           sh_degree: int, background: Tensor | None, backend: str, packed: bool = False,
           antialiased: bool = False, absgrad: bool = False
           ) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Gives (rgb [C, H, W, 3] in [0, 1]-ish, alpha [C, H, W, 1], info for the strategies).

    `params` holds the raw (pre-activation) Gaussians: means [N, 3], quats [N, 4],
    scales [N, 3] (log), opacities [N] (logit), sh0 [N, 1, 3] and, for degree > 0, shN [N, K-1, 3].
    viewmats [C, 4, 4] world→camera (OpenCV), Ks [C, 3, 3] in pixels; background [3] in [0, 1].
    `antialiased` and `absgrad` are gsplat's options (CUDA only).
    """
    coeffs = params["sh0"] if "shN" not in params else torch.cat([params["sh0"], params["shN"]], 1)
    means, quats = params["means"], params["quats"]
    scales, opacities = torch.exp(params["scales"]), torch.sigmoid(params["opacities"])
    bg = None if background is None else background[None].expand(len(viewmats), -1)
    if backend == "gsplat":
        from gsplat import rasterization

        options = {"rasterize_mode": "antialiased" if antialiased else "classic", "absgrad": absgrad}
        if not packed:
            return rasterization(means, quats, scales, opacities, coeffs, viewmats, Ks, width,
                                 height, sh_degree=sh_degree, packed=False, backgrounds=bg, **options)
        # gsplat 1.5.3 rejects backgrounds in packed mode (its shape check reads the packed
        # means2d): blend the background ourselves, which is the same sum.
        rgb, alpha, info = rasterization(means, quats, scales, opacities, coeffs, viewmats, Ks,
                                         width, height, sh_degree=sh_degree, packed=True, **options)
        if bg is not None:
            rgb = rgb + (1.0 - alpha) * bg[:, None, None, :]
        return rgb, alpha, info
    if backend == "torch":
        from .rasterize_torch import rasterize

        if antialiased or absgrad:
            raise ValueError("antialiased / absgrad rasterization needs gsplat's CUDA kernels")
        return rasterize(means, quats, scales, opacities, coeffs, viewmats, Ks, width, height,
                         sh_degree, background)
    raise ValueError(f"rasterizer backend {backend!r}; accepted: {', '.join(BACKENDS)}")
