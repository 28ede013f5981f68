"""Image quality: PSNR and SSIM (11×11 Gaussian window, σ = 1.5, as the 3DGS reference)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(image: Tensor, target: Tensor, where: Tensor | None = None) -> float:
    """Gives the PSNR in dB of image vs target, both [..., H, W, 3] in [0, 1], over the pixels
    where `where` [..., H, W, 1] (bool) is true, or all of them."""
    err = (image.clamp(0, 1) - target) ** 2
    if where is None:
        mse = torch.mean(err).item()
    else:
        w = where.to(err.dtype).expand_as(err)
        mse = (torch.sum(err * w) / w.sum().clamp_min(1.0)).item()
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)


def _window(size: int, sigma: float, channels: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(image: Tensor, target: Tensor, where: Tensor | None = None, size: int = 11,
         sigma: float = 1.5) -> Tensor:
    """Gives the mean SSIM (a differentiable 0-d tensor) of image vs target [B, H, W, C] in [0, 1],
    averaged over the pixels where `where` [B, H, W, 1] (bool) is true, or all of them."""
    x, y = image.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2)
    channels = x.shape[1]
    w = _window(size, sigma, channels, x.device, x.dtype)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, w, padding=size // 2, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    if where is None:
        return s.mean()
    w = where.permute(0, 3, 1, 2).to(s.dtype).expand_as(s)
    return (s * w).sum() / w.sum().clamp_min(1.0)


def splat_loss(image: Tensor, target: Tensor, ssim_lambda: float = 0.2) -> Tensor:
    """Gives the reference 3DGS loss (1 − λ)·L1 + λ·(1 − SSIM) of [B, H, W, 3] images."""
    l1 = torch.abs(image - target).mean()
    return (1.0 - ssim_lambda) * l1 + ssim_lambda * (1.0 - ssim(image, target))
