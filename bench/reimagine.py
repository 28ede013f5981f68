"""Benchmark (GPU): one 1024² reimagination through our stage vs the bare diffusers pipeline.

The real SD-XL, canny ControlNet and IP-Adapter (ViT-bigG image encoder) architectures are built
from the configs in bench/configs/ with random weights (nothing is downloaded), saved in fp16,
then each contender loads them from disk in a fresh process and makes two candidates (seeds s
and s+1; the first call is cold, the second warm), 60 steps × strength 0.7 each:

  bare      diffusers' StableDiffusionXLControlNetImg2ImgPipeline + load_ip_adapter, called
            directly with the same settings (DPM++ 2M SDE Karras, fp16, guidance 4, ControlNet
            0.6 until 0.8, IP-Adapter 0.6 throughout).
  ours      the reimagine stage run by the engine (worker subprocess, journal, previews,
            PyraCanny, tiles), same settings.
  ours-low  the same stage in low-VRAM mode (model CPU offload, VAE tiling and slicing).

Prints time (the pipeline call, and the whole process: imports + loading + writing) and peak
VRAM (torch's max allocated) for each, and our overhead. Usage on the device:

    python bench/reimagine.py --root /tmp/bench --out "$OUT"
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests" / "stages")]

SETTINGS = dict(prompt="a colourful hand-painted ceramic figurine, studio photo, high detail",
                negative_prompt="blurry, lowres, deformed, watermark, text", steps=60, strength=0.7,
                guidance=4.0, canny_weight=0.6, canny_stop=0.8, ip_weight=0.6, seed=1234, size=1024,
                grid=3, tile=342)
# --tiny: the same code paths on tiny models on CPU (a dry run of this script without a GPU).
TINY = {"steps": 4, "strength": 0.5, "size": 64, "tile": 22}
DEVICE = "cuda"


def dtype():
    import torch

    return torch.float16 if DEVICE == "cuda" else torch.float32


def peak_gb() -> float:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if DEVICE == "cuda" else 0.0


def build_models(root: Path) -> dict[str, str]:
    """Saves random fp16 models with the real architectures under root/models (once)."""
    from random_models import save_diffusion

    marker = root / "models" / "done.json"
    if marker.exists():
        return json.loads(marker.read_text())
    started = time.perf_counter()
    info = save_diffusion(root / "models", DEVICE, tiny=DEVICE == "cpu")
    info["build_seconds"] = round(time.perf_counter() - started, 1)
    marker.write_text(json.dumps(info))
    return info


def make_sheet(root: Path) -> tuple[Path, object]:
    """Writes a run folder whose sheet stage is done: a 3×3 sheet of drawn shapes + its manifest."""
    import cv2
    import numpy as np

    from gausynth_engine import RunLayout
    from gausynth_engine._manifest import write_json_atomic
    from gausynth_engine._media import write_image

    outputs = root / "outputs"
    layout = RunLayout.for_run(outputs, "bench")
    g, t = SETTINGS["grid"], SETTINGS["tile"]
    sheet = np.full((g * t, g * t, 3), 240, np.uint8)
    for k in range(g * g):
        cy, cx = (k // g) * t + t // 2, (k % g) * t + t // 2
        box = cv2.boxPoints(((cx, cy), (t * 0.5, t * 0.3), 40.0 * k)).astype(np.int32)
        cv2.fillPoly(sheet, [box], (200, 60 + 20 * k, 40))
        cv2.circle(sheet, (cx, cy - t // 5), t // 8, (30, 90, 200), -1)
    write_image(layout.orig_sheets / "sheet.png", sheet)
    names = [f"{k * 4:04d}.png" for k in range(g * g)]
    write_json_atomic(layout.manifest("sheet"), {
        "stage": "sheet", "version": 1, "fingerprint": "bench-sheet", "params": {}, "inputs": {},
        "outputs": ["orig_sheets"], "record": {"key_frames": [k * 4 for k in range(g * g)],
                                              "key_frame_files": names, "grid": g, "tile_size": t}})
    return outputs, layout


def run_bare(root: Path, models: dict[str, str], low_vram: bool, sheet_path: Path | None = None,
             calls: int = 2, image_out: Path | None = None) -> dict:
    """The baseline, in this (fresh) process: diffusers called directly; gives its figures.

    The sheet is the bench's drawn one unless `sheet_path` names another (bench/e2e.py passes
    a run's own); `calls` pipeline calls, seeds s, s+1, … (the first is cold).
    """
    started = time.perf_counter()
    import torch
    from diffusers import (
        ControlNetModel,
        DPMSolverMultistepScheduler,
        StableDiffusionXLControlNetImg2ImgPipeline,
    )
    from PIL import Image

    from gausynth_engine._media import read_image, write_image
    from gausynth_engine.edges import control_image, pyra_canny
    from gausynth_engine.stages.reimagine import resize_square

    s = SETTINGS
    sheet_path = sheet_path or root / "outputs" / "bench" / "orig_sheets" / "sheet.png"
    sheet = resize_square(read_image(sheet_path)[..., :3], s["size"])
    edges = control_image(pyra_canny(sheet, 200, 220))
    controlnet = ControlNetModel.from_pretrained(models["controlnet"], dtype=dtype())
    pipe = StableDiffusionXLControlNetImg2ImgPipeline.from_pretrained(
        models["checkpoint"], controlnet=controlnet, dtype=dtype())
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(
        pipe.scheduler.config, algorithm_type="sde-dpmsolver++", use_karras_sigmas=True)
    pipe.load_ip_adapter(models["ip_adapter"], subfolder="sdxl_models",
                         weight_name="ip-adapter_sdxl.safetensors", image_encoder_folder="image_encoder")
    pipe.set_ip_adapter_scale(s["ip_weight"])
    pipe.set_progress_bar_config(disable=True)
    if low_vram:
        pipe.vae.enable_tiling()
        pipe.vae.enable_slicing()
    if low_vram and DEVICE == "cuda":
        pipe.enable_model_cpu_offload(device="cuda")
    else:
        pipe.to(DEVICE)
    loaded = time.perf_counter()
    times: list[float] = []
    for seed in range(s["seed"], s["seed"] + calls):  # a cold first call, then warm ones
        sync()
        call_start = time.perf_counter()
        out = pipe(prompt=s["prompt"], negative_prompt=s["negative_prompt"], image=Image.fromarray(sheet),
               control_image=Image.fromarray(edges), strength=s["strength"],
               num_inference_steps=s["steps"], guidance_scale=s["guidance"],
               controlnet_conditioning_scale=s["canny_weight"], control_guidance_end=s["canny_stop"],
               ip_adapter_image=Image.fromarray(sheet), output_type="np",
               generator=torch.Generator("cpu").manual_seed(seed)).images[0]
        sync()
        times.append(time.perf_counter() - call_start)
        if not times[1:]:
            write_image(image_out or root / f"bare{'-low' if low_vram else ''}.png",
                        (out.clip(0, 1) * 255 + 0.5).astype("uint8"))
    return {"call_s": round(times[0], 2), "warm_call_s": round(times[-1], 2), "load_s": round(loaded - started, 2),
            "total_s": round(time.perf_counter() - started, 2),
            "peak_vram_gb": peak_gb()}


def sync() -> None:
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()


def run_ours(root: Path, models: dict[str, str], low_vram: bool) -> dict:
    """Our stage through the engine (a worker subprocess); gives its figures from the manifest."""
    from gausynth_engine import Orchestrator, make_plan, parse_preset, read_manifest

    s = SETTINGS
    outputs, layout = make_sheet(root)
    sets = {"run.input": str(root / "none.mp4"), "run.outputs_root": str(outputs), "run.directory": "bench",
            "run.device": DEVICE, "reimagine.checkpoint": models["checkpoint"],
            "reimagine.controlnet_model": models["controlnet"], "reimagine.ip_adapter_model": models["ip_adapter"],
            "reimagine.prompt": s["prompt"], "reimagine.negative_prompt": s["negative_prompt"],
            "reimagine.steps": s["steps"], "reimagine.strength": s["strength"],
            "reimagine.guidance": s["guidance"], "reimagine.canny_weight": s["canny_weight"],
            "reimagine.canny_stop": s["canny_stop"], "reimagine.ip_adapter_weight": s["ip_weight"],
            "reimagine.ip_adapter_stop": 1.0, "reimagine.seed": s["seed"], "reimagine.sheet_size": s["size"],
            "reimagine.low_vram": low_vram, "reimagine.candidates": 2}
    overrides = [f"{k}={v!r}" if isinstance(v, str) else f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                 for k, v in sets.items()]
    preset = parse_preset("", "bench", overrides)
    started = time.perf_counter()
    status = Orchestrator(preset, layout).run(make_plan(preset, layout, only="reimagine", force=True))
    wall = time.perf_counter() - started
    manifest = read_manifest(layout, "reimagine")
    if status != "done" or manifest is None:
        log = layout.log_file("reimagine")
        raise SystemExit(f"our stage {status}; log:\n{log.read_text()[-4000:] if log.exists() else '?'}")
    suffix = "-low" if low_vram else ""
    os.replace(layout.reimagine_sheets / "sheet_1.png", root / f"ours{suffix}.png")
    first, warm = manifest["record"]["diffusion_seconds"]
    return {"call_s": first, "warm_call_s": warm, "total_s": round(wall, 2),
            "stage_s": manifest["seconds"], "peak_vram_gb": round((manifest["peak_vram"] or 0) / 2**30, 2)}


def image_diff(a: Path, b: Path) -> float:
    """Gives the mean absolute difference of two images, in 0–255 levels."""
    import numpy as np

    from gausynth_engine._media import read_image

    return round(float(np.abs(read_image(a).astype(float) - read_image(b).astype(float)).mean()), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("/tmp/gausynth-bench"))
    ap.add_argument("--out", type=Path, default=None, help="folder for results.json and the logs")
    ap.add_argument("--bare", choices=("normal", "low"), help=argparse.SUPPRESS)  # the child process
    ap.add_argument("--skip-low", action="store_true", help="leave out the low-VRAM runs")
    ap.add_argument("--tiny", action="store_true", help="dry run on tiny models on CPU")
    args = ap.parse_args()
    global DEVICE
    if args.tiny:
        DEVICE = "cpu"
        SETTINGS.update(TINY)
    root = args.root
    root.mkdir(parents=True, exist_ok=True)
    if args.bare:
        models = json.loads((root / "models" / "done.json").read_text())
        print("RESULT " + json.dumps(run_bare(root, models, args.bare == "low")), flush=True)
        return
    t0 = time.perf_counter()
    models = build_models(root)
    print(f"models ready in {models['build_seconds']} s", flush=True)
    make_sheet(root)
    results: dict[str, dict] = {}

    def bare(kind: str) -> dict:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--root", str(root), "--bare", kind]
                              + (["--tiny"] if args.tiny else []),
                              capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"bare run failed:\n{proc.stderr[-4000:]}")
        figures = json.loads(line[7:])
        figures["total_s"] = round(time.perf_counter() - started, 2)  # the whole process
        return figures

    plan = [("ours", lambda: run_ours(root, models, False)), ("bare", lambda: bare("normal"))]
    if not args.skip_low:
        plan += [("ours-low", lambda: run_ours(root, models, True)), ("bare-low", lambda: bare("low"))]
    for name, fn in plan:
        results[name] = fn()
        print(name, results[name], flush=True)
        if args.out:  # what was measured survives a run that is stopped later
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "results.json").write_text(json.dumps(results, indent=1))
    results["image_diff_ours_vs_bare"] = {"mean_abs": image_diff(root / "ours.png", root / "bare.png")}
    b, o = results["bare"], results["ours"]
    overhead_call = (o["call_s"] / b["call_s"] - 1) * 100
    overhead_warm = (o["warm_call_s"] / b["warm_call_s"] - 1) * 100
    overhead_total = (o["total_s"] / b["total_s"] - 1) * 100
    lines = [f"one {SETTINGS['size']}² reimagination, {SETTINGS['steps']} steps × {SETTINGS['strength']} "
             f"strength, SD-XL + ControlNet + IP-Adapter, random weights, fp16",
             "each process loads the models from disk and makes two candidates (seeds s, s+1)",
             f"{'run':<10} {'1st call s':>10} {'2nd call s':>10} {'process s':>10} {'peak VRAM GB':>13}"]
    for name in ("bare", "ours", "bare-low", "ours-low"):
        if name in results:
            r = results[name]
            lines.append(f"{name:<10} {r['call_s']:>10.2f} {r['warm_call_s']:>10.2f} {r['total_s']:>10.2f} "
                         f"{r['peak_vram_gb']:>13.2f}")
    lines.append(f"our overhead: {overhead_call:+.1f}% on the first call, {overhead_warm:+.1f}% on the second, "
                 f"{overhead_total:+.1f}% on the whole process (target ≤ 5%); low-VRAM peak target ≤ 12 GB")
    lines.append(f"ours vs bare output: mean |Δ| = {results['image_diff_ours_vs_bare']['mean_abs']} levels")
    lines.append(f"bench wall {time.perf_counter() - t0:.0f} s")
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
        (args.out / "table.txt").write_text(table + "\n")
        log = root / "outputs" / "bench" / ".gausynth" / "logs" / "reimagine.log"
        if log.exists():
            (args.out / "reimagine.log").write_text(log.read_text()[-200_000:])


if __name__ == "__main__":
    main()
