"""Benchmark (GPU): synchronised diffusion over Gaussians vs the bare diffusers pipeline, same batch.

For each family — SD-XL + depth ControlNet at 1024², SD 1.5 + depth ControlNet at 512² — the
real architectures are built with random weights in GPU memory (SD-XL from bench/configs/, SD
1.5 from diffusers' defaults with SD 1.5's sizes: tests/stages/tiny_sd15.py), fp16, and V views
of a synthetic object (Gaussians at the generated sample's surface, its orbit cameras) are
denoised for the same steps, guidance and depth maps by:

  bare         diffusers' Stable Diffusion (XL) ControlNet pipeline called on the V views as
               one batch (DDIM, output decoded), no synchronisation.
  ours-pixel   our loop (`synchronise.sampler.sample`): every step decodes the V x0 estimates,
               fits the Gaussians' colours (gsplat), renders and encodes them back.
  ours-latent  the same, synchronised in latent space (no VAE round trip per step).
  ours-alone   our loop with synchronisation off (the cost of the loop itself).

Each contender runs once as a warm-up (1 step), then timed. Prints seconds per view per step,
peak VRAM (torch's max allocated, models included) and the ratios ours / bare, and writes
results.json. Usage on the device (about 3 minutes including gsplat's first compile):

    python bench/sync.py --out "$OUT"
    python bench/sync.py --tiny          # a dry run of the same code on tiny models on the CPU
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests"), str(HERE.parent / "tests" / "stages")]

PROMPT = "a colourful hand-painted ceramic figurine, studio photo, high detail"
NEGATIVE = "blurry, lowres, deformed, watermark, text"
FULL = {"views": 6, "steps": 6, "guidance": 7.5, "gaussians": 100_000, "sizes": {"sdxl": 1024, "sd15": 512}}
TINY = {"views": 3, "steps": 2, "guidance": 7.5, "gaussians": 400, "sizes": {"sdxl": 64, "sd15": 64}}


def clean(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if not k.startswith("_") and k != "architectures"}


def build_sdxl(tiny: bool, dtype: Any, device: str) -> Any:
    """Gives an SD-XL + ControlNet text-to-image pipeline with random weights (the real
    architectures from bench/configs/, or the tests' tiny ones)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        DDIMScheduler,
        StableDiffusionXLControlNetPipeline,
        UNet2DConditionModel,
    )
    from tiny_models import TINY as TINY_CONFIGS
    from tiny_models import byte_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    configs = TINY_CONFIGS if tiny else {p.stem: json.loads(p.read_text()) for p in (HERE / "configs").glob("*.json")}
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(clean(configs["unet"]))
        cn_cfg = clean(configs["controlnet"])
        controlnet = (ControlNetModel.from_config(cn_cfg) if "block_out_channels" in cn_cfg
                      else ControlNetModel.from_unet(unet, **cn_cfg))
        vae = AutoencoderKL.from_config(clean(configs["vae"]))
        te1 = CLIPTextModel(CLIPTextConfig(**clean(configs["text_encoder"])))
        te2 = CLIPTextModelWithProjection(CLIPTextConfig(**clean(configs["text_encoder_2"])))
    tok = byte_tokenizer()
    pipe = StableDiffusionXLControlNetPipeline(
        vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tok, tokenizer_2=tok, unet=unet,
        controlnet=controlnet, scheduler=DDIMScheduler.from_config(clean(configs["scheduler"])))
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device, dtype)


def build_sd15(tiny: bool, dtype: Any, device: str) -> Any:
    """Gives an SD 1.5 + ControlNet pipeline with random weights (SD 1.5's real architecture)."""
    from diffusers import StableDiffusionControlNetPipeline
    from tiny_sd15 import TINY_SD15, sd15_configs
    from tiny_sd15 import build_sd15 as build

    pipe, controlnet, _ = build(TINY_SD15 if tiny else sd15_configs(), device=device)
    pipe = StableDiffusionControlNetPipeline(**{k: v for k, v in pipe.components.items()
                                                if k != "image_encoder"}, controlnet=controlnet,
                                             requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device, dtype)


def make_world(side: int, views: int, gaussians: int, device: str) -> tuple[Any, Any, Any, Any]:
    """Gives (geometry, V cameras at side², renders of the original [V, S, S, 3], depth maps
    [V, 3, S, S]) of Gaussians at the generated sample's surface, seen from its orbit."""
    import numpy as np
    import torch
    from synthetic_scene import surface_points

    from gausynth_engine._sample import SampleSpec, orbit_cameras
    from gausynth_engine.splatting.model import init_params
    from gausynth_engine.synchronise.cameras import select_views
    from gausynth_engine.synchronise.gaussians import (
        Cameras,
        Geometry,
        backend_for,
        disparity_map,
        render_depth,
        render_features,
    )

    K, poses = orbit_cameras(SampleSpec(frames=24, width=side, height=side))
    pts, cols = surface_points(K, poses, side, side, gaussians)
    raw = {k: v.detach().cpu().numpy() for k, v in init_params(pts, cols, 0, 1.0, init_opacity=0.9).items()}
    geom = Geometry.from_ply(raw, device)
    ids = select_views(poses, views)
    cams = Cameras(torch.tensor(poses[ids], dtype=torch.float32, device=device),
                   torch.tensor(np.repeat(K[None], len(ids), 0), dtype=torch.float32, device=device), side, side)
    backend = backend_for(device)
    with torch.no_grad():
        rgb, _ = render_features(geom, geom.rgb, cams, torch.ones(3, device=device), backend)
        depth, alpha = render_depth(geom, cams, backend)
    control = disparity_map(depth, alpha)[:, None].expand(-1, 3, -1, -1).contiguous()
    return geom, cams, rgb, control


