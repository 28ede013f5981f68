"""Bake: the original Gaussians' colours fitted to the key views, geometry left as it was."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..splatting.model import SH_C0
from .geometry import Cameras, render_rgbd
from .keys import KeyView

SEEN_WEIGHT = 0.05  # total blend weight (≈ pixels' worth) below which a Gaussian counts as unseen


def _targets(keys: Sequence[KeyView], device: torch.device) -> list[tuple[Tensor, Tensor]]:
    """Gives per key (rgb [H, W, 3], pixel weight [H, W]): valid tile, trusted most on its object."""
    out = []
    for k in keys:
        rgb = torch.as_tensor(k.rgb, dtype=torch.float32, device=device)
        weight = torch.as_tensor(k.valid * (0.05 + 0.95 * k.mask), dtype=torch.float32, device=device)
        out.append((rgb, weight))
    return out


def neighbour_deltas(means: Tensor, seen: Tensor, delta: Tensor, k: int = 8,
                     chunk: int = 4096) -> Tensor:
    """Gives, for every Gaussian not `seen` [N] bool, the inverse-distance mean of the colour
    change `delta` [N, 3] of its k nearest seen Gaussians: [U, 3] in the order of ~seen."""
    src, dst = means[seen], means[~seen]
    if len(src) == 0 or len(dst) == 0:
        return torch.zeros(len(dst), 3, device=means.device)
    k = min(k, len(src))
    out = []
    for start in range(0, len(dst), chunk):
        d, idx = torch.cdist(dst[start:start + chunk], src).topk(k, largest=False)
        w = 1.0 / (d + 1e-6)
        out.append((w[..., None] * delta[seen][idx]).sum(1) / w.sum(1, keepdim=True))
    return torch.cat(out)


def bake(params: dict[str, Tensor], cams: Cameras, keys: Sequence[KeyView], backend: str, *,
         steps: int = 200, lr: float = 0.05, neighbours: int = 8, seed: int = 0,
         progress: Callable[[int, int], None] | None = None) -> tuple[dict[str, Tensor], Tensor]:
    """Gives (the Gaussians with baked degree-0 colours, seen [N] bool: which some key sees).

    params: raw Gaussians (means, quats, scales, opacities, sh0 [N, 1, 3], shN optional; the
    higher SH bands are dropped: the restyle is baked view-independent). Start: each Gaussian's
    colour is the blend-weighted mean of the key pixels it covers (one backward pass per key);
    then `steps` Adam steps on L1 between the renders at the key cameras and the key views
    (composited over the key itself, so only the object counts); Gaussians no key sees take
    their 3D neighbours' colour change.
    """
    device = params["means"].device
    fixed = {k: v.detach() for k, v in params.items() if k != "shN"}
    orig_rgb = (SH_C0 * fixed["sh0"][:, 0] + 0.5).clamp(0, 1)
    Ks = torch.as_tensor(cams.Ks, dtype=torch.float32, device=device)
    W2C = torch.as_tensor(cams.viewmats, dtype=torch.float32, device=device)
    targets = _targets(keys, device)
    sh0 = fixed["sh0"].clone().requires_grad_(True)

    def draw(k: int) -> tuple[Tensor, Tensor]:
        rgb, alpha, _ = render_rgbd({**fixed, "sh0": sh0}, W2C[keys[k].index], Ks[keys[k].index],
                                    cams.width, cams.height, backend, sh_degree=0)
        return rgb, alpha

    # Closed-form start: d/dc Σ weight·key·render = C0·Σ w_g·weight·key (and likewise the weights).
    num = torch.zeros_like(orig_rgb)
    den = torch.zeros(len(orig_rgb), device=device)
    for k, (rgb_t, weight) in enumerate(targets):
        rgb, _ = draw(k)
        g_num, = torch.autograd.grad((rgb * (weight[..., None] * rgb_t)).sum(), sh0, retain_graph=True)
        g_den, = torch.autograd.grad((rgb[..., 0] * weight).sum(), sh0)
        num += g_num[:, 0] / SH_C0
        den += g_den[:, 0, 0] / SH_C0
    seen = den > SEEN_WEIGHT
    start = orig_rgb.clone()
    start[seen] = (num[seen] / den[seen, None]).clamp(0, 1)
    delta = start - orig_rgb
    start[~seen] = (orig_rgb[~seen] + neighbour_deltas(fixed["means"], seen, delta, neighbours)).clamp(0, 1)
    with torch.no_grad():
        sh0.copy_(((start - 0.5) / SH_C0)[:, None])

    opt = torch.optim.Adam([sh0], lr=lr)
    order = torch.Generator().manual_seed(seed)
    for step in range(steps):
        k = int(torch.randint(len(targets), (1,), generator=order))
        rgb_t, weight = targets[k]
        rgb, alpha = draw(k)
        pred = rgb + (1 - alpha[..., None]) * rgb_t
        loss = (weight[..., None] * (pred - rgb_t).abs()).sum() / weight.sum().clamp_min(1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            sh0.grad[~seen] = 0
        opt.step()
        if progress is not None:
            progress(step + 1, steps)
    out = dict(fixed)
    out["sh0"] = sh0.detach()
    return out, seen


def baked_colours(params: dict[str, Tensor]) -> np.ndarray:
    """Gives the degree-0 colours [N, 3] in 0..1 of raw Gaussians."""
    return (SH_C0 * params["sh0"][:, 0] + 0.5).clamp(0, 1).cpu().numpy()
