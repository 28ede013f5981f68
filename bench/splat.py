"""Benchmark: our 3DGS trainer against a bare gsplat loop with the same settings, same run.

The scene is the generated sample seen by its true cameras (a COLMAP model written from them,
so no SfM), --views views at --size², every 8th held out. Both loops start from the same
Gaussians (the scene's surface points), use the same learning rates, loss (0.8·L1 + 0.2·D-SSIM),
DefaultStrategy schedule and view order. Ours adds what the stage needs: progress/metric events,
checkpoints every 1000 steps, evaluations (test PSNR/SSIM + renders) at --eval steps.

Reported: iterations/s of each (ours: optimisation steps only, and end to end with its
evaluations and checkpoints), the ratio (target ≥ 0.95), peak VRAM, test PSNR.

    python bench/splat.py [--views 96] [--size 512] [--iters 10000] [--eval 7000 10000]
                          [--scene DIR] [--out DIR] [--bare-twice]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gausynth_engine.splatting.dataset import load_scene
from gausynth_engine.splatting.metrics import psnr, splat_loss
from gausynth_engine.splatting.model import init_params, make_optimizers, means_lr
from gausynth_engine.splatting.train import TrainConfig, make_strategy, schedule, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synthetic_scene import make_true_scene  # noqa: E402 (a test fixture: the sample's true scene)


def bare_gsplat(scene, config: TrainConfig) -> dict:
    """The minimal gsplat training loop (as gsplat's simple_trainer, nothing else)."""
    from gsplat import rasterization

    dev = "cuda"
    train_ids, test_ids = scene.split(config.test_every)
    images = torch.from_numpy(scene.images).to(dev)
    Ks = torch.as_tensor(scene.Ks, dtype=torch.float32, device=dev)
    viewmats = torch.as_tensor(scene.viewmats, dtype=torch.float32, device=dev)
    bg = torch.ones(1, 3, device=dev)
    scale = scene.scene_scale()
    w, h = scene.size
    params = init_params(scene.points, scene.colors, 0, scale, device=dev)
    optimizers = make_optimizers(params, scale)
    strategy = make_strategy(config, schedule(config))
    state = strategy.initialize_state(scene_scale=scale)
    views = torch.Generator().manual_seed(config.seed)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for step in range(1, config.iterations + 1):
        v = train_ids[int(torch.randint(len(train_ids), (1,), generator=views))]
        for group in optimizers["means"].param_groups:
            group["lr"] = means_lr(step, config.iterations, scale)
        rgb, _, info = rasterization(params["means"], params["quats"], torch.exp(params["scales"]),
                                     torch.sigmoid(params["opacities"]), params["sh0"],
                                     viewmats[v:v + 1], Ks[v:v + 1], w, h, sh_degree=0,
                                     packed=False, backgrounds=bg)
        strategy.step_pre_backward(params, optimizers, state, step, info)
        loss = splat_loss(rgb, images[v:v + 1].float() / 255.0)
        loss.backward()
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        strategy.step_post_backward(params, optimizers, state, step, info, packed=False)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        scores = []
        for v in test_ids:
            rgb, _, _ = rasterization(params["means"], params["quats"], torch.exp(params["scales"]),
                                      torch.sigmoid(params["opacities"]), params["sh0"],
                                      viewmats[v:v + 1], Ks[v:v + 1], w, h, sh_degree=0,
                                      packed=False, backgrounds=bg)
            scores.append(psnr(rgb, images[v:v + 1].float() / 255.0))
    return {"its": config.iterations / seconds, "seconds": seconds,
            "num_gaussians": len(params["means"]), "psnr": float(np.mean(scores))}


class Quiet:
    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.events = 0

    def progress(self, value: float, total: float, unit: str = "") -> None:
        self.events += 1

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        self.last[name] = value

    def log(self, message: str, level: str = "info") -> None:
        print("  ours:", message, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--views", type=int, default=96)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--iters", type=int, default=10000)
    ap.add_argument("--eval", type=int, nargs="*", default=[7000, 10000])
    ap.add_argument("--scene", type=Path, default=None, help="reuse/keep the scene here")
    ap.add_argument("--bare-twice", action="store_true", help="time the bare loop before and after ours")
    ap.add_argument("--out", type=Path, default=None, help="write bench JSON + ours' output here")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench/splat.py needs a CUDA GPU (gsplat)")
    root = Path(args.out or tempfile.mkdtemp(prefix="bench-splat-"))
    scene_dir = args.scene or root / "scene"
    t = time.perf_counter()
    if not (scene_dir / "sparse" / "0" / "images.bin").exists():
        make_true_scene(scene_dir, views=args.views, width=args.size, height=args.size,
                        points=20_000, workers=os.cpu_count() or 1)
    scene = load_scene(scene_dir / "sparse" / "0", scene_dir / "images")
    print(f"scene: {len(scene.names)} views at {args.size}², {len(scene.points)} points "
          f"({time.perf_counter() - t:.0f} s to build/load)", flush=True)
    config = TrainConfig(iterations=args.iters, eval_at=tuple(args.eval), checkpoint_every=1000)

    # Warm-up: gsplat's JIT compile and CUDA context, outside both timings.
    warm = TrainConfig(iterations=20, eval_at=(), checkpoint_every=1000)
    train(scene, warm, root / "warm", None, Quiet(), "cuda")

    # Bare, ours, bare again: the ratio is against the mean of the two bare runs, so a drift
    # of the machine over the bench shows up rather than favouring either side.
    bares = []
    for _ in range(2 if args.bare_twice else 1):
        torch.cuda.reset_peak_memory_stats()
        bare = bare_gsplat(scene, config)
        bare["peak_vram"] = torch.cuda.max_memory_allocated()
        print(f"bare gsplat: {bare['its']:.1f} it/s, {bare['num_gaussians']} Gaussians, "
              f"PSNR {bare['psnr']:.2f}", flush=True)
        bares.append(bare)
        if len(bares) == 1:
            ours = run_ours(scene, config, root, args.iters)
    bare = dict(bares[0], its=float(np.mean([b["its"] for b in bares])),
                its_runs=[b["its"] for b in bares])
    summary = {"views": len(scene.names), "size": args.size, "iterations": args.iters,
               "device": torch.cuda.get_device_name(), "bare": bare, "ours": ours,
               "ratio": ours["its"] / bare["its"],
               "ratio_end_to_end": ours["its_end_to_end"] / bare["its"]}
    (root / "bench_splat.json").write_text(json.dumps(summary, indent=1))
    gib = 1 << 30
    print(f"\n3DGS on the generated sample, {len(scene.names)} views at {args.size}², "
          f"{args.iters} iterations, {summary['device']}")
    print(f"{'':22}{'it/s':>9}{'Gaussians':>11}{'peak VRAM':>11}  test PSNR")
    runs = " / ".join(f"{v:.1f}" for v in bare["its_runs"])
    print(f"{'bare gsplat loop':22}{bare['its']:9.1f}{bare['num_gaussians']:11d}"
          f"{bare['peak_vram'] / gib:10.2f}G  {bare['psnr']:.2f} (last)   runs: {runs} it/s")
    scores = ", ".join(f"{k[5:]}: {v:.2f}" for k, v in ours["psnr"].items() if v is not None)
    print(f"{'ours (train steps)':22}{ours['its']:9.1f}{ours['num_gaussians']:11d}"
          f"{ours['peak_vram'] / gib:10.2f}G  {scores}")
    print(f"{'ours (end to end)':22}{ours['its_end_to_end']:9.1f}   (with evaluations + checkpoints)")
    print(f"ratio ours/bare: {summary['ratio']:.3f} (train steps), "
          f"{summary['ratio_end_to_end']:.3f} (end to end); target ≥ 0.95")


def run_ours(scene, config: TrainConfig, root: Path, iters: int) -> dict:
    """Our trainer as the stage runs it (events, checkpoints, evaluations); gives its figures."""
    torch.cuda.reset_peak_memory_stats()
    report = Quiet()
    t = time.perf_counter()
    result = train(scene, config, root / "ours", root / "work", report, "cuda", key="bench")
    wall = time.perf_counter() - t
    return {"its": result.its, "its_end_to_end": iters / wall, "seconds": wall,
            "num_gaussians": result.num_gaussians, "peak_vram": torch.cuda.max_memory_allocated(),
            "psnr": {k: v.get("psnr") for k, v in result.results.items()},
            "ssim": {k: v.get("ssim") for k, v in result.results.items()},
            "progress_events": report.events}


if __name__ == "__main__":
    main()
