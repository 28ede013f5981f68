"""reimagine: SD-XL img2img of the model sheet (ControlNet canny + IP-Adapter), in-process."""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._params import param
from .._stage import Stage, StageContext, StageError
from ..resizing import resize_square
from ._common import off_without_reimagine

if TYPE_CHECKING:
    import numpy as np

    from .._layout import RunLayout
    from .._preset import Preset
    from ..diffusion import PipelineSources
    from ..model_refs import ModelRef

CHECKPOINTS = {
    "juggernaut-xl-v9": "RunDiffusion/Juggernaut-XL-v9",
    "realistic-stock-photo-v2": "stablediffusionapi/realistic-stock-photo-v2",
}

# Prompt templates: (positive with {prompt}, negative put before the preset's own negative).
STYLES = {
    "none": ("{prompt}", ""),
    "sharp-cinematic": (
        "cinematic still {prompt} . emotional, harmonious, vignette, 4k epic detailed, shot on kodak, "
        "35mm photo, sharp focus, high budget, cinemascope, moody, epic, gorgeous, film grain, grainy",
        "anime, cartoon, graphic, (blur, blurry, bokeh), text, painting, crayon, graphite, abstract, "
        "glitch, deformed, mutated, ugly, disfigured"),
}
PREVIEW_EVERY = 5  # steps between previews of the current estimate
PREVIEW_NAME = "reimagine_preview.png"
EDGES_NAME = "edges.png"
SIZE_MULTIPLE = 64  # SD-XL's VAE (×8) and UNet (×4 more) need sides divisible by 32; 64 is safe


@dataclass(frozen=True)
class Params:
    prompt: str = param("a colourful hand-painted ceramic figurine, studio photo, high detail",
                        "What the object should become.")
    negative_prompt: str = param("blurry, lowres, deformed, watermark, text",
                                 "What the result should avoid.")
    style: str = param("none", "Prompt template wrapped around the prompt.",
                       choices=tuple(STYLES))
    strength: float = param(0.7, "Denoising strength: how far the result may leave the original sheet.",
                            min=0.3, max=1.0)
    seed: int = param(-1, "Random seed; -1 = a new random seed (the one used is recorded).",
                      min=-1, max=2**32 - 1)
    steps: int = param(60, "Diffusion steps (img2img runs steps × strength of them).", min=1, max=200)
    guidance: float = param(4.0, "Classifier-free guidance scale.", min=0.0, max=30.0)
    checkpoint: str = param("juggernaut-xl-v9",
                            "SD-XL checkpoint: a named choice, a Hugging Face id, a local folder or a "
                            "single .safetensors file.",
                            choices=tuple(CHECKPOINTS), open_choices=True)
    controlnet: bool = param(True, "Guide the structure with a canny-edge ControlNet.")
    controlnet_model: str = param("diffusers/controlnet-canny-sdxl-1.0",
                                  "Canny ControlNet: a Hugging Face id or a local folder.")
    canny_weight: float = param(0.6, "ControlNet conditioning scale; 0 switches it off.", min=0.0, max=2.0)
    canny_stop: float = param(0.8, "Fraction of the steps after which the edges stop guiding.",
                              min=0.0, max=1.0)
    canny_low: int = param(200, "Canny low threshold.", min=1, max=255)
    canny_high: int = param(220, "Canny high threshold.", min=1, max=255)
    ip_adapter_model: str = param("h94/IP-Adapter",
                                  "IP-Adapter repository (sdxl_models) or a local folder.")
    ip_adapter_subfolder: str = param("sdxl_models", "Folder of the IP-Adapter weights inside its repository.")
    ip_adapter_weight_name: str = param("ip-adapter_sdxl.safetensors", "IP-Adapter weights file.")
    image_encoder: str = param("image_encoder",
                               "CLIP image encoder folder: a name inside the IP-Adapter's folder, or a "
                               "path with '/' from the repository root (e.g. models/image_encoder).")
    ip_adapter_weight: float = param(0.6, "IP-Adapter scale; 0 switches it off.", min=0.0, max=2.0)
    ip_adapter_stop: float = param(0.8, "Fraction of the steps after which the image prompt is dropped.",
                                   min=0.0, max=1.0)
    sheet_size: int = param(1024, "Side of the sheet as the diffusion model sees it, in pixels "
                            "(rounded down to a multiple of 64).", min=64, max=2048)
    candidates: int = param(1, "How many reimagined sheets to make (each with its own seed).",
                            min=1, max=8)
    low_vram: bool = param(False, "Model CPU offload and VAE tiling, to fit a 1024² sheet in 12 GB.")


# --- pure helpers ---------------------------------------------------------------------------------
def styled_prompts(p: Params) -> tuple[str, str]:
    """Gives (prompt, negative prompt) with the style template applied."""
    template, negative = STYLES[p.style]
    joined = ", ".join(x for x in (negative, p.negative_prompt) if x.strip())
    return template.replace("{prompt}", p.prompt), joined


