"""Benchmark: every export format of one trained model — size, write time, read-back check.

Each file is written by its library (gsplat's exporter; gsply for SPZ), read back by an
independent reader and compared Gaussian by Gaussian (largest error per attribute) and, with
--cameras, by renders (pure-PyTorch rasterizer, 2 views at 96 px). The float PLY is the
baseline for the sizes.

    python bench/export.py PLY [--run RUN]   # a trained model (e.g. gs/orig_…/point_cloud/…/point_cloud.ply)
    python bench/export.py --synthetic 300000 --sh 3   # random Gaussians of that count
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gausynth_engine.export import FORMATS, SUFFIXES, check_cameras, export  # noqa: E402
from gausynth_engine.splatting.ply import read_ply  # noqa: E402


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("ply", nargs="?")
    ap.add_argument("--run", help="the run folder, for render checks from its SfM cameras")
    ap.add_argument("--synthetic", type=int, default=0)
    ap.add_argument("--sh", type=int, default=0)
    args = ap.parse_args()
    params = read_ply(Path(args.ply)) if args.ply else synthetic(args.synthetic, args.sh)
    cameras = None
    if args.run:
        from gausynth_engine._layout import RunLayout
        from gausynth_engine.viewer.models import cameras as sfm_cameras

        cams = sfm_cameras(RunLayout(Path(args.run)))
        cameras = check_cameras(cams) if cams is not None else None
    n = len(params["means"])
    k = params["shN"].shape[1] if "shN" in params else 0
    print(f"{n} Gaussians, {k} higher SH coefficients; {args.ply or 'synthetic'}")
    out = Path(tempfile.mkdtemp(prefix="bench-export-"))
    base = None
    for fmt in FORMATS:
        r = export(params, fmt, out / f"model{SUFFIXES[fmt]}", cameras)
        base = base or r.bytes
        print(f"{r.line()}\n    {r.bytes / 2**20:8.2f} MiB = {r.bytes / base:5.1%} of the PLY, "
              f"{r.bytes / max(1, r.gaussians):.1f} B/Gaussian, written in {r.seconds:.2f} s")


if __name__ == "__main__":
    main()