def now() -> float:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def peak_reset() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gb() -> float:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else 0.0


def run_bare(pipe: Any, family: str, control: Any, steps: int, guidance: float) -> dict[str, float]:
    import torch
    from diffusers import DDIMScheduler
    from PIL import Image

    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False, set_alpha_to_one=True)
    images = [Image.fromarray((c.permute(1, 2, 0).float().cpu().numpy() * 255).astype("uint8")) for c in control]
    side = images[0].size[0]
    V = len(images)
    extra = {"height": side, "width": side} if family == "sdxl" else {}

    def call(n: int) -> None:
        pipe(prompt=[PROMPT] * V, negative_prompt=[NEGATIVE] * V, image=images, num_inference_steps=n,
             guidance_scale=guidance, output_type="np", generator=torch.Generator("cpu").manual_seed(0), **extra)

    call(1)
    peak_reset()
    t0 = now()
    call(steps)
    seconds = now() - t0
    return {"seconds": round(seconds, 3), "s_per_view_step": seconds / (V * steps), "peak_gb": peak_gb()}


def run_ours(pipe: Any, family: str, world: tuple[Any, ...], steps: int, guidance: float, space: str,
             synchronise: bool, device: str) -> dict[str, float]:

    from gausynth_engine.synchronise.diffusers_denoiser import UNetDenoiser, ddim_scheduler
    from gausynth_engine.synchronise.sampler import SyncSettings, VaeCodec, sample

    geom, cams, rgb, control = world
    denoiser = UNetDenoiser(pipe, family, PROMPT, NEGATIVE, guidance, cams.width, device, control=control)
    codec = VaeCodec(pipe.vae, device=device, upcast=family == "sdxl")
    dtype = pipe.unet.dtype

    def call(n: int) -> Any:
        settings = SyncSettings(steps=n, seed=0, synchronise=synchronise, space=space, fit_steps=20,
                                final_fit_steps=100)
        return sample(denoiser, codec, ddim_scheduler(pipe), geom, cams, rgb, settings, device=device, dtype=dtype)

    call(1)
    peak_reset()
    before = denoiser.evaluations
    t0 = now()
    result = call(steps)
    seconds = now() - t0
    V = len(cams)
    assert denoiser.evaluations - before == V * steps * (2 if guidance > 1 else 1)
    return {"seconds": round(seconds, 3), "s_per_view_step": seconds / (V * steps), "peak_gb": peak_gb(),
            "denoise_seconds": round(result.denoise_seconds, 3), "sync_seconds": round(result.sync_seconds, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="folder for results.json")
    ap.add_argument("--tiny", action="store_true", help="dry run on tiny models on the CPU")
    ap.add_argument("--families", default="sdxl,sd15")
    args = ap.parse_args()
    import torch

    device = "cpu" if args.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench/sync.py needs a CUDA GPU (or --tiny for a CPU dry run)")
    s = TINY if args.tiny else FULL
    dtype = torch.float32 if args.tiny else torch.float16
    results: dict[str, Any] = {"settings": {k: v for k, v in s.items()}, "families": {}}
    started = time.perf_counter()
    for family in args.families.split(","):
        side = s["sizes"][family]
        t0 = time.perf_counter()
        pipe = (build_sdxl if family == "sdxl" else build_sd15)(args.tiny, dtype, device)
        world = make_world(side, s["views"], s["gaussians"], device)
        world = (*world[:3], world[3].to(dtype))
        built = round(time.perf_counter() - t0, 1)
        rows = {"bare": run_bare(pipe, family, world[3], s["steps"], s["guidance"])}
        for name, space, sync in (("ours-pixel", "pixel", True), ("ours-latent", "latent", True),
                                  ("ours-alone", "pixel", False)):
            rows[name] = run_ours(pipe, family, world, s["steps"], s["guidance"], space, sync, device)
        bare = rows["bare"]
        for row in rows.values():
            row["time_ratio"] = round(row["s_per_view_step"] / bare["s_per_view_step"], 2)
            row["vram_ratio"] = round(row["peak_gb"] / bare["peak_gb"], 2) if bare["peak_gb"] else None
            row["s_per_view_step"] = round(row["s_per_view_step"], 4)
        results["families"][family] = {"side": side, "build_seconds": built, "rows": rows}
        print(f"\n{family} at {side}², {s['views']} views × {s['steps']} steps, guidance {s['guidance']}, "
              f"{s['gaussians']:,} Gaussians (models built in {built} s)")
        print(f"  {'contender':<12} {'s/view/step':>12} {'× bare':>7} {'peak GB':>8} {'× bare':>7} "
              f"{'denoise s':>10} {'sync s':>7}")
        for name, row in rows.items():
            print(f"  {name:<12} {row['s_per_view_step']:>12.4f} {row['time_ratio']:>7.2f} {row['peak_gb']:>8.2f} "
                  f"{row['vram_ratio'] if row['vram_ratio'] is not None else '-':>7} "
                  f"{row.get('denoise_seconds', '-'):>10} {row.get('sync_seconds', '-'):>7}")
        del pipe, world
        if device == "cuda":
            torch.cuda.empty_cache()
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    print(f"\ntotal {results['total_seconds']} s")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "sync-results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
