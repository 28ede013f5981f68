"""Benchmark: the sfm stage against the plain recipe of 3DGS's convert.py, same frames, one run.

Sets: plush-dog (photos; reference intrinsics), kermit (photos; Bundler's cameras), apple-video
(frames of a real video; no truth) and the generated sample turn-around (true cameras). Frames
are prepared as preprocess does now for SfM: each keeps its aspect ratio, long side at most
--size (never upsampled), all frames unless --frames (evenly spread).

ours:  the stage's defaults (cyclic sequential pairs, plain matching, guided only in the retry,
       features at the frames' size, the undistorted layout and the preview drawn together).
       With --frames below the source's count, ours may borrow the source's frames between the
       sampled ones when frames are left out (sfm.bridge_frames, as the stage does from the
       input); they leave the model, and only the sampled frames are counted. plain sees the
       sampled frames alone.
plain: what gaussian-splatting's convert.py runs: one shared OPENCV camera, default SIFT,
       exhaustive matching, the incremental mapper with ba_global_function_tolerance 1e-6, then
       undistortion.
Per run: registered/total; rotation error (deg, after the best global rotation) and camera-centre
error (RMS after a similarity, relative to the cameras' spread) where cameras are known; focal
length error where intrinsics are known; CPU seconds (user+sys of this process and its
children: COLMAP's threads) and wall seconds, for SfM and for SfM + undistortion (+ preview).

    python bench/sfm.py [--sets sample kermit apple-video plush-dog] [--size 1600] [--frames N]
                        [--data DIR] [--device auto|cpu|cuda] [--runs ours plain:cpu ...]
                        [--variant NAME FIELD=VALUE ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from gausynth_engine._layout import RunLayout
from gausynth_engine._media import list_images, probe_input, read_frames, write_image
from gausynth_engine._sample import SampleSpec, make_sample
from gausynth_engine._stage import StageError
from gausynth_engine.sfm.bridges import InBetween
from gausynth_engine.sfm.features import static_backdrop_masks
from gausynth_engine.sfm.layout import write_layout_and_preview
from gausynth_engine.sfm.reconstruct import SfmOptions, SfmResult, check_frames, reconstruct
from gausynth_engine.sfm.truth import centre_error, rotation_error, true_centres
from gausynth_engine.stages.preprocess import sample_indices
from gausynth_engine.stages.sfm import Params, options

ROOT = Path(__file__).resolve().parents[1]
SETS = ("plush-dog", "kermit", "apple-video", "sample")


def source_of(name: str, data: Path) -> Path | None:
    return {"kermit": data / "kermit" / "images", "apple-video": data / "apple-video" / "apple.mp4",
            "plush-dog": data / "plush-dog" / "images"}.get(name)


@dataclasses.dataclass
class Truth:
    w2c: np.ndarray | None = None  # [N, 4, 4] OpenCV world-to-camera, NaN rows where unknown
    focal: np.ndarray | None = None  # [N] px in the prepared frames, NaN where unknown


def shrink(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """Gives the RGB frame with its long side at most `size` (never upsampled) and the scale."""
    import cv2

    image = image[..., :3]
    h, w = image.shape[:2]
    scale = min(1.0, size / max(h, w)) if size else 1.0
    if scale < 1:
        image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return image, scale


def prepare(name: str, data: Path, folder: Path, size: int, frames: int
            ) -> tuple[Path, Truth, InBetween]:
    """Writes the set's frames as preprocess would for SfM; gives (folder, what is known, the
    source's other frames as the stage would borrow them)."""

    source = source_of(name, data)
    if name == "sample":
        source = make_sample(folder / "video", SampleSpec(frames=48, width=640, height=480))
    info = probe_input(source)
    indices = sample_indices(info.frame_count, min(frames or info.frame_count, info.frame_count))
    out = folder / "frames"
    scale = 1.0
    for n, (_, image) in enumerate(read_frames(info, indices)):
        image, scale = shrink(image, size)
        write_image(out / f"{n:04d}.png", image)
    truth = Truth()
    if name == "sample":
        cams = json.loads(source.with_name("turnaround.cameras.json").read_text())
        truth.w2c = np.array([f["world_to_camera"] for f in cams["frames"]])[indices]
        spec = SampleSpec(frames=48, width=640, height=480)
        f = 0.5 * spec.width / np.tan(np.radians(spec.fov_deg) / 2)
        truth.focal = np.full(len(indices), f * scale)
    elif name == "kermit":
        w2c, focal = read_bundler(data / "kermit" / "bundler_result" / "bundle.out")
        truth.w2c, truth.focal = w2c[indices], focal[indices] * scale
    elif name == "plush-dog":
        cams = data / "plush-dog" / "reference" / "cameras_fullres_3000x2000.bin"
        if cams.is_file():
            raw = cams.read_bytes()
            width = struct.unpack_from("<Q", raw, 16)[0]
            fx, fy = struct.unpack_from("<2d", raw, 32)
            truth.focal = np.full(len(indices), 0.5 * (fx + fy) * info.width / width * scale)

    def read(wanted: list[int]) -> list[np.ndarray]:
        by_index = {i: shrink(image, size)[0] for i, image in read_frames(info, wanted)}
        return [by_index[i] for i in wanted]

    return out, truth, InBetween(tuple(indices), info.frame_count, read)


