"""Benchmark: key frames restyled by a known filter, propagated, compared with the filter on every frame.

Sets: every ordered sequence in ../shared/data (plush-dog images, apple-video frames, kermit) and
the generated sample turn-around, each cut to squares at --size like the preprocess stage. For each
set and grid N the N² key frames (chosen like the sheet stage) are restyled with `restyle`, then
carried to every frame by ours (`propagate`: two keys, trust-weighted, cyclic) and by the
reference's scheme (`propagate_forward_only`: one key forward to the next, no blending, no wrap),
and by the no-flow control (each frame recoloured like its nearest key: what the fallback alone
gives; if ours does not beat it, the flow carries nothing). All are scored on the non-key frames against `restyle` applied to every frame (PSNR, SSIM), and
timed (frames/s, flow included).

    python bench/propagate.py [--size 512] [--frames 48] [--grids 2 3] [--flow dis]
                              [--filter grade|cartoon-hue|palette-hatch]

`grade` (the first round's stand-in) is mostly a colour grade, which the fallback rebuilds from
the frame itself; `cartoon-hue` and `palette-hatch` (bench/reimagine3d.py) change structure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from forward_only import propagate_forward_only  # bench/ is this script's folder

from gausynth_engine._media import probe_input, read_frames
from gausynth_engine._sample import SampleSpec, make_sample
from gausynth_engine.framing import cut_square, square_box
from gausynth_engine.propagation import propagate
from gausynth_engine.quality import psnr_of_mse, ssim
from gausynth_engine.stages.preprocess import sample_indices
from gausynth_engine.stages.sheet import key_frame_indices

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def restyle(image: np.ndarray) -> np.ndarray:
    """The known stand-in for the diffusion: a warm colour grade and a cartoon look (RGB uint8)."""
    import cv2

    graded = np.clip(image.astype(np.float32) @ np.array(
        [[1.10, 0.05, 0.00], [0.05, 0.95, 0.05], [0.00, 0.10, 0.75]], np.float32).T + (12, 4, 20), 0, 255)
    smooth = graded.astype(np.uint8)
    for _ in range(2):
        smooth = cv2.bilateralFilter(smooth, 9, 60, 7)
    edges = cv2.adaptiveThreshold(cv2.medianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), 5), 255,
                                  cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 4)
    return (smooth.astype(np.float32) * (0.35 + 0.65 * edges[..., None] / 255.0)).astype(np.uint8)


def no_flow(frames: list[np.ndarray], keys: dict[int, np.ndarray]) -> list[np.ndarray]:
    """The control: every frame recoloured like its nearest key (cyclic), no flow at all."""
    from gausynth_engine.propagation.colour import ColourTransfer

    count = len(frames)
    transfers = {k: ColourTransfer.learn(frames[k], keys[k]) for k in keys}
    out = []
    for t in range(count):
        k = min(keys, key=lambda k: min(abs(k - t), count - abs(k - t)))
        out.append(keys[t] if t in keys else np.clip(transfers[k].apply(frames[t]) + 0.5, 0, 255).astype(np.uint8))
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Gives the PSNR in dB of two uint8 images, uncapped (MSE floored at 1e-10)."""
    return psnr_of_mse(float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)), 255.0)


def score(out: list[np.ndarray], truth: list[np.ndarray], frames: list[int],
          metric: Callable[[np.ndarray, np.ndarray], float]) -> float:
    """Gives the mean of `metric` over the given frames."""
    return float(np.mean([metric(out[t], truth[t]) for t in frames]))


def squares(images: list[np.ndarray], size: int) -> list[np.ndarray]:
    return [cut_square(im[..., :3], square_box(im.shape[1], im.shape[0], "crop"), size) for im in images]


