"""Where one training step's time goes (H200): our Trainer vs a bare gsplat step, same scene.

A scene of the plush-dog size (1471×980, 89 views, 27k Gaussians on a sphere seen by a ring of
cameras; random textures, masks) — content does not matter for the cost. Prints it/s of our
Trainer.step (masked, random background; then opaque), of a bare gsplat step with the same
loss, and the torch profiler's top operators of ours (CPU and CUDA time; syncs show up as
cudaStreamSynchronize / cudaMemcpyAsync / aten::item / aten::nonzero).

    python bench/step_profile.py [--steps 600] [--width 1471 --height 980]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def ring_scene(width: int, height: int, views: int, points: int, masked: bool):
    from gausynth_engine.splatting.dataset import Scene

    rng = np.random.default_rng(0)
    pts = rng.normal(size=(points, 3)).astype(np.float32)
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    f = 1.2 * width
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])
    mats = []
    for a in np.linspace(0, 2 * np.pi, views, endpoint=False):
        c = np.array([4 * np.cos(a), 0.0, 4 * np.sin(a)])
        z = -c / np.linalg.norm(c)
        x = np.cross([0, 1, 0], z)
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        R = np.stack([x, y, z])
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = R, -R @ c
        mats.append(m)
    images = rng.integers(0, 255, size=(views, height, width, 3), dtype=np.uint8)
    alphas = np.zeros((views, height, width), np.uint8)
    alphas[:, height // 4: 3 * height // 4, width // 4: 3 * width // 4] = 255
    return Scene([f"{i:04d}.png" for i in range(views)], images, np.stack([K] * views),
                 np.stack(mats), pts, rng.random((points, 3)).astype(np.float32),
                 alphas if masked else None)


def time_ours(scene, steps: int, **changes) -> tuple[float, object]:
    from gausynth_engine.splatting.train import TrainConfig, Trainer

    config = TrainConfig(iterations=10_000, sh_degree=3, refine_start=10**9, **changes)
    trainer = Trainer(scene, config, "cuda")
    for _ in range(50):
        trainer.step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0), trainer


def time_bare(trainer, steps: int) -> float:
    """A bare gsplat step on the same Gaussians and views: render, same loss, backward, Adam."""
    from gsplat import rasterization

    from gausynth_engine.splatting.metrics import splat_loss

    p = trainer.params
    opts = trainer.optimizers
    gt = trainer.images[:8].float() / 255
    bg = torch.ones(1, 3, device="cuda")
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for s in range(steps):
        i = s % 8
        colors = torch.cat([p["sh0"], p["shN"]], 1)
        rgb, _, _ = rasterization(p["means"], p["quats"], torch.exp(p["scales"]),
                                  torch.sigmoid(p["opacities"]), colors, trainer.viewmats[i:i + 1],
                                  trainer.Ks[i:i + 1], trainer.width, trainer.height, sh_degree=3,
                                  packed=False, backgrounds=bg)
        loss = splat_loss(rgb, gt[i:i + 1])
        loss.backward()
        for o in opts.values():
            o.step()
            o.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--width", type=int, default=1471)
    parser.add_argument("--height", type=int, default=980)
    parser.add_argument("--points", type=int, default=27_000)
    args = parser.parse_args()
    masked = ring_scene(args.width, args.height, 89, args.points, True)
    its, trainer = time_ours(masked, args.steps)
    print(f"ours, masked + random background: {its:6.1f} it/s")
    its2, _ = time_ours(masked, args.steps, random_background=False)
    print(f"ours, masked, fixed background:   {its2:6.1f} it/s")
    opaque = ring_scene(args.width, args.height, 89, args.points, False)
    its3, _ = time_ours(opaque, args.steps)
    print(f"ours, opaque views:               {its3:6.1f} it/s")
    print(f"bare gsplat step, same loss:      {time_bare(trainer, args.steps):6.1f} it/s")
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(100):
            trainer.step()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=22))
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=12))


if __name__ == "__main__":
    main()
