"""An independent plain 3DGS loop to the published recipe, for benchmarks (not the product's code).

Written from gsplat's `simple_trainer` defaults: Gaussians at the SfM points, scales from the mean
distance to the 3 nearest points, random rotations, opacity 0.1, SH degree 3 (one band per 1,000
steps), Adam with the simple_trainer learning rates (means × scene scale, decaying to 1 %),
loss 0.8·L1 + 0.2·(1 − SSIM), gsplat's DefaultStrategy with its default schedule, one random
train view per step, every 8th view held out, a white background. It shares no code with
`gausynth_engine.splatting`; SSIM comes from torchmetrics where installed.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def ssim_np(a: np.ndarray, b: np.ndarray) -> float:
    """Gives the mean SSIM of two [H, W, 3] float images in [0, 1] (11×11 Gaussian, σ 1.5)."""
    import cv2

    c1, c2 = 0.01**2, 0.03**2
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5)  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    saa, sbb, sab = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return float(s.mean())


def _ssim_torch():
    try:
        from torchmetrics.functional.image import structural_similarity_index_measure

        return lambda x, y: structural_similarity_index_measure(x, y, data_range=1.0)
    except ImportError:  # a fallback with the same definition
        import torch
        import torch.nn.functional as F

        g = torch.exp(-((torch.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
        g = g / g.sum()

        def ssim(x, y):
            w = (g[:, None] * g[None, :]).to(x)[None, None].expand(3, 1, 11, 11)
            f = lambda t: F.conv2d(t, w, padding=5, groups=3)  # noqa: E731
            mx, my = f(x), f(y)
            sxx, syy, sxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
            c1, c2 = 0.01**2, 0.03**2
            return (((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))).mean()

        return ssim


def train_plain(sparse: Path, views: dict[str, np.ndarray], iterations: int, masked: bool,
                test_every: int = 8, seed: int = 0) -> dict:
    """Trains on `views` {name: RGB or RGBA uint8} lined up with the COLMAP model `sparse`; gives
    {"renders": {test name: RGB uint8}, "gaussians", "train_s", "peak_vram"}. Masked views are
    composited on white (a fixed background, as the plain recipe knows nothing of masks)."""
    import pycolmap
    import torch
    from gsplat import rasterization
    from gsplat.strategy import DefaultStrategy

    dev = "cuda"
    torch.manual_seed(seed)
    rec = pycolmap.Reconstruction(str(sparse))
    images = sorted((rec.images[i] for i in rec.reg_image_ids()), key=lambda im: im.name)
    names = [im.name for im in images]
    test = [i for i in range(len(names)) if i % test_every == 0]
    train = [i for i in range(len(names)) if i % test_every != 0]
    pics = []
    for n in names:
        v = views[n].astype(np.float32) / 255.0
        if v.shape[2] == 4:
            v = v[..., :3] * v[..., 3:] + (1 - v[..., 3:]) if masked else v[..., :3]
        pics.append(v)
    gt = torch.tensor(np.stack(pics), device=dev)
    Ks = torch.tensor(np.stack([im.camera.calibration_matrix() for im in images]), dtype=torch.float32, device=dev)
    w2c = np.stack([np.vstack([im.cam_from_world().matrix(), [0, 0, 0, 1]]) for im in images])
    viewmats = torch.tensor(w2c, dtype=torch.float32, device=dev)
    h, w = gt.shape[1:3]
    centres = np.stack([-m[:3, :3].T @ m[:3, 3] for m in w2c])
    scene_scale = 1.1 * float(np.linalg.norm(centres - centres.mean(0), axis=1).max())
    pts = np.array([p.xyz for p in rec.points3D.values()], dtype=np.float32)
    cols = np.array([p.color for p in rec.points3D.values()], dtype=np.float32) / 255.0
    means = torch.tensor(pts, device=dev)
    d = torch.cdist(means, means)
    dist = d.topk(4, largest=False).values[:, 1:].mean(1).clamp_min(1e-7)
    del d
    n = len(means)
    c0 = 0.28209479177387814
    params = torch.nn.ParameterDict({
        "means": means, "scales": torch.log(dist)[:, None].repeat(1, 3),
        "quats": torch.rand(n, 4, device=dev), "opacities": torch.logit(torch.full((n,), 0.1, device=dev)),
        "sh0": ((torch.tensor(cols, device=dev) - 0.5) / c0)[:, None, :],
        "shN": torch.zeros(n, 15, 3, device=dev)})
    lrs = {"means": 1.6e-4 * scene_scale, "scales": 5e-3, "quats": 1e-3, "opacities": 5e-2,
           "sh0": 2.5e-3, "shN": 2.5e-3 / 20}
    opts = {k: torch.optim.Adam([{"params": params[k], "lr": lr, "name": k}], eps=1e-15)
            for k, lr in lrs.items()}
    decay = 0.01 ** (1.0 / iterations)
    sched = torch.optim.lr_scheduler.ExponentialLR(opts["means"], gamma=decay)
    strategy = DefaultStrategy()
    state = strategy.initialize_state(scene_scale=scene_scale)
    ssim = _ssim_torch()
    bg = torch.ones(1, 3, device=dev)
    rng = np.random.default_rng(seed)
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for step in range(iterations):
        i = int(train[rng.integers(len(train))])
        degree = min(step // 1000, 3)
        colors = torch.cat([params["sh0"], params["shN"]], 1)
        rgb, _, info = rasterization(params["means"], params["quats"], torch.exp(params["scales"]),
                                     torch.sigmoid(params["opacities"]), colors, viewmats[i:i + 1],
                                     Ks[i:i + 1], w, h, sh_degree=degree, packed=False, backgrounds=bg)
        strategy.step_pre_backward(params, opts, state, step, info)
        target = gt[i:i + 1]
        l1 = torch.abs(rgb - target).mean()
        loss = 0.8 * l1 + 0.2 * (1 - ssim(rgb.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2)))
        loss.backward()
        for o in opts.values():
            o.step()
            o.zero_grad(set_to_none=True)
        sched.step()
        strategy.step_post_backward(params, opts, state, step, info, packed=False)
    torch.cuda.synchronize()
    train_s = time.perf_counter() - t0
    renders = {}
    with torch.no_grad():
        colors = torch.cat([params["sh0"], params["shN"]], 1)
        for i in test:
            rgb, _, _ = rasterization(params["means"], params["quats"], torch.exp(params["scales"]),
                                      torch.sigmoid(params["opacities"]), colors, viewmats[i:i + 1],
                                      Ks[i:i + 1], w, h, sh_degree=3, packed=False, backgrounds=bg)
            renders[names[i]] = (rgb[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
    return {"renders": renders, "gaussians": len(params["means"]), "train_s": train_s,
            "peak_vram": torch.cuda.max_memory_allocated()}
