"""A small RGB picture of a latent, by a fixed linear map (no VAE decode: it costs nothing)."""

from __future__ import annotations

from typing import Any

import numpy as np

# SD-XL latent channels → RGB (in the scaled latent space the sampler works in), as previewers
# of the SD-XL family use them: rgb ≈ latent · FACTORS + BIAS, roughly in [-1, 1].
SDXL_RGB_FACTORS = np.array([[0.3651, 0.4232, 0.4341],
                             [-0.2533, -0.0042, 0.1068],
                             [0.1076, 0.1111, -0.0362],
                             [-0.3165, -0.2492, -0.2188]], np.float32)
SDXL_RGB_BIAS = np.array([0.1084, -0.0175, -0.0011], np.float32)


def latent_to_rgb(latent: Any) -> np.ndarray:
    """Gives RGB uint8 [h, w, 3] for the first latent of a batch [B, C, h, w] (a torch tensor).

    Four-channel latents use the SD-XL map; others show their first three channels stretched.
    """
    x = latent[0].detach().float().cpu().numpy().transpose(1, 2, 0)  # [h, w, C]
    if x.shape[2] == 4:
        rgb = (x @ SDXL_RGB_FACTORS + SDXL_RGB_BIAS + 1.0) / 2.0
    else:
        x = x[..., :3] if x.shape[2] >= 3 else np.repeat(x[..., :1], 3, axis=2)
        lo, hi = x.min(), x.max()
        rgb = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
