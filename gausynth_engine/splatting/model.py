"""The Gaussians' parameters, initialised from the SfM points, and their Adam optimizers."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

SH_C0 = 0.28209479177387814

# Learning rates of gsplat's simple_trainer (means scaled by the scene size).
LEARNING_RATES = {"means": 1.6e-4, "scales": 5e-3, "quats": 1e-3, "opacities": 5e-2,
                  "sh0": 2.5e-3, "shN": 2.5e-3 / 20}


def rgb_to_sh(rgb: Tensor) -> Tensor:
    """Gives the degree-0 SH coefficient of colours in [0, 1]."""
    return (rgb - 0.5) / SH_C0


def knn_mean_distance(points: Tensor, k: int = 3, chunk: int = 4096) -> Tensor:
    """Gives each point's mean distance to its k nearest other points [P] (chunked, exact)."""
    out = []
    for start in range(0, len(points), chunk):
        d = torch.cdist(points[start:start + chunk], points)
        k_eff = min(k + 1, len(points))
        out.append(d.topk(k_eff, largest=False).values[:, 1:].mean(1))
    return torch.cat(out)


def init_params(points: np.ndarray, colors: np.ndarray, sh_degree: int, scene_scale: float,
                *, init_opacity: float = 0.1, init_scale: float = 1.0, seed: int = 0,
                device: str = "cpu", centre: np.ndarray | None = None) -> dict[str, torch.nn.Parameter]:
    """Gives raw Gaussians at the SfM points (or random ones in the scene when there are few).

    points [P, 3] world, colors [P, 3] in [0, 1]. Scales start at the mean distance to the 3
    nearest neighbours, rotations random, opacities `init_opacity` (as gsplat's simple_trainer).
    Random Gaussians fill a cube of side `scene_scale` around `centre` [3] (default: the origin).
    """
    gen = torch.Generator().manual_seed(seed)
    pts = torch.as_tensor(points, dtype=torch.float32)
    rgb = torch.as_tensor(colors, dtype=torch.float32)
    if len(pts) < 4:  # no usable SfM points: a random cloud inside the cameras' reach
        middle = torch.zeros(3) if centre is None else torch.as_tensor(centre, dtype=torch.float32)
        pts = middle + (torch.rand(10_000, 3, generator=gen) * 2 - 1) * scene_scale * 0.5
        rgb = torch.rand(10_000, 3, generator=gen)
    pts = pts.to(device)
    dist = knn_mean_distance(pts).clamp_min(1e-7)
    n = len(pts)
    scales = torch.log(dist * init_scale)[:, None].repeat(1, 3)
    quats = torch.rand(n, 4, generator=gen).to(device)
    opacities = torch.logit(torch.full((n,), init_opacity, device=device))
    k = (sh_degree + 1) ** 2
    params = {"means": pts, "scales": scales, "quats": quats, "opacities": opacities,
              "sh0": rgb_to_sh(rgb.to(device))[:, None, :]}
    if k > 1:
        params["shN"] = torch.zeros(n, k - 1, 3, device=device)
    return {name: torch.nn.Parameter(t.contiguous()) for name, t in params.items()}


def params_from_model(model: dict[str, np.ndarray], sh_degree: int, device: str = "cpu"
                      ) -> dict[str, torch.nn.Parameter]:
    """Gives trainable copies of a trained model's raw Gaussians (as `read_ply` gives them:
    means [N, 3], scales [N, 3] log, quats [N, 4], opacities [N] logit, sh0 [N, 1, 3], shN
    [N, K-1, 3]) with the SH bands cut or zero-padded to `sh_degree`. Copies, always: on the CPU a
    float32 array would otherwise be the Parameter's own memory, and training would rewrite the
    caller's model."""
    k = (sh_degree + 1) ** 2 - 1
    out = {name: torch.tensor(np.asarray(model[name]), dtype=torch.float32, device=device)
           for name in ("means", "scales", "quats", "opacities", "sh0")}
    if k > 0:
        have = torch.tensor(np.asarray(model["shN"]), dtype=torch.float32, device=device) \
            if "shN" in model else torch.zeros(len(out["means"]), 0, 3, device=device)
        pad = torch.zeros(len(have), max(0, k - have.shape[1]), 3, device=device)
        out["shN"] = torch.cat([have[:, :k], pad], 1)
    return {name: torch.nn.Parameter(t.contiguous()) for name, t in out.items()}


def make_optimizers(params: dict[str, torch.nn.Parameter], scene_scale: float
                    ) -> dict[str, torch.optim.Optimizer]:
    """Gives one Adam per parameter (the strategies need them apart), eps 1e-15 as gsplat."""
    return {name: torch.optim.Adam([{"params": p, "lr": base_lr(name, scene_scale), "name": name}],
                                   eps=1e-15)
            for name, p in params.items()}


def base_lr(name: str, scene_scale: float) -> float:
    """Gives the starting learning rate of one parameter group."""
    return LEARNING_RATES[name] * (scene_scale if name == "means" else 1.0)


def means_lr(step: int, iterations: int, scene_scale: float) -> float:
    """Gives the means' learning rate at `step`: exponential decay to 1 % at the last step."""
    return base_lr("means", scene_scale) * math.pow(0.01, min(step, iterations) / iterations)
