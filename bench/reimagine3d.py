"""Benchmark: reimagined key views carried to every view in 3D vs in 2D, against a known filter.

A stand-in for the diffusion, filter g (structure-changing: posterise + hue rotation + ink edges,
or a luminance→palette swap with a content-anchored hatch), restyles the N² key frames only; the
truth for every other view is g(true frame). Both routes get the keys' restyle only inside the
sheet's centred squares (as the product's diffusion gives it) and are scored inside the object
(true mask for the generated sample; the original 3DGS's silhouette for real sets) ∩ that
square of each frame — the pixels both routes restyle (the whole frame when frames are square;
before session 4 the 2D methods got whole restyled key frames and whole-frame scores, which
favoured them on wide frames), everything over white:

- (a) the frames handed to the final 3DGS, on the non-key views;
- (b) the final 3DGS (fixed small iteration count) at held-out test cameras, grown from the
  SfM points (`test`) and fine-tuned from the original 3DGS (`test_o`, splat.reim_init);
- fit: that 3DGS's train-view PSNR against the frames it was given (consistency: no truth).

Methods, same frames and keys: 3D `reproject`, `bake`, `hybrid`, `flow` (transfer3d: flow where it is
trusted, reprojection elsewhere), 2D `propagate`
(the stage's code), `forward` (the reference's forward-only propagation), `no-flow` (each frame
recoloured like its nearest key), `nearest` (the nearest key copied, no warp).
`truth`, a reference: the final 3DGS trained on g(true frame) itself at the train views.
On the generated sample the `surface` restyle is the same on every view (its texture
repainted in the palette, with ink stripes across the surface, rendered again): there the
truth is consistent and the score measures the transfer, not the filter's per-view ink.

    python bench/reimagine3d.py --tiny                  # generated sample, CPU (~30 s idle)
    python bench/reimagine3d.py --runs RUN [RUN …]      # run folders where preprocess+sfm ran
    python bench/reimagine3d.py --pack-data 640         # real sets → .data/ (4.7 MB), for the device

On the H200 (carry .dev and .data), everything in one command:

    source .dev/unpack.sh && python bench/reimagine3d.py --device cuda --size 128 --views 48 \
        --real --json $OUT/reimagine3d.json

The real sets first get preprocess + sfm + mask through the engine (`original-only`, cached under
.data/runs-reimagine3d/, through the mask stage); scored inside the mask stage's object masks.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gausynth_engine.compositing import over as over_white  # rgb over white through a [H, W] mask
from gausynth_engine.quality import psnr_of_mse, ssim
from gausynth_engine.transfer3d import Cameras, KeyView, carry, key_to_camera, object_mask
from gausynth_engine.transfer3d.carry import FILLS

# bench/ (forward_only, the baseline) and tests/ (synthetic_scene, a fixture), also when imported as bench.*
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "tests")]

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
METHODS_3D = ("reproject", "bake", "hybrid", "flow")
METHODS_2D = ("propagate", "forward", "no-flow", "nearest")
# A reference, not a method: the final 3DGS trained on g(true frame) at every train view. The
# filters' ink follows each view's own edges, so those frames disagree between views and this is
# no strict ceiling (consistent frames can score higher at held-out cameras); it says how much of
# a margin over 2D the held-out truth leaves to win at all.
TRUTH = "truth"
# Where the final 3DGS starts (splat.reim_init): its scores' key suffix.
INIT_SUFFIX = {"points": "", "original": "_o"}


# --- the stand-in filters -----------------------------------------------------------------------
def cartoon_hue(image: np.ndarray) -> np.ndarray:
    """Posterise (4 levels) after a 150° hue rotation, with dark ink on the edges (RGB uint8)."""
    import cv2

    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + 75) % 180
    hsv[..., 1] = np.clip(hsv[..., 1].astype(np.int32) * 3 // 2 + 40, 0, 255)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    poster = (rgb // 64) * 64 + 32
    edges = cv2.Canny(cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (3, 3), 0), 40, 110)
    poster[edges > 0] = (poster[edges > 0] * 0.25).astype(np.uint8)
    return poster.astype(np.uint8)


PALETTE = np.array([[40, 30, 90], [200, 60, 70], [250, 190, 60], [90, 200, 160], [240, 240, 220]],
                   np.float32)


def palette_hatch(image: np.ndarray) -> np.ndarray:
    """Luminance bands → a fixed 5-colour palette, darker bands hatched by the image's own
    texture (the sign of its local detail), so neither hue nor pattern is a colour grade."""
    import cv2

    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    band = np.clip((gray / 256 * len(PALETTE)).astype(int), 0, len(PALETTE) - 1)
    out = PALETTE[band]
    detail = gray - cv2.GaussianBlur(gray, (0, 0), 2.0)
    hatch = (detail < -2) & (band <= 2)
    out[hatch] *= 0.55
    return out.astype(np.uint8)


FILTERS = {"cartoon-hue": cartoon_hue, "palette-hatch": palette_hatch}
# The one restyle that is the same on every view: the generated sample rendered again with its
# texture recoloured and inked on the surface itself (real sets have no surface to repaint).
SURFACE = "surface"


def surface_texture(p: np.ndarray) -> np.ndarray:
    """Gives the restyled sample's colour [N, 3] in [0, 1] at surface points p [N, 3]: its
    texture's luminance in the 5-colour palette, with ink stripes drawn across the surface."""
    from gausynth_engine._sample import albedo

    lum = albedo(p) @ np.array([0.299, 0.587, 0.114])
    colour = PALETTE[np.clip((lum * len(PALETTE)).astype(int), 0, len(PALETTE) - 1)] / 255.0
    ink = np.modf(7.0 * (p[:, 0] + 0.6 * p[:, 2]) + 10.0)[0] < 0.12
    colour[ink] *= 0.25
    return colour