def read_bundler(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Gives OpenCV world-to-camera matrices [N, 4, 4] and focal lengths [N] (px) of a Bundler
    v0.3 file; unregistered cameras (f = 0) are NaN."""
    rows = [line.split() for line in path.read_text().splitlines() if not line.startswith("#")]
    count = int(rows[0][0])
    w2c, focal = np.full((count, 4, 4), np.nan), np.full(count, np.nan)
    flip = np.diag([1.0, -1.0, -1.0])  # Bundler's cameras look down -z with y up
    for n in range(count):
        block = np.array(rows[1 + 5 * n : 6 + 5 * n], dtype=np.float64)
        if block[0, 0] == 0:
            continue
        focal[n] = block[0, 0]
        w2c[n] = np.eye(4)
        w2c[n, :3, :3], w2c[n, :3, 3] = flip @ block[1:4], flip @ block[4]
    return w2c, focal


def plain_recipe(frames: Path, work: Path, device: Any) -> SfmResult:
    """Gives the model of convert.py's COLMAP commands (feature_extractor with one OPENCV camera,
    exhaustive_matcher, mapper with ba_global_function_tolerance 1e-6), largest one kept."""
    import pycolmap

    names, _ = check_frames(frames)
    work.mkdir(parents=True, exist_ok=True)
    db = work / "database.db"
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "OPENCV"
    pycolmap.extract_features(db, frames, image_names=names, camera_mode=pycolmap.CameraMode.SINGLE,
                              reader_options=reader, device=device)
    pycolmap.match_exhaustive(db, device=device)
    (work / "maps").mkdir()
    opts = pycolmap.IncrementalPipelineOptions()
    opts.ba_global_function_tolerance = 1e-6
    models = pycolmap.incremental_mapping(db, frames, work / "maps", options=opts)
    if not models:
        raise StageError("no model")
    best = max(models.values(), key=lambda m: m.num_reg_images())
    return SfmResult(best, names, [{"mapper": "incremental", "registered": best.num_reg_images(),
                                    "kept": True}])


def cpu_seconds() -> float:
    """Gives user+sys CPU seconds of this process (all its threads) and its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def score(result: SfmResult, truth: Truth) -> dict[str, Any]:
    """Gives the truth-based errors of a model (only those the set has truth for)."""
    rec, row = result.reconstruction, {}
    index = {n: i for i, n in enumerate(result.image_names)}
    posed = [im for im in rec.images.values() if im.has_pose]
    if truth.w2c is not None:
        known = [im for im in posed if not np.isnan(truth.w2c[index[im.name]]).any()]
        if len(known) >= 3:
            est_R = np.array([im.cam_from_world().rotation.matrix() for im in known])
            est_c = np.array([im.projection_center() for im in known])
            true = truth.w2c[[index[im.name] for im in known]]
            rot = rotation_error(est_R, true[:, :3, :3])
            row["rot_mean_deg"], row["rot_max_deg"] = rot["mean_deg"], rot["max_deg"]
            row["centre_rms_rel"] = centre_error(est_c, true_centres(true))["rms_relative"]
    if truth.focal is not None and posed:
        focal = np.array([im.camera.mean_focal_length() for im in posed])
        expected = truth.focal[[index[im.name] for im in posed]]
        ok = ~np.isnan(expected)
        row["focal_err"] = float(np.mean(np.abs(focal[ok] / expected[ok] - 1))) if ok.any() else None
    return row


