"""Swin2SR upscaling: ours (exact padding crop, batched, tiled) vs the reference (pad → resize away).

    python bench/upscale.py [--device cuda] [--frames 16] [--size 512] [--mask-model PATH.onnx]

1. Alignment: a Swin2SR whose weights make it exactly nearest-neighbour ×4, so the true output is
   known. Ours crops the processor's padding; the reference resized the padded output (2080 →
   2048). Printed: max error and the content shift at the far edge, in output pixels.
2. Speed and memory: the real-world ×4 architecture (embed 180, 6 × 6 blocks, nearest+conv) with
   random weights (no network here), `--frames` frames of `--size`²: the reference's batch of 2
   whole images + resize vs ours whole-image batched and ours tiled. Tiled vs untiled difference.
3. Background removal: whether onnxruntime runs a tiny mask model on CUDA, through rembg's
   custom-model session when rembg is installed, else through a bare ORT session. The tiny
   model is exported here unless `--mask-model` names one (the device may lack `onnx`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from random_models import REALWORLD_X4  # noqa: E402  (the shared builders, beside this file)

from tests.stages.tiny_models import save_tiny_swin2sr  # noqa: E402


def frames(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    import cv2

    rng = np.random.default_rng(seed)
    return [cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3)).astype(np.uint8), (0, 0), 3)
            for _ in range(n)]


def reference_upscale(up, images: list[np.ndarray], batch: int = 2) -> list[np.ndarray]:
    """The reference: processor (pads), model, then the padded output resized to size × scale."""
    import torch
    from PIL import Image

    out = []
    for b in range(0, len(images), batch):
        chunk = images[b : b + batch]
        pixels = up.processor(images=chunk, return_tensors="pt",
                              input_data_format="channels_last").pixel_values.to(up.device)
        with torch.inference_mode():
            rec = up.model(pixel_values=pixels).reconstruction.clamp(0, 1).float().cpu().numpy()
        side = chunk[0].shape[0] * up.scale
        for r in rec:
            im = (np.moveaxis(r, 0, -1) * 255.0).round().astype(np.uint8)
            out.append(np.asarray(Image.fromarray(im).resize((side, side), Image.BICUBIC)))
    return out


def shift_at_edge(out: np.ndarray, expected: np.ndarray) -> float:
    """Gives how far (px) the content in the last 64 columns/rows sits from where it should be."""
    import cv2

    a = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)[-64:, -64:].astype(np.float64)
    b = cv2.cvtColor(expected, cv2.COLOR_RGB2GRAY)[-64:, -64:].astype(np.float64)
    (dx, dy), _ = cv2.phaseCorrelate(b, a)
    return float(np.hypot(dx, dy))


def timed(device: str, fn):
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    result = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return result, time.perf_counter() - t, peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--mask-model", default="")
    parser.add_argument("--work", default="/tmp/upscale-bench")
    args = parser.parse_args()
    import torch
    from transformers import Swin2SRConfig, Swin2SRForImageSuperResolution

    from gausynth_engine import superres

    if args.device == "cpu":
        torch.set_num_threads(1)  # a busy 2-core box: one thread beats two contended ones
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str]] = []

    # 1. alignment
    up = superres.load(str(save_tiny_swin2sr(work / "nearest", 4, nearest=True)), 4, args.device)
    image = frames(1, args.size, 1)[0]
    expected = np.repeat(np.repeat(image, 4, 0), 4, 1)
    (ours,) = superres.upscale(up, [image])
    (ref,) = reference_upscale(up, [image])
    rows.append(("align: ours max |err| / edge shift px",
                 f"{np.abs(ours.astype(int) - expected).max()} / {shift_at_edge(ours, expected):.2f}"))
    rows.append(("align: reference max |err| / edge shift px",
                 f"{np.abs(ref.astype(int) - expected).max()} / {shift_at_edge(ref, expected):.2f}"))

    # 2. speed on the real architecture (random weights)
    torch.manual_seed(0)
    real = work / "realworld_x4_random"
    Swin2SRForImageSuperResolution(Swin2SRConfig(**REALWORLD_X4)).save_pretrained(real)
    up = superres.load(str(real), 4, args.device)
    imgs = frames(args.frames, args.size)
    superres.upscale(up, imgs[:1]).__next__()  # warm-up (kernels, allocator)
    _, t_ref, m_ref = timed(args.device, lambda: reference_upscale(up, imgs, batch=2))
    whole, t_whole, m_whole = timed(args.device, lambda: list(superres.upscale(
        up, imgs, tile=args.size, batch=4)))
    tile = args.size // 2
    overlap = min(32, tile // 4)
    tiled, t_tiled, m_tiled = timed(args.device, lambda: list(superres.upscale(
        up, imgs, tile=tile, overlap=overlap, batch=16)))
    n = args.frames
    rows.append((f"speed: reference batch 2 + resize ({n}×{args.size}²)",
                 f"{t_ref / n * 1000:.0f} ms/frame, peak {m_ref:.1f} GiB"))
    rows.append(("speed: ours whole image, batch 4",
                 f"{t_whole / n * 1000:.0f} ms/frame, peak {m_whole:.1f} GiB"))
    rows.append((f"speed: ours tiles {tile} + overlap {overlap}, batch 16",
                 f"{t_tiled / n * 1000:.0f} ms/frame, peak {m_tiled:.1f} GiB"))
    diffs = [np.abs(a.astype(int) - b.astype(int)) for a, b in zip(whole, tiled, strict=True)]
    rows.append(("tiled vs whole (random real arch): mean / max |diff|",
                 f"{np.mean([d.mean() for d in diffs]):.3f} / {max(d.max() for d in diffs)}"))

    # 3. background removal on CUDA
    import onnxruntime as ort

    from gausynth_engine.cutout import providers_for

    rows.append(("onnxruntime providers available", ", ".join(ort.get_available_providers())))
    if not args.mask_model:
        try:  # a tiny mask model, as the tests make it (needs the onnx package)
            class Dark(torch.nn.Module):
                def forward(self, x: torch.Tensor) -> torch.Tensor:
                    return torch.sigmoid(20.0 * (2.0 - x.mean(dim=1, keepdim=True)))

            args.mask_model = str(work / "tiny-dark.onnx")
            torch.onnx.export(Dark(), (torch.zeros(1, 3, 320, 320),), args.mask_model, dynamo=False)
        except Exception as e:  # noqa: BLE001 - the bench goes on without this part
            rows.append(("tiny mask model", f"not exported ({type(e).__name__}); pass --mask-model"))
            args.mask_model = ""
    if args.mask_model:
        try:
            from gausynth_engine.cutout import MaskSession

            session = MaskSession(args.mask_model, args.device, print)
            t = time.perf_counter()
            for im in frames(8, args.size):
                session.mask(im)
            rows.append(("rembg custom session providers / ms per mask",
                         f"{', '.join(session.providers)} / {(time.perf_counter() - t) / 8 * 1000:.0f}"))
        except ImportError as e:
            sess = ort.InferenceSession(args.mask_model, providers=providers_for(args.device))
            x = np.zeros((1, 3, 320, 320), np.float32)
            sess.run(None, {sess.get_inputs()[0].name: x})
            rows.append((f"bare ORT session (rembg missing: {e.name})", ", ".join(sess.get_providers())))

    width = max(len(k) for k, _ in rows)
    print("\n" + "\n".join(f"{k:<{width}}  {v}" for k, v in rows))


if __name__ == "__main__":
    main()