# --- the sets -------------------------------------------------------------------------------------
@dataclass
class SetData:
    name: str
    frames: np.ndarray  # uint8 [V, H, W, 3], lined up with the undistorted cameras
    cams: Cameras
    points: np.ndarray  # [P, 3] SfM points
    colors: np.ndarray  # [P, 3] in 0..1
    masks: np.ndarray | None  # float32 [V, H, W] true object masks (None: use the 3DGS's alpha)
    surface: np.ndarray | None = None  # uint8 [V, H, W, 3]: the views with `surface_texture`


def sample_set(size: int, views: int, points: int, workdir: Path) -> SetData:
    """Gives the generated sample at its true cameras, with its true object masks."""
    from synthetic_scene import make_true_scene  # tests/ (see the path above)

    from gausynth_engine._sample import _intersect, render_view
    from gausynth_engine.splatting.dataset import load_scene

    sparse, images = make_true_scene(workdir / "sample", views=views, width=size, height=size,
                                     points=points)
    scene = load_scene(sparse, images)
    masks = []
    for K, w2c in zip(scene.Ks, scene.viewmats, strict=True):
        R, t = w2c[:3, :3], w2c[:3, 3]
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
        pix = np.stack([(xs + 0.5 - K[0, 2]) / K[0, 0], (ys + 0.5 - K[1, 2]) / K[1, 1],
                        np.ones_like(xs)], -1).reshape(-1, 3) @ R
        pix /= np.linalg.norm(pix, axis=1, keepdims=True)
        _, hit, _ = _intersect(np.broadcast_to(-R.T @ t, pix.shape), pix)
        masks.append(hit.reshape(size, size).astype(np.float32))
    cams = Cameras(tuple(scene.names), scene.Ks, scene.viewmats, size, size)
    restyled = np.stack([render_view(K, w2c, size, size, surface_texture)
                         for K, w2c in zip(scene.Ks, scene.viewmats, strict=True)])
    return SetData("generated-sample", scene.images, cams, scene.points, scene.colors, np.stack(masks),
                   restyled)