def measure(label: str, frames: Path, work: Path, opts: SfmOptions | None, truth: Truth,
            device: Any, backdrop: bool, in_between: InBetween | None = None) -> dict[str, Any]:
    """Runs one recipe on the frames: SfM, then its outputs (ours: layout + preview; plain:
    undistortion as convert.py does)."""
    import pycolmap

    wall, cpu = time.monotonic(), cpu_seconds()
    try:
        if opts is None:
            result = plain_recipe(frames, work, device)
        else:
            if backdrop:
                names, _ = check_frames(frames)
                opts = dataclasses.replace(opts, masks=static_backdrop_masks(frames, names, work / "masks")[0])
            result = reconstruct(frames, work, opts, log=lambda m, level="info": print("   ", m, flush=True),
                                 in_between=in_between)
    except StageError as e:
        return {"run": label, "registered": f"0/{len(list_images(frames))}", "fraction": 0.0,
                "sfm_wall_s": time.monotonic() - wall, "sfm_cpu_s": cpu_seconds() - cpu,
                "error": str(e)[:80]}
    row = {"run": label, **result.stats(), "sfm_wall_s": time.monotonic() - wall,
           "sfm_cpu_s": cpu_seconds() - cpu, "mapper": result.mapper,
           "attempts": " → ".join(str(a["registered"]) for a in result.attempts)}
    out = RunLayout(work / "run")
    if opts is None:
        sparse = work / "sparse"
        sparse.mkdir()
        result.reconstruction.write(sparse)
        pycolmap.undistort_images(work / "undistorted", sparse, frames, output_type="COLMAP")
    else:
        write_layout_and_preview(result.reconstruction, frames, result.image_names,
                                 work / "database.db", out, work / "colmap.mp4")
    row["total_wall_s"], row["total_cpu_s"] = time.monotonic() - wall, cpu_seconds() - cpu
    row["fraction"] = result.fraction
    row["registered"] = f"{result.registered}/{len(result.image_names)}"
    row.update(score(result, truth))
    return row


def parse_changes(items: list[str]) -> dict[str, Any]:
    """Gives {field: value} of FIELD=VALUE words (JSON values, else text)."""
    changes = {}
    for item in items:
        key, value = item.split("=", 1)
        try:
            changes[key] = json.loads(value)
        except ValueError:
            changes[key] = value
    return changes


