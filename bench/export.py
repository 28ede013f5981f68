"""Benchmark: every export format of a trained model — size, write and read-back time, checks.

Each file is written by its library (gsplat's exporter for ply/splat/compressed-ply, gsply for
SPZ), read back by a reader independent of the writer (gsply for both PLYs and SPZ, numpy for
`.splat`) and compared Gaussian by Gaussian (largest error per attribute against the format's
tolerance) and by renders (pure-PyTorch rasterizer, 2 views at 96 px: the run's SfM cameras,
else two views on an orbit). The float PLY is the baseline for the sizes. Exit 1 if any check
fails.

    python bench/export.py RUN_OR_PLY           # a run folder (each variant's final PLY, its
                                                # SfM cameras) or a PLY file
    python bench/export.py --train IMAGES       # train the original-only preset on IMAGES
                                                # (CLI, defaults), then export that run
    python bench/export.py                      # synthetic: plush-dog's count (27,825), SH 3
    python bench/export.py --synthetic 300000 --sh 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gausynth_engine.export import FORMATS, SUFFIXES, check_cameras, export, read  # noqa: E402
from gausynth_engine.splatting.ply import read_ply  # noqa: E402

PLUSH_DOG = 27_825  # Gaussians of our plush-dog model (H200, original-only defaults, 10k steps)


def synthetic(n: int, sh: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = {"means": rng.normal(size=(n, 3)).astype(np.float32),
         "scales": (rng.normal(size=(n, 3)) * 0.5 - 4).astype(np.float32),
         "quats": rng.normal(size=(n, 4)).astype(np.float32),
         "opacities": (rng.normal(size=n) * 2).astype(np.float32),
         "sh0": (rng.normal(size=(n, 1, 3)) * 0.6).astype(np.float32)}
    if sh:
        p["shN"] = (rng.normal(size=(n, (sh + 1) ** 2 - 1, 3)) * 0.1).astype(np.float32)
    return p


def train(images: Path, iterations: int, sets: list[str]) -> Path:
    """Runs the original-only preset on `images` through the CLI; gives the run folder. A model
    of the frames SfM posed is what is exported: frames it leaves out do not stop the bench (on
    the H200, 39 of plush-dog's 48 sampled photos posed stopped it at sfm.min_registered)."""
    root = Path(tempfile.mkdtemp(prefix="bench-export-run-"))
    argv = [sys.executable, "-m", "gausynth_engine", "run", "original-only"]
    for s in (f"run.input={images.resolve()}", f"run.outputs_root={root}", "run.directory=model",
              "preprocess.num_frames=0", f"splat.iterations={iterations}", f"splat.eval_at=[{iterations}]",
              "sfm.allow_low_registration=true", *sets):
        argv += ["--set", s]
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:])
        raise SystemExit(f"the training of {images} failed ({done.returncode})")
    print(f"trained {images} in {time.perf_counter() - t0:.0f} s (original-only, {iterations} steps)")
    return root / "model"


def models_of(source: Path) -> tuple[dict[str, Path], object]:
    """Gives ({label: PLY}, SfM cameras or None) of a run folder or a PLY file."""
    if source.is_file():
        return {source.name: source}, None
    from gausynth_engine._layout import RunLayout
    from gausynth_engine.viewer.models import VARIANTS, cameras, final_model

    layout = RunLayout(source)
    found = {v: m.path for v in VARIANTS if (m := final_model(layout, v)) is not None}
    if not found:
        raise SystemExit(f"{source}: no trained model (gs/<variant>_…/point_cloud/iteration_N/point_cloud.ply)")
    return found, cameras(layout)


def bench(label: str, params: dict[str, np.ndarray], cams, out: Path) -> list[dict]:
    from gausynth_engine.viewer.orbit import orbit_cameras

    n = len(params["means"])
    k = params["shN"].shape[1] if "shN" in params else 0
    views = check_cameras(cams) if cams is not None else orbit_cameras(params["means"], None, frames=2)
    print(f"{label}: {n:,} Gaussians, {k} higher SH coefficients; renders from "
          f"{'its SfM cameras' if cams is not None else 'an orbit'}")
    import gsplat  # noqa: F401 - imported before the clock starts

    rows, base = [], None
    for fmt in FORMATS:
        path = out / f"{label}{SUFFIXES[fmt]}"
        r = export(params, fmt, path, views)
        t0 = time.perf_counter()
        read(path, fmt)  # the check read it once already: this times a reader on a warm file
        reading = time.perf_counter() - t0
        base = base or r.bytes
        print(f"  {r.line()}\n      {r.bytes / 2**20:8.2f} MiB = {r.bytes / base:6.1%} of the PLY, "
              f"{r.bytes / max(1, r.gaussians):.1f} B/Gaussian; write {1000 * r.seconds:.0f} ms, "
              f"read {1000 * reading:.0f} ms")
        rows.append({"model": label, "format": fmt, "gaussians": r.gaussians, "bytes": r.bytes,
                     "write_s": r.seconds, "read_s": reading, "ok": r.ok, "psnr_db": r.psnr,
                     "errors": r.errors, "problems": list(r.problems)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("source", nargs="?", help="a run folder or a PLY file")
    ap.add_argument("--train", metavar="IMAGES", help="train the original-only preset on these first")
    ap.add_argument("--iterations", type=int, default=10_000, help="with --train")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                    help="with --train: a preset override (e.g. preprocess.colmap_size=640)")
    ap.add_argument("--synthetic", type=int, default=PLUSH_DOG, help="Gaussians, without a source")
    ap.add_argument("--sh", type=int, default=3, help="SH degree of the synthetic model")
    ap.add_argument("--out", help="folder for the files (default: a temporary one)")
    args = ap.parse_args()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-export-"))
    source = train(Path(args.train), args.iterations, args.sets) if args.train else \
        Path(args.source) if args.source else None
    rows: list[dict] = []
    if source is None:
        rows += bench(f"synthetic-{args.synthetic}", synthetic(args.synthetic, args.sh), None, out)
    else:
        found, cams = models_of(source)
        for label, ply in found.items():
            rows += bench(label.removesuffix(".ply"), read_ply(ply), cams, out)
    failed = [f"{r['model']} {r['format']}: {'; '.join(r['problems'])}" for r in rows if not r["ok"]]
    print("read-back: " + ("every export matches its model" if not failed else "FAILED — " + " | ".join(failed)))
    print(json.dumps({"source": str(source or "synthetic"), "rows": rows}))
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
