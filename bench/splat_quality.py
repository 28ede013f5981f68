"""Benchmark (H200): the quality of the original 3DGS on real captures, ours against the plain recipe.

For each set (plush-dog: a turntable; kermit; apple-video: a handheld arc) our engine runs the
`original-only` preset through the CLI (preprocess → sfm → mask → splat_orig, every frame, at
the preset's defaults, but `mask.method = sfm`: trained on the model-free masks, which `auto`
keeps for scoring only on a still scene), then again with `mask.method = off`. On the SAME COLMAP
output, test views (every 8th) and iteration count, an independent plain gsplat loop written to the published
3DGS recipe (bench/plain_gsplat.py: gsplat's simple_trainer defaults, SH 3, no random
background) trains on the unmasked frames and on the frames masked onto white.

Every figure is computed here from the 8-bit test renders, the same way for all four:
- frame PSNR/SSIM: the whole frame against what that variant was asked to reproduce (the photo,
  or the masked photo over white);
- object PSNR: only the object's pixels (our mask > 0.5), against the original photo — the
  figure that compares masked and unmasked trainings.
PSNR is over the squared errors of all test views pooled (a bad view weighs in fully); the
`*_views` columns give the mean of per-view PSNRs, the way 3DGS papers (and our trainer's
results.json) report it: on plush-dog (session 4) our trainer's per-view means read 0.9 dB
(frame) and 2.0 dB (object) above the pooled figures.
LPIPS: only with local weights (none on these machines), said so.

    python bench/splat_quality.py --data .data [--sets plush-dog,kermit,apple-video]
                                   [--iterations 10000] [--out $OUT] [--variants all]

`--variants` also trains our trainer with single options changed (exposure compensation, absgrad,
antialiased, a longer densification, no opacity reset, MCMC) on the same masked views, one after
another after the timed runs (each timed alone, like the others), to decide defaults by
measurement. `--ours-set splat.KEY=VALUE` (repeatable) changes our CLI run's preset.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

SETS = {"plush-dog": "plush-dog/images", "kermit": "kermit/images", "apple-video": "apple-video/apple.mp4"}


OUR_SETS: list[str] = []  # preset changes of our CLI runs (--colmap-size, --ours-set)
ROWS_SO_FAR: list[Path] = []  # rows.jsonl: every row as soon as it is measured (a cut run keeps them)


def said(row: dict) -> None:
    print(json.dumps(row), flush=True)
    for path in ROWS_SO_FAR:
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


def run_ours(source: Path, root: Path, name: str, iterations: int, extra: list[str]) -> dict:
    """Runs the original-only preset through the CLI; gives its splat_orig manifest + wall time."""
    sets = [f"run.input={source}", f"run.outputs_root={root}", f"run.directory={name}",
            "preprocess.num_frames=0", f"splat.iterations={iterations}",
            f"splat.eval_at=[{iterations}]", *OUR_SETS, *extra]
    argv = [sys.executable, "-m", "gausynth_engine", "run", "original-only"]
    for s in sets:
        argv += ["--set", s]
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:])
        raise SystemExit(f"our run of {source} failed ({done.returncode})")
    layout = root / name
    manifest = json.loads((layout / ".gausynth" / "manifests" / "splat_orig.json").read_text())
    return {"wall_s": wall, "manifest": manifest, "layout": layout}


def load_rgb(path: Path) -> np.ndarray:
    import cv2

    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    code = cv2.COLOR_BGRA2RGBA if data.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(data, code)


def scores(renders: dict[str, np.ndarray], layout: Path, masked_target: bool) -> dict:
    """Gives frame PSNR/SSIM and object PSNR of 8-bit renders {name: [H, W, 3]} (see module doc)."""
    from plain_gsplat import ssim_np

    frame, obj, ss = [], [], []
    for name, render in renders.items():
        photo = load_rgb(layout / "colmap" / "images" / name)[..., :3].astype(np.float64)
        cut = load_views(layout, "masked")[name]
        alpha = cut[..., 3:4].astype(np.float64) / 255.0
        target = photo * alpha + 255.0 * (1 - alpha) if masked_target else photo
        r = render.astype(np.float64)
        frame.append(np.mean((r - target) ** 2))
        ss.append(ssim_np(r / 255, target / 255))
        inside = alpha[..., 0] > 0.5
        obj.append(np.mean((r[inside] - photo[inside]) ** 2))
    p = lambda mse: float(10 * np.log10(255.0**2 / np.mean(mse)))  # noqa: E731
    per_view = lambda mses: float(np.mean([p(m) for m in mses]))  # noqa: E731
    return {"frame_psnr": p(frame), "frame_ssim": float(np.mean(ss)), "object_psnr": p(obj),
            "frame_psnr_views": per_view(frame), "object_psnr_views": per_view(obj)}


_VIEWS: dict[tuple[str, str], dict[str, np.ndarray]] = {}


def load_views(layout: Path, kind: str) -> dict[str, np.ndarray]:
    """Gives the undistorted views lined up with colmap/sparse/0: 'plain' photos or 'masked' RGBA."""
    key = (str(layout), kind)
    if key not in _VIEWS:
        from gausynth_engine._layout import RunLayout
        from gausynth_engine.poses import prepare_views

        run = RunLayout(layout)
        folder = layout / ".bench" / kind
        if not folder.is_dir():
            src = run.orig_transparent if kind == "masked" else run.filtered_frames_colmap
            prepare_views(run, src, folder)
        _VIEWS[key] = {p.name: load_rgb(p) for p in sorted(folder.iterdir())}
    return _VIEWS[key]


def our_renders(gs: Path, iterations: int) -> dict[str, np.ndarray]:
    folder = gs / "test" / f"ours_{iterations}" / "renders"
    return {p.name: load_rgb(p)[..., :3] for p in sorted(folder.glob("*.png"))}


def bench_set(name: str, source: Path, root: Path, iterations: int, masks: tuple[bool, ...]) -> list[dict]:
    from plain_gsplat import train_plain

    rows = []
    for masked in masks:
        # Masks on means trained on the masks: `auto` trains a still scene on whole frames.
        extra = ["mask.method=sfm"] if masked else ["mask.method=off"]
        ours = run_ours(source, root, name, iterations, extra)
        rec = ours["manifest"]["record"]
        layout = ours["layout"]
        mask_rec = json.loads((layout / ".gausynth" / "manifests" / "mask.json").read_text())["record"]
        if masked and not mask_rec.get("train_on_masks", True):
            raise SystemExit(f"{name}: mask.method = 'sfm' and still trained on whole frames")
        gs = layout / rec["folder"]
        s = scores(our_renders(gs, iterations), layout, masked)
        rows.append({"set": name, "who": "ours", "masks": masked, **s, "gaussians": rec["num_gaussians"],
                     "train_s": rec.get("train_seconds"), "its": rec["its"], "size": rec["size"],
                     "views": rec["views"], "run_wall_s": round(ours["wall_s"], 1),
                     "peak_vram_gb": peak_vram(layout)})
        said(rows[-1])
    layout = root / name
    sfm = json.loads((layout / ".gausynth" / "manifests" / "sfm.json").read_text())["record"]
    mask = json.loads((layout / ".gausynth" / "manifests" / "mask.json").read_text())["record"]
    print(f"{name}: sfm {sfm.get('registered')}/{sfm.get('total')} registered; masks "
          f"{mask.get('method')}, turntable={mask.get('turntable')}, static share "
          f"{mask.get('static_backdrop_share')}", flush=True)
    for masked in masks:
        views = load_views(layout, "masked" if masked else "plain")
        result = train_plain(layout / "colmap" / "sparse" / "0", views, iterations, masked=masked)
        s = scores(result["renders"], layout, masked)
        rows.append({"set": name, "who": "plain", "masks": masked, **s, "gaussians": result["gaussians"],
                     "train_s": round(result["train_s"], 1), "its": round(iterations / result["train_s"], 1),
                     "peak_vram_gb": round(result["peak_vram"] / 2**30, 2)})
        said(rows[-1])
    return rows


# Our trainer with one option changed from the preset's defaults (TrainConfig fields).
VARIANTS = {"exposure": {"exposure": True}, "absgrad": {"absgrad": True},
            "antialiased": {"antialiased": True}, "densify-50%": {"densify_until": 0.5},
            "densify-80%": {"densify_until": 0.8}, "densify-100%": {"densify_until": 1.0},
            "no-reset": {"opacity_reset": False},
            "densify-100%+no-reset": {"densify_until": 1.0, "opacity_reset": False},
            "exposure+absgrad": {"exposure": True, "absgrad": True},
            "mcmc-300k": {"strategy": "mcmc", "max_gaussians": 300_000},
            # trained on the masks composited onto splat.background, as the plain recipe is on
            # white: whether the random background per step costs the frame figure
            "fixed-background": {"random_background": False}}


def variant_worker(layout: Path, name: str, iterations: int, out: Path) -> None:
    """Trains one variant (in its own process) on the masked views; writes its test renders and
    a summary under `out`."""
    import dataclasses

    from gausynth_engine._preset import load_preset
    from gausynth_engine.splatting.dataset import load_scene
    from gausynth_engine.splatting.train import train
    from gausynth_engine.stages.splat import train_config

    preset = load_preset(layout / ".gausynth" / "preset.toml")
    changes = dict(VARIANTS[name])
    config = dataclasses.replace(train_config(preset.splat, iterations), eval_at=(iterations,),
                                 checkpoint_every=10**9, **changes)
    scene = load_scene(layout / "colmap" / "sparse" / "0", layout / ".bench" / "masked", config.background)
    import torch

    result = train(scene, config, out, device="cuda" if torch.cuda.is_available() else "cpu")
    (out / "summary.json").write_text(json.dumps({"gaussians": result.num_gaussians,
                                                  "train_s": result.train_seconds}))


def bench_variants(name: str, layout: Path, iterations: int, names: list[str], out: Path) -> list[dict]:
    """Runs the variants one after another, each in its own process (timed alone); gives their
    rows (scored like the others)."""
    load_views(layout, "masked")  # the undistorted masked views, made once before the workers read them
    rows = []
    for v in names:
        proc = subprocess.run([sys.executable, __file__, "--variant-worker", str(layout), v,
                               str(iterations), str(out / name / v)], cwd=REPO)
        if proc.returncode != 0:
            print(f"{name}: variant {v} failed ({proc.returncode})", flush=True)
            continue
        summary = json.loads((out / name / v / "summary.json").read_text())
        s = scores(our_renders(out / name / v, iterations), layout, True)
        rows.append({"set": name, "who": f"ours {v}", "masks": True, **s, "gaussians": summary["gaussians"],
                     "train_s": round(summary["train_s"], 1), "its": round(iterations / summary["train_s"], 1),
                     "peak_vram_gb": None})
        said(rows[-1])
    return rows


def peak_vram(layout: Path) -> float | None:
    """Gives the splat_orig worker's own peak torch allocation (GB) from the journal, if recorded."""
    peak = None
    journal = layout / ".gausynth" / "events.jsonl"
    for line in journal.read_text().splitlines():
        e = json.loads(line)
        if e.get("stage") == "splat_orig" and e.get("name") == "peak_vram":
            peak = max(peak or 0.0, e["value"] / 2**30)
    return None if peak is None else round(peak, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--iterations", type=int, default=10000)
    parser.add_argument("--out", default=os.environ.get("OUT", "bench-out"))
    parser.add_argument("--root", default="/tmp/gausynth-quality")
    parser.add_argument("--masks", choices=("both", "on", "off"), default="both",
                        help="train with masks, without, or both (default)")
    parser.add_argument("--colmap-size", type=int, default=0,
                        help="frames' long side for SfM and 3DGS (default: the preset's)")
    parser.add_argument("--ours-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a preset change for our CLI runs (repeatable)")
    parser.add_argument("--variants", default="", help=f"'all' or some of {','.join(VARIANTS)}".replace('%', '%%'))
    parser.add_argument("--variant-worker", nargs=4, metavar=("LAYOUT", "NAME", "ITERATIONS", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant_worker:
        layout, name, iterations, folder = args.variant_worker
        variant_worker(Path(layout), name, int(iterations), Path(folder))
        return 0
    if args.colmap_size:
        OUR_SETS.append(f"preprocess.colmap_size={args.colmap_size}")
    OUR_SETS.extend(args.ours_set)
    variants = list(VARIANTS) if args.variants == "all" else [v for v in args.variants.split(",") if v]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ROWS_SO_FAR.append(out / "rows.jsonl")
    rows = []
    for name in args.sets.split(","):
        masks = {"both": (True, False), "on": (True,), "off": (False,)}[args.masks]
        rows += bench_set(name, Path(args.data) / SETS[name], Path(args.root), args.iterations, masks)
        (out / "splat_quality.json").write_text(json.dumps(rows, indent=1))
        if variants:
            rows += bench_variants(name, Path(args.root) / name, args.iterations, variants,
                                   Path(args.root) / "variants")
            (out / "splat_quality.json").write_text(json.dumps(rows, indent=1))
    print("\nLPIPS: not computed (no LPIPS weights on this machine)")
    print(f"{'set':<12} {'who':<22} {'masks':<5} {'frame PSNR':>10} {'SSIM':>6} {'object PSNR':>11} "
          f"{'per view':>13} {'#Gauss':>8} {'train s':>8} {'it/s':>6} {'VRAM GB':>7}")
    for r in rows:
        views = f"{r['frame_psnr_views']:.2f}/{r['object_psnr_views']:.2f}"
        print(f"{r['set']:<12} {r['who']:<22} {str(r['masks']):<5} {r['frame_psnr']:>10.2f} "
              f"{r['frame_ssim']:>6.3f} {r['object_psnr']:>11.2f} {views:>13} {r['gaussians']:>8} "
              f"{r['train_s'] or 0:>8.1f} {r['its']:>6.1f} {r['peak_vram_gb'] or 0:>7.2f}")
    print("(rows 'ours <variant>': our trainer called directly with one option changed, timed alone)")
    print("\nratios ours / plain (same set, same masks): frame PSNR difference in dB, time ratio")
    for r in rows:
        if not r["who"].startswith("ours"):
            continue
        p = next(x for x in rows if x["who"] == "plain" and x["set"] == r["set"] and x["masks"] == r["masks"])
        print(f"{r['set']:<12} {r['who']:<22} masks={r['masks']!s:<5} ΔPSNR {r['frame_psnr'] - p['frame_psnr']:+.2f} dB, "
              f"Δobject {r['object_psnr'] - p['object_psnr']:+.2f} dB, time ×{(r['train_s'] or 0) / p['train_s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