def main() -> None:
    import pycolmap

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--size", type=int, default=1600, help="longest side of a frame, px (0 = as given)")
    parser.add_argument("--frames", type=int, default=0, help="frames per set, evenly spread (0 = all)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="folder holding plush-dog/, kermit/, apple-video/ (e.g. .data)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="SIFT extraction and matching, for both recipes")
    parser.add_argument("--runs", nargs="+", default=["ours", "plain"],
                        help="ours / plain, each optionally :cpu or :cuda (else --device)")
    parser.add_argument("--variant", nargs="+", action="append", default=[], metavar="NAME FIELD=VALUE",
                        help="another run of ours with sfm fields changed, e.g. --variant pp "
                        "refine_principal_point=true; backdrop_mask=true masks the static backdrop")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    pycolmap.logging.minloglevel = 2
    from gausynth_engine.sfm.features import sift_device

    print(f"pycolmap {pycolmap.__version__}, CUDA build: {pycolmap.has_cuda}, "
          f"SIFT on {sift_device(args.device)} for --device {args.device}")
    recipes: list[tuple[str, dict[str, Any] | None, str]] = []  # (label, sfm changes, device)
    for run in args.runs:
        name, _, where = run.partition(":")
        recipes.append((run, None if name == "plain" else {}, where or args.device))
    for name, *changes in args.variant:
        recipes.append((name, parse_changes(changes), args.device))
    rows = []
    for name in args.sets:
        source = source_of(name, args.data)
        if source is not None and not source.exists():
            print(f"{name}: {source} absent, skipped")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            frames, truth, others = prepare(name, args.data, Path(tmp), args.size, args.frames)
            w, h = check_frames(frames)[1]
            for label, changes, where in recipes:
                opts = None
                backdrop = False
                lend = None
                if changes is not None:
                    changes = dict(changes)
                    backdrop = bool(changes.pop("backdrop_mask", False))
                    focal = changes.pop("focal_length_px", 0.0)
                    if focal == "truth":  # the set's known intrinsics as the prior
                        focal = float(np.nanmean(truth.focal)) if truth.focal is not None else 0.0
                    params = dataclasses.replace(Params(), **changes)
                    opts = options(params, focal, device=where)
                    if params.bridge_frames and others.count > len(others.positions):
                        lend = dataclasses.replace(others, budget=params.bridge_frames)
                row = measure(label, frames, Path(tmp) / label.replace(":", "-"), opts, truth,
                              sift_device(where), backdrop, lend)
                row.update(set=name, frame_size=f"{w}×{h}", device=where)
                rows.append(row)
                print(name, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()},
                      flush=True)
                if args.json:  # after every run: a run cut short by a time limit keeps the rest
                    args.json.write_text(json.dumps(rows, indent=1))
    print_table(rows)


def print_table(rows: list[dict[str, Any]]) -> None:
    def f(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    print(f"\n{'set':<11} {'size':>9} {'run':<9} {'registered':>10} {'rot° mean':>9} {'rot° max':>8} "
          f"{'centre':>7} {'focal':>7} {'reproj':>6} {'sfm cpu':>8} {'sfm wall':>8} {'all cpu':>8} "
          f"{'all wall':>8}  mapper (registered per mapping)")
    for r in rows:
        print(f"{r['set']:<11} {r['frame_size']:>9} {r['run']:<9} {r['registered']:>10} "
              f"{f(r.get('rot_mean_deg'), '.3f'):>9} {f(r.get('rot_max_deg'), '.2f'):>8} "
              f"{f(r.get('centre_rms_rel'), '.2%'):>7} {f(r.get('focal_err'), '.2%'):>7} "
              f"{f(r.get('mean_reprojection_error_px'), '.3f'):>6} {r['sfm_cpu_s']:>8.1f} "
              f"{r['sfm_wall_s']:>8.1f} {f(r.get('total_cpu_s'), '.1f'):>8} "
              f"{f(r.get('total_wall_s'), '.1f'):>8}  {r.get('mapper', r.get('error', ''))} "
              f"({r.get('attempts', '')})")
    by = {(r["set"], r["run"]): r for r in rows}
    for (name, run), r in by.items():
        plain = by.get((name, "plain"))
        if run != "plain" and plain and plain.get("total_cpu_s") and r.get("total_cpu_s"):
            print(f"{name}: {run} CPU / plain CPU = {r['total_cpu_s'] / plain['total_cpu_s']:.2f} "
                  f"(SfM only {r['sfm_cpu_s'] / plain['sfm_cpu_s']:.2f})")
    print("\nrot°: angle between each camera's rotation and the truth after the best global "
          "rotation; centre: RMS centre distance after a similarity / the true cameras' spread; "
          "focal: mean |f / f_true − 1|. cpu: user+sys seconds (all threads); all = SfM + outputs.")


if __name__ == "__main__":
    main()