def diffusion_size(p: Params) -> int:
    """Gives the side the sheet is diffused at: sheet_size rounded down to a multiple of 64."""
    return max(SIZE_MULTIPLE, p.sheet_size // SIZE_MULTIPLE * SIZE_MULTIPLE)


def candidate_seeds(seed: int, count: int) -> list[int]:
    """Gives one seed per candidate: seed, seed+1, … (a fresh random start for seed -1)."""
    base = secrets.randbelow(2**32) if seed < 0 else seed
    return [(base + k) % 2**32 for k in range(count)]


def controlnet_on(p: Params) -> bool:
    """Gives whether the ControlNet guides at all (a weight or stop-at of 0 leaves it unloaded)."""
    return p.controlnet and p.canny_weight > 0 and p.canny_stop > 0


def ip_adapter_on(p: Params) -> bool:
    """Gives whether the IP-Adapter guides at all (a weight or stop-at of 0 leaves it unloaded)."""
    return p.ip_adapter_weight > 0 and p.ip_adapter_stop > 0


def sheet_edges(sheet: np.ndarray, p: Params) -> np.ndarray:
    """Gives the PyraCanny map [S, S] of a sheet at the diffusion size, for the preset's thresholds."""
    from ..edges import pyra_canny

    return pyra_canny(resize_square(sheet, diffusion_size(p)), p.canny_low, p.canny_high)


# --- models -----------------------------------------------------------------------------------
def pipeline_sources(preset: Preset, log: Callable[[str], None] | None = None,
                     progress: Callable[[float, float, str], None] | None = None) -> PipelineSources:
    """Gives the local paths of the models the preset's reimagination loads.

    Models a zero weight (or stop-at) switches off are not needed, not even present. Missing
    ones are fetched with progress when online, else StageError says how to get them.
    """
    from .. import model_refs
    from ..diffusion import IpAdapterSource, PipelineSources

    p: Params = preset.reimagine
    paths = {ref.key: model_refs.require(ref, log, progress) for ref in reimagine_models(preset)}
    ip = None
    if "ip_adapter" in paths:
        ip = IpAdapterSource(paths["ip_adapter"], p.ip_adapter_subfolder, p.ip_adapter_weight_name,
                             p.image_encoder)
    return PipelineSources(checkpoint=paths["checkpoint"], single_file_config=paths.get("single_file_config"),
                           controlnet=paths.get("controlnet"), ip_adapter=ip)


# --- the diffusion ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Reimagined:
    """What one reimagination made."""

    edges: np.ndarray | None  # uint8 [S, S], None when the ControlNet is off
    seeds: list[int]
    sheets: list[np.ndarray]  # uint8 [S, S, 3], one per seed
    steps: int  # denoising steps per candidate
    seconds: list[float]  # time inside each pipeline call
    load_seconds: float = 0.0  # imports + loading the models + placing them on the device


def reimagine(sheet: np.ndarray, p: Params, device: str, sources: PipelineSources, seeds: list[int], *,
              on_step: Callable[[int, int], None] | None = None,
              on_preview: Callable[[int, np.ndarray], None] | None = None) -> Reimagined:
    """Gives one reimagined sheet per seed for an RGB uint8 sheet [H, W, 3].

    `on_step(done, total)` counts steps over all candidates; `on_preview(candidate, rgb)` gets a
    small picture of the current estimate every few steps. The models are released on return.
    """
    import dataclasses

    from ..diffusion import loaded_pipeline

    started = time.perf_counter()
    with loaded_pipeline(sources, device, p.low_vram) as pipe:
        loaded = time.perf_counter() - started
        result = generate(pipe, sheet, p, sources, seeds, on_step=on_step, on_preview=on_preview)
    return dataclasses.replace(result, load_seconds=loaded)


def generate(pipe: Any, sheet: np.ndarray, p: Params, sources: PipelineSources, seeds: list[int], *,
             on_step: Callable[[int, int], None] | None = None,
             on_preview: Callable[[int, np.ndarray], None] | None = None) -> Reimagined:
    """Gives one reimagined sheet per seed with a pipeline built from `sources` (see `reimagine`)."""
    import numpy as np
    import torch
    from PIL import Image

    from ..diffusion import StepHooks, img2img_steps
    from ..edges import control_image

    size = diffusion_size(p)
    image = Image.fromarray(resize_square(sheet[..., :3], size))
    prompt, negative = styled_prompts(p)
    call: dict[str, Any] = dict(prompt=prompt, negative_prompt=negative or None, image=image,
                                strength=p.strength, num_inference_steps=p.steps,
                                guidance_scale=p.guidance, output_type="np")
    edges = None
    if sources.controlnet is not None:
        edges = sheet_edges(sheet[..., :3], p)
        call.update(control_image=Image.fromarray(control_image(edges)),
                    controlnet_conditioning_scale=p.canny_weight, control_guidance_end=p.canny_stop)
    if sources.ip_adapter is not None:
        call["ip_adapter_image"] = image
    per = img2img_steps(p.steps, p.strength)
    sheets: list[np.ndarray] = []
    seconds: list[float] = []
    for k, seed in enumerate(seeds):
        hooks = StepHooks(
            per, ip_weight=p.ip_adapter_weight if sources.ip_adapter else 0.0, ip_stop=p.ip_adapter_stop,
            on_step=(lambda done, total, k=k: on_step(k * total + done, len(seeds) * total))
            if on_step else None,
            on_preview=(lambda rgb, k=k: on_preview(k + 1, rgb)) if on_preview else None,
            preview_every=PREVIEW_EVERY)
        hooks.start(pipe)
        started = time.perf_counter()
        out = pipe(**call, generator=torch.Generator("cpu").manual_seed(seed),
                   callback_on_step_end=hooks).images[0]
        seconds.append(time.perf_counter() - started)
        sheets.append((np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    return Reimagined(edges, list(seeds), sheets, per, seconds)


# --- the stage --------------------------------------------------------------------------------
def sheet_record(ctx: StageContext) -> dict[str, Any]:
    """Gives what the sheet stage recorded (grid, tile_size, key_frame_files), or StageError."""
    sheet = ctx.upstream("sheet")
    if not sheet.ran:
        raise StageError(f"{ctx.layout.manifest('sheet')}: the sheet stage has not finished in this run")
    return sheet.record


def cut_tiles(sheet: np.ndarray, grid: int, tile_size: int) -> list[np.ndarray]:
    """Gives the grid² tiles of a reimagined sheet, each tile_size × tile_size, row-major."""
    from .sheet import untile

    return untile(resize_square(sheet, grid * tile_size), grid)


def run(ctx: StageContext) -> None:
    import numpy as np

    from .._manifest import read_choices
    from .._media import read_image, write_image

    p: Params = ctx.params
    rec = sheet_record(ctx)
    sheet = read_image(ctx.layout.orig_sheets / "sheet.png")[..., :3]
    sources = pipeline_sources(ctx.preset, ctx.log,
                               lambda done, total, unit: ctx.progress(done, total, f"download {unit}"))
    seeds = candidate_seeds(p.seed, p.candidates)
    ctx.log(f"reimagining a {diffusion_size(p)}² sheet on {ctx.device}: seeds {seeds}, "
            f"ControlNet {'on' if sources.controlnet else 'off'}, "
            f"IP-Adapter {'on' if sources.ip_adapter else 'off'}, low-VRAM {'on' if p.low_vram else 'off'}")
    ctx.layout.artifacts.mkdir(parents=True, exist_ok=True)
    preview = ctx.layout.artifacts / PREVIEW_NAME

    def show(candidate: int, rgb: np.ndarray) -> None:
        tmp = preview.with_name(f".{preview.stem}.tmp.png")
        write_image(tmp, rgb)
        os.replace(tmp, preview)
        ctx.artifact(preview, "image")

    result = reimagine(sheet, p, ctx.device, sources, seeds,
                       on_step=lambda done, total: ctx.progress(done, total, "steps"), on_preview=show)
    out = ctx.out.reimagine_sheets
    if result.edges is not None:
        write_image(out / EDGES_NAME, np.repeat(result.edges[..., None], 3, axis=2))
        ctx.artifact(out / EDGES_NAME, "image")
    chosen = read_choices(ctx.layout).get("reimagine", 1)
    if not 1 <= chosen <= len(seeds):
        ctx.log(f"the chosen candidate {chosen} is beyond reimagine.candidates = {len(seeds)}; "
                f"candidate 1 feeds on", "warning")
        chosen = 1
    names = rec["key_frame_files"]
    for k, image in enumerate(result.sheets, start=1):
        write_image(out / f"sheet_{k}.png", image)
        for name, tile in zip(names, cut_tiles(image, rec["grid"], rec["tile_size"]), strict=True):
            write_image(out / "candidates" / str(k) / name, tile)
            if k == chosen:
                write_image(ctx.out.key_frames / name, tile)
    ctx.artifact(out / f"sheet_{chosen}.png", "image")
    ctx.metric("diffusion_seconds", sum(result.seconds))
    ctx.record(seed=seeds[0], seeds=seeds, candidates=len(seeds), chosen=chosen,
               sheet_files=[f"sheet_{k}.png" for k in range(1, len(seeds) + 1)],
               key_frames=rec["key_frames"], key_frame_files=names, tile_size=rec["tile_size"],
               grid=rec["grid"], diffusion_size=diffusion_size(p), steps_per_candidate=result.steps,
               diffusion_seconds=[round(x, 3) for x in result.seconds],
               load_seconds=round(result.load_seconds, 3),
               controlnet=sources.controlnet is not None, ip_adapter=sources.ip_adapter is not None)


# --- commands the CLI wires -------------------------------------------------------------------
def choose_candidate(layout: RunLayout, k: int) -> Path:
    """Makes candidate k feed the next stages: rewrites key_frames from it and records the choice.

    Gives the key-frame folder. Only what is downstream of reimagine reruns afterwards: the
    planner puts the choice into their fingerprints. Raises StageError for an unknown k.
    """
    from .._manifest import read_choices, read_manifest, write_json_atomic

    manifest = read_manifest(layout, "reimagine")
    if manifest is None:
        raise StageError(f"{layout.root}: reimagine has not finished in this run; nothing to choose")
    count = int(manifest["record"]["candidates"])
    if not 1 <= k <= count:
        raise StageError(f"candidate {k}: accepted a whole number from 1 to {count} "
                         f"(reimagine.candidates = {count} in {layout.root})")
    source = layout.reimagine_sheets / "candidates" / str(k)
    if not source.is_dir():
        raise StageError(f"{source}: the tiles of candidate {k} are missing; rerun reimagine")
    tmp = layout.reimagine_sheets / f".key_frames.{os.getpid()}.tmp"
    old = layout.reimagine_sheets / f".key_frames.{os.getpid()}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    if layout.key_frames.exists():
        os.replace(layout.key_frames, old)
    os.replace(tmp, layout.key_frames)
    shutil.rmtree(old, ignore_errors=True)
    choices = read_choices(layout)
    if k == 1:  # the default: downstream fingerprints return to what they were without a choice
        choices.pop("reimagine", None)
    else:
        choices["reimagine"] = k
    write_json_atomic(layout.choices, choices)
    from .._manifest import refresh_files

    refresh_files(layout, "reimagine")  # the rewritten key frames are the stage's own now
    return layout.key_frames


def preview_edges(preset: Preset, out_path: Path) -> Path:
    """Writes the PyraCanny map of the run's model sheet for the preset's thresholds; gives out_path.

    Loads no model: it reads `orig_sheets/sheet.png` of the preset's run folder.
    """
    import numpy as np

    from .._layout import RunLayout
    from .._media import read_image, write_image

    layout = RunLayout.for_run(Path(preset.run.outputs_root), preset.run.directory)
    path = layout.orig_sheets / "sheet.png"
    if not path.exists():
        raise StageError(f"{path}: no model sheet yet; run the stages up to 'sheet' first")
    edges = sheet_edges(read_image(path)[..., :3], preset.reimagine)
    write_image(Path(out_path), np.repeat(edges[..., None], 3, axis=2))
    return Path(out_path)


def reimagine_models(preset: Preset) -> list[ModelRef]:
    """Gives the models the reimagine stage of `preset` will load (none for guidance set to 0)."""
    from .. import model_refs
    from ..model_refs import ModelRef, image_encoder_subfolder, source_kind, subfolder_file

    p = preset.reimagine
    if preset.run.pipeline in ("original", "reimagine-sync"):  # the sync route loads sync_models
        return []
    source = CHECKPOINTS.get(p.checkpoint, p.checkpoint)
    refs = [ModelRef("checkpoint", "SD-XL checkpoint", "reimagine.checkpoint", source,
                     model_refs.SDXL_PIPELINE_FILES)]
    if source_kind(source) == "file":
        refs.append(ModelRef("single_file_config", "SD-XL configs and tokenizers (for a single-file checkpoint)",
                             "reimagine.checkpoint", model_refs.SDXL_CONFIG_REPO, model_refs.SDXL_CONFIG_FILES))
    if controlnet_on(p):
        refs.append(ModelRef("controlnet", "canny ControlNet", "reimagine.controlnet_model", p.controlnet_model,
                             model_refs.CONTROLNET_FILES))
    if ip_adapter_on(p):
        encoder = image_encoder_subfolder(p.ip_adapter_subfolder, p.image_encoder)
        refs.append(ModelRef("ip_adapter", "IP-Adapter with its image encoder", "reimagine.ip_adapter_model",
                             p.ip_adapter_model,
                             (subfolder_file(p.ip_adapter_subfolder, p.ip_adapter_weight_name),
                              f"{encoder}/config.json", f"{encoder}/model.safetensors")))
    return refs


STAGE = Stage(
    id="reimagine",
    title="Reimagine the sheet",
    section="reimagine",
    params=Params,
    after=("sheet",),
    outputs=("reimagine_sheets",),
    version=1,
    run=run,
    gpu=True,
    off_when=off_without_reimagine,
)
