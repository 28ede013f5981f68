"""Image quality measures, one copy each: PSNR, SSIM, and LPIPS when its weights are local.

Full-reference measures of RGB uint8 [H, W, 3] images (data range 255), and the PSNR of a mean
squared error for the float [0, 1] images of the 3D code. The 2D stages' metrics.json rows
(`metrics2d`), the 3D trainers and the benches all measure with these.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

PSNR_IDENTICAL = 100.0  # dB given for identical images (keeps metrics.json plain JSON)
MSE_FLOOR = 1e-10  # the least MSE `psnr_of_mse` takes (a perfect fit gives 100 dB, not inf)


def psnr_of_mse(mse: float, peak: float = 1.0) -> float:
    """Gives the PSNR in dB of a mean squared error at data range `peak` (MSE floored at 1e-10)."""
    return 10.0 * math.log10(peak**2 / max(mse, MSE_FLOOR))


# --- full-reference measures on uint8 RGB [H, W, 3] -----------------------------------------------
def psnr(ref: np.ndarray, out: np.ndarray) -> float:
    """Gives the PSNR in dB of `out` against `ref` (uint8, data range 255)."""
    mse = float(np.mean((ref.astype(np.float64) - out.astype(np.float64)) ** 2))
    return PSNR_IDENTICAL if mse == 0 else min(PSNR_IDENTICAL, 10.0 * math.log10(255.0**2 / mse))


def ssim(ref: np.ndarray, out: np.ndarray) -> float:
    """Gives the mean SSIM of `out` against `ref` (Wang et al. 2004: Gaussian σ 1.5, 11 px window),
    averaged over the colour channels."""
    import cv2

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = ref.astype(np.float64), out.astype(np.float64)

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(m.mean())


# --- optional learned measures ---------------------------------------------------------------------
def lpips_scorer(device: str, log: Callable[[str], None]) -> Callable[[np.ndarray, np.ndarray], float] | None:
    """Gives an LPIPS (AlexNet) function of two uint8 images, or None (and says why) without weights."""
    try:
        import lpips  # noqa: F401
        import torch
        import torchvision  # noqa: F401
    except ImportError as e:
        log(f"LPIPS skipped: the {e.name} package is not installed")
        return None
    ckpt = os.path.join(torch.hub.get_dir(), "checkpoints", "alexnet-owt-7be5be79.pth")
    if not os.path.isfile(ckpt):
        log(f"LPIPS skipped: the AlexNet weights are not on this machine ({ckpt})")
        return None
    import lpips

    net = lpips.LPIPS(net="alex", verbose=False).to(device).eval()

    def score(ref: np.ndarray, out: np.ndarray) -> float:
        def t(a: np.ndarray) -> Any:
            return torch.from_numpy(a).permute(2, 0, 1)[None].float().to(device) / 255.0

        with torch.inference_mode():
            return float(net(t(ref), t(out), normalize=True).item())  # normalize: [0,1] → [-1,1]

    return score
