"""Benchmark: how much of each ordered capture the sfm stage registers, how fast, how well.

Sets: every ordered sequence in ../shared/data (plush-dog images, apple-video frames, kermit) and
the generated sample turn-around (true cameras known). Each set is cut to squares at --size like
the preprocess stage (or left whole with --whole), all frames unless --frames. For each set,
ours (the stage's default `sfm` settings: denser SIFT, guided matching, cyclic sequential pairs,
relaxed incremental mapper, retry) and the baseline (plain pycolmap defaults: sequential
matching, default SIFT and mapper, as the reference's `convert.py` would run COLMAP) are timed
and scored: registered fraction, mean reprojection error, 3D points, and on the sample the
camera-centre error after a similarity alignment (relative to the orbit's radius).

    python bench/sfm.py [--sets sample kermit apple-video plush-dog] [--size 1024] [--whole]
                        [--frames N] [--no-baseline] [--ours guided_matching=false ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from gausynth_engine._media import list_images, probe_input, read_frames, write_image
from gausynth_engine._sample import SampleSpec, make_sample
from gausynth_engine._stage import StageError
from gausynth_engine.sfm.reconstruct import SfmOptions, SfmResult, check_frames, reconstruct
from gausynth_engine.sfm.truth import centre_error, true_centres
from gausynth_engine.stages.preprocess import make_square, resize, sample_indices
from gausynth_engine.stages.sfm import Params, options

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {"sample": None, "kermit": SHARED / "kermit" / "images",
        "apple-video": SHARED / "apple-video" / "apple.mp4", "plush-dog": SHARED / "plush-dog" / "images"}


def prepare(name: str, folder: Path, size: int, whole: bool, frames: int) -> tuple[Path, np.ndarray | None]:
    """Writes the set's frames into folder as the stage would see them; gives (folder, true
    centres [N, 3] or None)."""
    truth = None
    source = SETS[name]
    if name == "sample":
        source = make_sample(folder / "video", SampleSpec(frames=48, width=640, height=480))
    info = probe_input(source)
    count = frames or info.frame_count
    indices = sample_indices(info.frame_count, min(count, info.frame_count))
    out = folder / "frames"
    for n, (_, image) in enumerate(read_frames(info, indices)):
        image = image[..., :3]
        if not whole:
            image = resize(make_square(image, "crop"), size)
        write_image(out / f"{n:04d}.png", image)
    if name == "sample":
        cams = json.loads(source.with_name("turnaround.cameras.json").read_text())
        w2c = np.array([f["world_to_camera"] for f in cams["frames"]])
        truth = true_centres(w2c[indices])
    return out, truth


def baseline(frames: Path, work: Path) -> SfmResult:
    """Gives the largest model of plain pycolmap defaults: one shared camera, default SIFT,
    sequential matching (no loop closure), default incremental mapper (COLMAP out of the box)."""
    import pycolmap

    names = check_frames(frames)
    work.mkdir(parents=True, exist_ok=True)
    db = work / "database.db"
    pycolmap.extract_features(db, frames, image_names=names, camera_mode=pycolmap.CameraMode.SINGLE,
                              device=pycolmap.Device.cpu)
    pycolmap.match_sequential(db, device=pycolmap.Device.cpu)
    (work / "maps").mkdir()
    models = pycolmap.incremental_mapping(db, frames, work / "maps")
    if not models:
        raise StageError("no model")
    return SfmResult(max(models.values(), key=lambda m: m.num_reg_images()), names, [])


def measure(frames: Path, work: Path, opts: SfmOptions | None, truth: np.ndarray | None) -> dict:
    started = time.monotonic()
    try:
        result = (reconstruct(frames, work, opts, log=lambda m: print("   ", m, flush=True))
                  if opts is not None else baseline(frames, work))
    except StageError as e:
        return {"registered": f"0/{len(list_images(frames))}", "fraction": 0.0,
                "seconds": time.monotonic() - started, "error": str(e)[:60]}
    row = {**result.stats(), "seconds": time.monotonic() - started,
           "attempts": " → ".join(str(a["registered"]) for a in result.attempts)}
    row["fraction"] = result.fraction
    row["registered"] = f"{result.registered}/{len(result.image_names)}"
    if truth is not None:
        names = [im.name for im in result.reconstruction.images.values() if im.has_pose]
        index = {n: i for i, n in enumerate(result.image_names)}
        est = np.array([result.reconstruction.find_image_with_name(n).projection_center() for n in names])
        err = centre_error(est, truth[[index[n] for n in names]])
        row["centre_rms"] = err["rms_relative"]
    return row


def main() -> None:
    import pycolmap

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--size", type=int, default=1024, help="square side, px (as preprocess)")
    parser.add_argument("--whole", action="store_true", help="keep frames whole (no square crop)")
    parser.add_argument("--frames", type=int, default=0, help="frames per set (0 = all)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--ours", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="change ours from the sfm defaults, e.g. guided_matching=false")
    args = parser.parse_args()
    pycolmap.logging.minloglevel = 2
    changes = {k: json.loads(v) if v[:1] in "0123456789-tf" else v
               for k, v in (item.split("=", 1) for item in args.ours)}
    ours = options(dataclasses.replace(Params(), **changes))
    rows = []
    for name in args.sets:
        if name != "sample" and not SETS[name].exists():
            print(f"{name}: {SETS[name]} absent, skipped")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            frames, truth = prepare(name, Path(tmp), args.size, args.whole, args.frames)
            runs = [("ours", ours)] + ([] if args.no_baseline else [("baseline", None)])
            for label, opts in runs:
                row = measure(frames, Path(tmp) / label, opts, truth)
                rows.append((name, label, row))
                print(name, label, {k: v for k, v in row.items() if k != "total"}, flush=True)
    print(f"\n{'set':<12} {'run':<9} {'registered':>10} {'frac':>6} {'time s':>8} {'reproj px':>9} "
          f"{'points':>7} {'centre err':>10}  registered per mapping")
    for name, label, row in rows:
        reproj = row.get("mean_reprojection_error_px")
        centre = row.get("centre_rms")
        print(f"{name:<12} {label:<9} {row['registered']:>10} {row['fraction']:>6.1%} "
              f"{row['seconds']:>8.1f} {reproj if reproj is not None else '-':>9} "
              f"{row.get('points3d', '-'):>7} {f'{centre:.2%}' if centre is not None else '-':>10}  "
              f"{row.get('attempts', '')}")
    print("\ncentre err: RMS camera-centre distance after similarity alignment / orbit radius.")


if __name__ == "__main__":
    main()