def load_sets(size: int, frames: int, workdir: Path, only: list[str] | None) -> dict[str, list[np.ndarray]]:
    """Gives set name → ordered square frames (at most `frames`, evenly sampled)."""
    sources: dict[str, Path] = {}
    if SHARED.is_dir():
        sources = {"plush-dog": SHARED / "plush-dog" / "images", "apple-video": SHARED / "apple-video" / "apple.mp4",
                   "kermit": SHARED / "kermit" / "images"}
    else:
        print(f"(no {SHARED}: only the generated sample)", file=sys.stderr)
    spec = SampleSpec(frames=96, width=640, height=480)
    sources["generated-sample"] = make_sample(workdir, spec)
    sets = {}
    for name, path in sources.items():
        if only and name not in only:
            continue
        info = probe_input(path)
        wanted = sample_indices(info.frame_count, min(frames, info.frame_count))
        sets[name] = squares([im for _, im in read_frames(info, wanted)], size)
    return sets


def timed(fn: Callable[..., object], frames: list[np.ndarray], keys: dict[int, np.ndarray],
          **options: object) -> tuple[list[np.ndarray], float]:
    start = time.perf_counter()
    out = list(fn(frames, keys, **options))
    return out, len(frames) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=48, help="frames per set (preprocess default 48)")
    parser.add_argument("--grids", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--flow", default="dis", choices=("dis", "farneback"))
    parser.add_argument("--sets", nargs="*", help="only these sets (default: all)")
    parser.add_argument("--filter", default="cartoon-hue", choices=("grade", "cartoon-hue", "palette-hatch"))
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from reimagine3d import FILTERS

    filt = restyle if args.filter == "grade" else FILTERS[args.filter]

    with tempfile.TemporaryDirectory() as tmp:
        sets = load_sets(args.size, args.frames, Path(tmp), args.sets)
    rows = []
    for name, frames in sets.items():
        truth = [filt(f) for f in frames]
        for grid in args.grids:
            if len(frames) < grid * grid:
                continue
            keys = {k: truth[k] for k in key_frame_indices(len(frames), grid)}
            shares: dict[int, float] = {}
            ours, ours_fps = timed(propagate, frames, keys, flow=args.flow, fallback=shares)
            base, base_fps = timed(propagate_forward_only, frames, keys, flow=args.flow)
            control = no_flow(frames, keys)
            inner = [t for t in range(len(frames)) if t not in keys]
            row = (name, grid, len(frames), score(ours, truth, inner, psnr), score(base, truth, inner, psnr),
                   score(ours, truth, inner, ssim), score(base, truth, inner, ssim), ours_fps, base_fps,
                   score(control, truth, inner, psnr), float(np.mean([shares[t] for t in inner])))
            rows.append(row)
            print(f"  {name} N={grid}: PSNR {row[3]:.2f} vs {row[4]:.2f} dB (no-flow {row[9]:.2f}), "
                  f"fallback {row[10]:.0%}, {ours_fps:.1f} frames/s", file=sys.stderr)

    print(f"\npropagate vs forward-only baseline and the no-flow control: {args.size}² frames, flow "
          f"{args.flow}, filter {args.filter}, non-key frames scored against the filter on every frame")
    head = (f"{'set':<17} {'N':>2} {'frames':>6} | {'PSNR ours':>9} {'base':>6} {'Δ dB':>5} {'no-flow':>7} "
            f"{'fallback':>8} | {'SSIM ours':>9} {'base':>6} {'ratio':>5} | {'fps ours':>8} {'base':>6}")
    print(head)
    print("-" * len(head))
    for name, grid, count, p_o, p_b, s_o, s_b, f_o, f_b, p_c, fall in rows:
        print(f"{name:<17} {grid:>2} {count:>6} | {p_o:>9.2f} {p_b:>6.2f} {p_o - p_b:>+5.2f} {p_c:>7.2f} "
              f"{fall:>8.0%} | {s_o:>9.4f} {s_b:>6.4f} {s_o / s_b:>5.3f} | {f_o:>8.1f} {f_b:>6.1f}")
    beaten = all(r[3] > r[4] and r[5] > r[6] for r in rows)
    print(f"ours beats the baseline on every set (PSNR and SSIM): {'yes' if beaten else 'NO'}")
    control = all(r[3] > r[9] + 0.5 for r in rows)
    print(f"ours beats the no-flow control by > 0.5 dB on every set: {'yes' if control else 'NO'}")


if __name__ == "__main__":
    main()