def true_gaussians(data: SetData, count: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Gives raw Gaussians on the generated sample's true surface (no fitting): `count` points
    ray-cast from the views, round, nearly opaque, coloured by the texture; a clean stand-in
    for the original 3DGS when the transfer alone is under test."""
    from synthetic_scene import surface_points

    from gausynth_engine.splatting.model import knn_mean_distance, rgb_to_sh

    pts, cols = surface_points(data.cams.Ks[0], data.cams.viewmats, data.cams.width,
                               data.cams.height, count, seed)
    means = torch.as_tensor(pts, dtype=torch.float32)
    scale = knn_mean_distance(means, k=4) * 0.45
    return {"means": means, "scales": torch.log(scale)[:, None].repeat(1, 3),
            "quats": torch.tensor([[1.0, 0, 0, 0]]).repeat(len(means), 1),
            "opacities": torch.full((len(means),), 3.0),
            "sh0": rgb_to_sh(torch.as_tensor(cols, dtype=torch.float32) / 0.8 * 0.9)[:, None]}


def run_set(folder: Path, size: int) -> SetData:
    """Gives the set of a run folder where preprocess, sfm and mask ran: the undistorted views,
    with the mask stage's object masks (the product's own; a turntable's backdrop cannot be
    part of a static 3D scene) when it made them."""
    from gausynth_engine._layout import RunLayout
    from gausynth_engine.poses import prepare_views
    from gausynth_engine.splatting.dataset import load_scene

    layout = RunLayout(Path(folder))
    views = layout.colmap_images
    if layout.orig_transparent.is_dir():
        # Undistorted like the SfM model they go with: made again whenever sfm or mask reran.
        views = layout.root / ".bench-masked"
        made_from = "".join(layout.manifest(s).read_text(encoding="utf-8") for s in ("sfm", "mask"))
        stamp = views / ".made-from"
        if not stamp.is_file() or stamp.read_text(encoding="utf-8") != made_from:
            import shutil

            shutil.rmtree(views, ignore_errors=True)
            prepare_views(layout, layout.orig_transparent, views)
            stamp.write_text(made_from, encoding="utf-8")
    scene = load_scene(layout.colmap_sparse, views)
    width, height = scene.size
    factor = max(1, round(max(width, height) / size))
    if factor > 1:
        scene = load_scene(layout.colmap_sparse, views, downscale=factor)
    width, height = scene.size
    cams = Cameras(tuple(scene.names), scene.Ks, scene.viewmats, width, height)
    masks = None if scene.alphas is None else (scene.alphas > 127).astype(np.float32)
    return SetData(Path(folder).name, scene.images, cams, scene.points, scene.colors, masks)


REAL = {"plush-dog-102": ("plush-dog/images", 102), "plush-dog-48": ("plush-dog/images", 48),
        "apple-video": ("apple-video/apple.mp4", 48), "kermit": ("kermit/images", 11)}


def pack_data(long_side: int) -> None:
    """Writes shrunk copies of the real sets into REPO/.data/ (git-ignored) for the device."""
    import shutil

    import cv2

    for rel in ("plush-dog/images", "kermit/images"):
        dest = REPO / ".data" / rel
        dest.mkdir(parents=True, exist_ok=True)
        for path in sorted((SHARED / rel).iterdir()):
            image = cv2.imread(str(path))
            if image is None:
                continue
            scale = long_side / max(image.shape[:2])
            if scale < 1:
                image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(dest / (path.stem + ".jpg")), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    (REPO / ".data" / "apple-video").mkdir(parents=True, exist_ok=True)
    shutil.copy2(SHARED / "apple-video" / "apple.mp4", REPO / ".data" / "apple-video" / "apple.mp4")
    total = sum(p.stat().st_size for p in (REPO / ".data").rglob("*") if p.is_file())
    print(f"{REPO / '.data'}: {total / 1e6:.1f} MB")


def prepare_real_runs(root: Path, names: list[str], colmap_size: int) -> list[Path]:
    """Runs preprocess + sfm (the engine, cached by fingerprint) for the real sets; gives the
    run folders. Data from ../shared/data, else from REPO/.data/<set folder> (the device)."""
    folders = []
    for name in names:
        rel, frames = REAL[name]
        source = SHARED / rel if SHARED.is_dir() else REPO / ".data" / rel
        if not source.exists():
            print(f"({source} absent: {name} skipped)", file=sys.stderr)
            continue
        sets = {"run.input": str(source), "run.directory": name, "run.outputs_root": str(root),
                "preprocess.num_frames": frames, "preprocess.colmap_size": colmap_size,
                "preprocess.sd_size": min(512, colmap_size), "sfm.allow_low_registration": "true"}
        cmd = [sys.executable, "-m", "gausynth_engine", "run", "original-only", "--until", "mask"]
        for k, v in sets.items():
            cmd += ["--set", f"{k}={v}" if isinstance(v, int) or v == "true" else f"{k}={v!r}"]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        print(f"  {name}: preprocess + sfm {time.perf_counter() - t0:.0f} s (rc {done.returncode})",
              file=sys.stderr)
        if done.returncode != 0:
            print(done.stdout[-800:] + done.stderr[-800:], file=sys.stderr)
            continue
        folders.append(root / name)
    return folders


# --- 3DGS on a set --------------------------------------------------------------------------------
def fit(data: SetData, images: np.ndarray, train_ids: list[int], iterations: int, device: str,
        refine: bool = False, init: dict[str, torch.Tensor] | None = None) -> torch.nn.Module | object:
    """Gives a Trainer fitted `iterations` steps to `images` [V, H, W, 3] on the train views,
    grown from the SfM points, or fine-tuned from the raw Gaussians `init` (the product's
    `splat.reim_init = original`: every SH band at once, no opacity reset, slower means)."""
    from gausynth_engine.splatting.dataset import Scene
    from gausynth_engine.splatting.train import TrainConfig, Trainer

    scene = Scene(list(data.cams.names), images, data.cams.Ks, data.cams.viewmats, data.points,
                  data.colors)
    config = TrainConfig(iterations=iterations, test_every=0, sh_degree=0,
                         refine_start=100 if refine else 10**9, refine_every=100,
                         refine_stop=max(200, iterations // 2), reset_every=10**9)
    start = None if init is None else {k: v.detach().cpu().numpy() for k, v in init.items()}
    trainer = Trainer(scene, config, device, start)
    trainer.train_ids = list(train_ids)
    torch.manual_seed(0)
    while trainer.step_done < iterations:
        trainer.step()
    return trainer


@torch.no_grad()
def renders(trainer: object, ids: list[int]) -> dict[int, np.ndarray]:
    out = {}
    for i in ids:
        rgb, _ = trainer.render(i)  # type: ignore[attr-defined]
        out[i] = (rgb[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
    return out


# --- scoring ----------------------------------------------------------------------------------------
def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    inside = mask > 0.5
    mse = np.mean((a[inside].astype(np.float64) - b[inside].astype(np.float64)) ** 2) if inside.any() else 0
    return psnr_of_mse(float(mse), 255.0)


def scores(out: dict[int, np.ndarray], truth: np.ndarray, masks: np.ndarray, ids: list[int]
           ) -> tuple[float, float]:
    """Gives mean (masked PSNR, SSIM over white) of `out` vs `truth` over the views `ids`."""
    p = [masked_psnr(over_white(out[i], masks[i]), over_white(truth[i], masks[i]), masks[i]) for i in ids]
    s = [ssim(over_white(truth[i], masks[i]), over_white(out[i], masks[i])) for i in ids]
    return float(np.mean(p)), float(np.mean(s))


# --- the methods ------------------------------------------------------------------------------------
def sd_square(data: SetData) -> np.ndarray:
    """Gives float32 [H, W]: 1 inside the centred square the sheet's tiles are cut from (the
    whole frame when square) — the part of a frame the diffusion restyles in either route."""
    h, w = data.cams.height, data.cams.width
    side = min(h, w)
    out = np.zeros((h, w), np.float32)
    x0, y0 = (w - side) // 2, (h - side) // 2
    out[y0:y0 + side, x0:x0 + side] = 1.0
    return out


def keys_for(data: SetData, key_ids: list[int], styled: np.ndarray) -> list[KeyView]:
    """Gives the key views as the stage makes them: square tiles at the sd box (whole frame
    here when square; the centred square otherwise), mapped onto the camera."""
    h, w = data.cams.height, data.cams.width
    side = min(h, w)
    box = ((w - side) / 2, (h - side) / 2, side)
    out = []
    for k in key_ids:
        x0, y0 = int(box[0]), int(box[1])
        tile = styled[k][y0:y0 + side, x0:x0 + side]
        rgb, valid = key_to_camera(tile, box, (w, h))
        out.append(KeyView(k, data.cams.names[k], rgb, valid, object_mask(rgb, valid)))
    return out


def methods_2d(name: str, frames: np.ndarray, keys: dict[int, np.ndarray]) -> list[np.ndarray]:
    from forward_only import propagate_forward_only  # bench/, this script's folder

    from gausynth_engine.propagation import propagate
    from gausynth_engine.propagation.colour import ColourTransfer

    f = list(frames)
    if name == "propagate":
        return list(propagate(f, keys))
    if name == "forward":
        return list(propagate_forward_only(f, keys))
    order = sorted(keys)
    count = len(f)
    near = [min(order, key=lambda k, t=t: min(abs(k - t), count - abs(k - t))) for t in range(count)]
    if name == "nearest":
        return [keys[near[t]] for t in range(count)]
    transfers = {k: ColourTransfer.learn(f[k], keys[k]) for k in order}
    return [keys[t] if t in keys else np.clip(transfers[near[t]].apply(f[t]) + 0.5, 0, 255).astype(np.uint8)
            for t in range(count)]


def evaluate(data: SetData, grid: int, filt: str, args: argparse.Namespace, geometry_params: dict,
             backend: str, masks: np.ndarray) -> list[dict]:
    from gausynth_engine.stages.sheet import key_frame_indices

    count = len(data.cams)
    key_ids = key_frame_indices(count, grid)
    if filt == SURFACE:
        if data.surface is None:
            return []
        truth = data.surface
    else:
        truth = np.stack([FILTERS[filt](f) for f in data.frames])
    inner = [i for i in range(count) if i not in key_ids]
    test_ids = inner[::args.test_every]
    train_ids = [i for i in range(count) if i not in test_ids]
    rows = []
    candidates: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}  # frames, alpha, seconds
    keys = keys_for(data, key_ids, truth)
    # Both routes know the keys' restyle only inside the sheet's squares (the 2D methods get key
    # frames restyled there and original elsewhere, as the 3D ones get their tiles), and both
    # are scored inside the object ∩ that square of each frame: the pixels both routes restyle.
    square = sd_square(data)
    keys_2d = {k: np.where(square[..., None] > 0, truth[k], data.frames[k]).astype(np.uint8)
               for k in key_ids}
    scored = masks * square
    for m in args.methods:
        if m == TRUTH:
            candidates[m] = (truth, masks, 0.0)
        elif m in METHODS_3D:
            for n, fill in enumerate(args.fill):
                t0 = time.perf_counter()
                out = carry(geometry_params, data.cams, keys, m, backend, bake_steps=args.bake_steps,
                            frames=data.frames, fill_method=fill)
                frames = np.stack([out.rgba_uint8(v) for v in range(count)])
                candidates[m if n == 0 else f"{m}/{fill}"] = (
                    frames[..., :3], frames[..., 3].astype(np.float32) / 255, time.perf_counter() - t0)
        else:
            t0 = time.perf_counter()
            frames = np.stack(methods_2d(m, data.frames, keys_2d))
            candidates[m] = (frames, masks, time.perf_counter() - t0)
    for m, (frames, alpha, seconds) in candidates.items():
        handed = {i: frames[i] for i in range(count)}
        # (the truth row's frames are the truth: nothing to score)
        a_psnr, a_ssim = (float("nan"),) * 2 if m == TRUTH else scores(handed, truth, scored, inner)
        given = np.stack([over_white(frames[i], alpha[i]) for i in range(count)])
        row = {"set": data.name, "filter": filt, "N": grid, "method": m, "frames_psnr": a_psnr,
               "frames_ssim": a_ssim, "seconds": seconds}
        said = ""
        for init in args.final_init if args.iterations > 0 else ():
            suffix = INIT_SUFFIX[init]
            trainer = fit(data, given, train_ids, args.iterations, args.device,
                          init=geometry_params if init == "original" else None)
            test = renders(trainer, test_ids)
            row["test_psnr" + suffix], row["test_ssim" + suffix] = scores(test, truth, scored, test_ids)
            train = renders(trainer, train_ids)
            row["fit_psnr" + suffix] = float(np.mean([masked_psnr(train[i], given[i], scored[i])
                                                      for i in train_ids]))
            said += (f", test{suffix} {row['test_psnr' + suffix]:5.2f} dB, "
                     f"fit{suffix} {row['fit_psnr' + suffix]:5.2f} dB")
        rows.append(row)
        print(f"  {data.name} {filt} N={grid} {m:<9} frames {a_psnr:5.2f} dB{said}, {seconds:.1f} s",
              file=sys.stderr)
    return rows


def print_table(rows: list[dict]) -> None:
    inits = [(i, s) for i, s in INIT_SUFFIX.items() if any("test_psnr" + s in r for r in rows)]
    head = (f"{'set':<17} {'filter':<13} {'N':>1} {'method':<9} | {'frames dB':>9} {'SSIM':>6}"
            + "".join(f" | {'test' + s + ' dB':>9} {'SSIM':>6} {'fit dB':>6}" for _, s in inits)
            + f" | {'s':>6} {'×2D':>5}")
    print(head)
    print("-" * len(head))
    for r in rows:
        ref = next((x["seconds"] for x in rows if x["set"] == r["set"] and x["filter"] == r["filter"]
                    and x["N"] == r["N"] and x["method"] == "propagate"), None)
        ratio = f"{r['seconds'] / ref:5.2f}" if ref else "    -"
        line = (f"{r['set']:<17} {r['filter']:<13} {r['N']:>1} {r['method']:<9} | "
                f"{r['frames_psnr']:>9.2f} {r['frames_ssim']:>6.3f}")
        nan = float("nan")
        for _, s in inits:
            line += (f" | {r.get('test_psnr' + s, nan):>9.2f} {r.get('test_ssim' + s, nan):>6.3f}"
                     f" {r.get('fit_psnr' + s, nan):>6.2f}")
        print(line + f" | {r['seconds']:>6.1f} {ratio}")
    groups = {(r["set"], r["filter"], r["N"]) for r in rows}
    for key in ["test_psnr" + s for _, s in inits] or ["frames_psnr"]:
        for grp in sorted(groups):
            mine = [r for r in rows if (r["set"], r["filter"], r["N"]) == grp]
            reference = next((r[key] for r in mine if r["method"] == TRUTH), None)
            mine = [r for r in mine if r["method"] != TRUTH]
            best = max(mine, key=lambda r: r[key])
            best2d = max((r for r in mine if r["method"] in METHODS_2D), key=lambda r: r[key], default=None)
            best3d = max((r for r in mine if r["method"] in METHODS_3D), key=lambda r: r[key], default=None)
            if best2d and best3d:
                room = "" if reference is None else (f"; trained on the truth {reference:.2f} dB, "
                                                     f"{reference - best2d[key]:+.2f} dB over best 2D")
                print(f"{grp[0]} {grp[1]} N={grp[2]}: best {best['method']}; 3D − best 2D on {key}: "
                      f"{best3d[key] - best2d[key]:+.2f} dB{room}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96, help="long side of the views, px")
    parser.add_argument("--views", type=int, default=32, help="views of the generated sample")
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--grids", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--filters", nargs="+", default=[*FILTERS, SURFACE], choices=[*FILTERS, SURFACE])
    parser.add_argument("--methods", nargs="+", default=[*METHODS_3D, *METHODS_2D, TRUTH],
                        choices=[*METHODS_3D, *METHODS_2D, TRUTH])
    parser.add_argument("--orig-iterations", type=int, default=1500, help="original 3DGS steps")
    parser.add_argument("--iterations", type=int, default=600,
                        help="final 3DGS steps per method (0: score the frames only)")
    parser.add_argument("--final-init", nargs="+", default=list(INIT_SUFFIX), choices=list(INIT_SUFFIX),
                        help="where the final 3DGS starts: the SfM points, the original 3DGS, or both")
    parser.add_argument("--bake-steps", type=int, default=200)
    parser.add_argument("--fill", nargs="+", default=["map"], choices=FILLS,
                        help="how the 3D methods colour what no key sees (transfer.fill); more than "
                             "one: the 3D methods again with each other fill, as rows METHOD/FILL")
    parser.add_argument("--test-every", type=int, default=3, help="hold out every n-th non-key view")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--runs", nargs="*", default=[], help="run folders where preprocess+sfm ran")
    parser.add_argument("--real", nargs="*", default=None, choices=list(REAL),
                        help="also the real sets (preprocess + sfm run first, cached); no names = all")
    parser.add_argument("--real-root", default=str(REPO / ".data" / "runs-reimagine3d"))
    parser.add_argument("--no-sample", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke size: 64 px, 24 views, N=2, "
                        "one filter, 400/150 steps")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--pack-data", type=int, metavar="PX",
                        help="only write the real sets, long side PX, into .data/ for the device")
    args = parser.parse_args()
    if args.pack_data:
        pack_data(args.pack_data)
        return
    if args.tiny:
        args.size, args.views, args.points, args.grids = 64, 24, 1500, [2]
        args.filters, args.orig_iterations, args.iterations, args.bake_steps = ["cartoon-hue"], 400, 150, 100
    backend = "gsplat" if args.device.startswith("cuda") else "torch"
    torch.set_num_threads(max(1, torch.get_num_threads()))

    sets: list[SetData] = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_sample:
            sets.append(sample_set(args.size, args.views, args.points, Path(tmp)))
        folders = [Path(f) for f in args.runs]
        if args.real is not None:
            folders += prepare_real_runs(Path(args.real_root), args.real or list(REAL), 4 * args.size)
        sets += [run_set(f, args.size) for f in folders]
    rows: list[dict] = []
    for data in sets:
        t0 = time.perf_counter()
        masked = data.frames if data.masks is None else np.stack(
            [over_white(f, m) for f, m in zip(data.frames, data.masks, strict=True)])
        orig = fit(data, masked, list(range(len(data.cams))), args.orig_iterations, args.device, refine=True)
        params = {k: v.detach() for k, v in orig.params.items()}  # type: ignore[attr-defined]
        from gausynth_engine.transfer3d import render_geometry

        geo = render_geometry(params, data.cams, backend)
        masks = data.masks if data.masks is not None else (geo.alpha.cpu().numpy() > 0.5).astype(np.float32)
        own = renders(orig, list(range(len(data.cams))))
        fit_db = np.mean([masked_psnr(own[i], masked[i], masks[i]) for i in own])
        print(f"{data.name}: {len(data.cams)} views {data.cams.width}×{data.cams.height}, original 3DGS "
              f"{len(params['means'])} Gaussians, {fit_db:.1f} dB on its frames, "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
        for filt in args.filters:
            for grid in args.grids:
                if len(data.cams) >= 2 * grid * grid:
                    rows += evaluate(data, grid, filt, args, params, backend, masks)
                    if args.json:  # after every case, so a run cut short keeps what it measured
                        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(f"\n3D transfer vs 2D propagation: inside the object, vs g(true frame); final 3DGS "
          f"{args.iterations} steps, device {args.device}")
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
