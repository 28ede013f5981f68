"""sync: reimagine in 3D by synchronised diffusion over the original 3DGS (SyncTweedies, case 2).

Reads the original 3DGS (`gs/orig_*/point_cloud/…/point_cloud.ply`) and the cameras of
`colmap/sparse/0`; picks V cameras around the object; renders the original at them (colour,
alpha, depth); denoises the V views in one batch, synchronising their clean-image estimates
through the Gaussians' colours at every step (`gausynth_engine.synchronise`); writes the
reimagined PLY (`sync/point_cloud.ply`, the original geometry with the new colours), the V
final views, and RGBA renders of the reimagined model at every registered frame in
`reim3d_frames/` (named and sized like `colmap/images`), which splat_reim trains on.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._params import param
from .._stage import Stage, StageContext, StageError
from .splat import original_ply

if TYPE_CHECKING:
    import numpy as np

    from .._preset import Preset
    from ..model_refs import ModelRef

ROUTE = "reimagine-sync"
SD15_CHECKPOINT = "stable-diffusion-v1-5/stable-diffusion-v1-5"
# The ControlNet each family uses for each kind of control, unless sync.controlnet_model names one.
CONTROLNETS = {
    ("sdxl", "depth"): "diffusers/controlnet-depth-sdxl-1.0",
    ("sdxl", "canny"): "diffusers/controlnet-canny-sdxl-1.0",
    ("sd15", "depth"): "lllyasviel/control_v11f1p_sd15_depth",
    ("sd15", "canny"): "lllyasviel/control_v11p_sd15_canny",
}
NATIVE_SIZE = {"sdxl": 1024, "sd15": 512}
# The reimagine section names SD-XL's IP-Adapter; SD 1.5 uses its sibling in the same repository.
SD15_IP_ADAPTER = ("models", "ip-adapter_sd15.safetensors")
READS = tuple(f"reimagine.{f}" for f in (
    "prompt", "negative_prompt", "style", "checkpoint", "ip_adapter_model", "ip_adapter_subfolder",
    "ip_adapter_weight_name", "image_encoder", "ip_adapter_weight", "ip_adapter_stop", "canny_low",
    "canny_high"))


@dataclass(frozen=True)
class Params:
    family: str = param("sdxl", "Diffusion model family: SD-XL (the project's) or SD 1.5 with a depth "
                        "ControlNet (the SyncTweedies paper's).", choices=("sdxl", "sd15"))
    checkpoint: str = param("", "Checkpoint: a Hugging Face id, a local folder or a single .safetensors "
                            "file; empty = reimagine.checkpoint for sdxl, SD 1.5 for sd15.")
    control: str = param("depth", "What guides the structure: the original 3DGS's rendered depth or the "
                         "canny edges of its renders (a ControlNet), or nothing.",
                         choices=("depth", "canny", "none"))
    controlnet_model: str = param("", "ControlNet: a Hugging Face id or a local folder; empty = the "
                                  "family's public one for sync.control.")
    control_weight: float = param(1.0, "ControlNet conditioning scale.", min=0.0, max=2.0)
    control_stop: float = param(1.0, "Fraction of the steps after which the ControlNet stops guiding.",
                                min=0.0, max=1.0)
    views: int = param(8, "How many cameras the diffusion sees (all denoised in one batch).", min=2, max=64)
    view_choice: str = param("turnaround", "How the cameras are picked: evenly around the object, or "
                             "evenly in frame order.", choices=("turnaround", "frames"))
    size: int = param(0, "Side of each diffused view in pixels (a multiple of 64); 0 = the family's own "
                      "(1024 sdxl, 512 sd15).", min=0, max=2048)
    steps: int = param(30, "DDIM steps (strength < 1 runs steps × strength of them).", min=1, max=200)
    strength: float = param(1.0, "1 = from noise (text + control only); lower starts from the noised "
                            "renders of the original 3DGS (img2img).", min=0.1, max=1.0)
    guidance: float = param(7.5, "Classifier-free guidance scale (≤ 1 = no guidance).", min=0.0, max=50.0)
    seed: int = param(-1, "Random seed; -1 = a new random seed (the one used is recorded).",
                      min=-1, max=2**32 - 1)
    synchronise: bool = param(True, "Synchronise the views through the Gaussians at every step; off = "
                              "each view on its own (a baseline: the views disagree).")
    space: str = param("pixel", "Where the views' estimates are synchronised: decoded to RGB (exact) or "
                       "as VAE latents (no VAE round trip per step; cheaper).", choices=("pixel", "latent"))
    fit_steps: int = param(20, "Adam steps fitting the Gaussians' colours at each synchronisation.",
                           min=1, max=500)
    fit_lr: float = param(0.05, "Learning rate of that fit (colour units per step).", min=0.001, max=1.0)
    final_fit_steps: int = param(300, "Adam steps fitting the final colours to the last estimates.",
                                 min=1, max=5000)
    batch: int = param(0, "Views per UNet call; 0 = all at once (lower it to save memory).", min=0, max=64)
    fp16: bool = param(True, "Half precision on the GPU (the CPU always runs float32).")
    low_vram: bool = param(False, "Model CPU offload and VAE tiling (fits SD-XL in ~12 GB, slower).")


def off_unless_sync(preset: Preset) -> str | None:
    """Gives why the stage is off, or None on the synchronised route."""
    if preset.run.pipeline != ROUTE:
        return f"run.pipeline = {preset.run.pipeline!r} (the synchronised route is {ROUTE!r})"
    return None


# --- pure helpers -----------------------------------------------------------------------------
def diffusion_size(p: Params) -> int:
    """Gives the side of each diffused view: sync.size rounded down to 64, or the family's own."""
    return NATIVE_SIZE[p.family] if p.size <= 0 else max(64, p.size // 64 * 64)


def checkpoint_source(preset: Preset) -> str:
    """Gives the checkpoint the stage loads (named choices of reimagine.checkpoint resolved)."""
    from .reimagine import CHECKPOINTS

    p: Params = preset.sync
    if p.checkpoint:
        return p.checkpoint
    if p.family == "sd15":
        return SD15_CHECKPOINT
    return CHECKPOINTS.get(preset.reimagine.checkpoint, preset.reimagine.checkpoint)


def controlnet_source(p: Params) -> str | None:
    """Gives the ControlNet the stage loads, or None when no control guides."""
    if p.control == "none" or p.control_weight <= 0 or p.control_stop <= 0:
        return None
    return p.controlnet_model or CONTROLNETS[(p.family, p.control)]


def ip_adapter_files(preset: Preset) -> tuple[str, str, str] | None:
    """Gives (subfolder, weight name, image encoder) of the IP-Adapter, or None when it is off.

    The reimagine section's settings apply; for SD 1.5 its SD-XL defaults become SD 1.5's files.
    """
    from .reimagine import Params as ReimagineParams
    from .reimagine import ip_adapter_on

    r = preset.reimagine
    if not ip_adapter_on(r):
        return None
    sub, weight = r.ip_adapter_subfolder, r.ip_adapter_weight_name
    default = ReimagineParams()
    if preset.sync.family == "sd15" and (sub, weight) == (default.ip_adapter_subfolder,
                                                           default.ip_adapter_weight_name):
        sub, weight = SD15_IP_ADAPTER
    return sub, weight, r.image_encoder


def control_maps(kind: str, rgb: Any, depth: Any, alpha: Any, low: int, high: int) -> Any:
    """Gives the ControlNet inputs [V, 3, S, S] in [0, 1] from renders of the original 3DGS.

    rgb [V, S, S, 3] in [0, 1]; depth and alpha [V, S, S]. depth → a near-bright disparity map;
    canny → PyraCanny edges of the colour renders (the 2D route's edges).
    """
    import numpy as np
    import torch

    from ..edges import pyra_canny
    from ..synchronise.gaussians import disparity_map

    if kind == "depth":
        return disparity_map(depth, alpha)[:, None].expand(-1, 3, -1, -1).contiguous()
    images = (rgb.clamp(0, 1) * 255 + 0.5).byte().cpu().numpy()
    edges = np.stack([pyra_canny(im, low, high) for im in images]).astype(np.float32) / 255.0
    return torch.from_numpy(edges)[:, None].expand(-1, 3, -1, -1).to(rgb.device).contiguous()


# --- inputs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameCameras:
    """Every registered frame of `colmap/sparse/0`, in natural name order."""

    names: list[str]
    Ks: np.ndarray  # [F, 3, 3] px
    viewmats: np.ndarray  # [F, 4, 4] world→camera
    sizes: list[tuple[int, int]]  # (width, height) per frame


def frame_cameras(sparse: Path) -> FrameCameras:
    """Gives the registered cameras of an undistorted COLMAP model, or StageError."""
    import numpy as np
    import pycolmap

    from .._media import natural_key

    if not (sparse / "images.bin").exists() and not (sparse / "images.txt").exists():
        raise StageError(f"{sparse}: no COLMAP model (images.bin); run the sfm stage first")
    rec = pycolmap.Reconstruction(str(sparse))
    regs = sorted((rec.images[i] for i in rec.reg_image_ids()), key=lambda im: natural_key(im.name))
    if len(regs) < 2:
        raise StageError(f"{sparse}: {len(regs)} registered image(s); the synchronised route needs ≥ 2")
    Ks, viewmats, sizes = [], [], []
    for im in regs:
        cam = im.camera
        if cam.model.name not in ("PINHOLE", "SIMPLE_PINHOLE"):
            raise StageError(f"{sparse}: camera {cam.camera_id} is {cam.model.name}; accepted: "
                             "PINHOLE or SIMPLE_PINHOLE (undistorted) cameras")
        Ks.append(np.array(cam.calibration_matrix(), dtype=np.float64))
        w2c = np.eye(4)
        w2c[:3, :] = im.cam_from_world().matrix()
        viewmats.append(w2c)
        sizes.append((cam.width, cam.height))
    return FrameCameras([im.name for im in regs], np.stack(Ks), np.stack(viewmats), sizes)


def model_sources(preset: Preset, log: Any = None, progress: Any = None) -> Any:
    """Gives the local paths of what the stage loads (fetched when online and missing)."""
    from .. import model_refs
    from ..diffusion import IpAdapterSource
    from ..synchronise.diffusers_denoiser import FamilySources

    paths = {ref.key: model_refs.require(ref, log, progress) for ref in sync_models(preset)}
    ip = None
    files = ip_adapter_files(preset)
    if "ip_adapter" in paths and files:
        ip = IpAdapterSource(paths["ip_adapter"], *files)
    return FamilySources(preset.sync.family, paths["checkpoint"], paths.get("single_file_config"),
                         paths.get("controlnet"), ip)


# --- the stage --------------------------------------------------------------------------------
def run(ctx: StageContext) -> None:
    import numpy as np
    import torch

    from .._media import write_image
    from ..splatting.ply import read_ply, write_ply
    from ..synchronise.cameras import select_views, square_intrinsics
    from ..synchronise.gaussians import (
        Cameras,
        Geometry,
        backend_for,
        consistency_psnr,
        render_depth,
        render_features,
    )

    p: Params = ctx.params
    device = ctx.device
    ply = original_ply(ctx.layout, "synchronised diffusion")
    raw = read_ply(ply)
    frames = frame_cameras(ctx.layout.colmap_sparse)
    ids = select_views(frames.viewmats, p.views, p.view_choice)
    side = diffusion_size(p)
    backend = backend_for(device)
    geom = Geometry.from_ply(raw, device)
    Ks = np.stack([square_intrinsics(frames.Ks[i], *frames.sizes[i], side) for i in ids])
    cams = Cameras(torch.tensor(frames.viewmats[ids], dtype=torch.float32, device=device),
                   torch.tensor(Ks, dtype=torch.float32, device=device), side, side)
    white = torch.ones(3, device=device)
    with torch.no_grad():
        originals, alpha = render_features(geom, geom.rgb, cams, white, backend)
        depth, _ = render_depth(geom, cams, backend)
    names = [frames.names[i] for i in ids]
    ctx.log(f"synchronised {p.family} over {len(ids)} views at {side}² on {device} ({backend} "
            f"rasterizer), {len(geom):,} Gaussians from {ply.relative_to(ctx.layout.root)}; views: "
            f"{', '.join(names)}")
    seed = secrets.randbelow(2**32) if p.seed < 0 else p.seed
    if torch.cuda.is_available() and device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result, calls, evaluations = diffuse(ctx, geom, cams, originals, alpha[..., 0], depth, seed)
    seconds = time.perf_counter() - started
    # The outputs: the reimagined PLY, the V views, and RGBA renders at every registered frame.
    out = ctx.out.sync
    write_ply(out / "point_cloud.ply", geom.to_ply(raw, result.colours))

    def u8(x: torch.Tensor) -> np.ndarray:
        return (x.detach().clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)

    for k, name in enumerate(names):
        stem = Path(name).stem + ".png"
        write_image(out / "views" / stem, u8(result.images[k]))
        write_image(out / "originals" / stem, u8(originals[k]))
    ctx.artifact(out / "views" / (Path(names[0]).stem + ".png"), "image")
    write_frames(ctx.out.reim3d_frames, geom, result.colours, frames, backend, device)
    mask = alpha[..., 0] > 0.5
    consistency = consistency_psnr(result.images.to(device), geom, cams, mask, backend=backend,
                                   steps=p.final_fit_steps)
    peak = int(torch.cuda.max_memory_allocated()) if device == "cuda" else None
    steps = result.steps
    ctx.metric("consistency_psnr", consistency)
    ctx.metric("seconds_per_view_step", result.denoise_seconds / max(1, steps * len(ids)))
    ctx.record(seed=seed, family=p.family, views=names, view_ids=ids, size=side, steps=steps,
               unet_calls=calls, unet_evaluations=evaluations,
               consistency_psnr=round(consistency, 2), residuals=[round(r, 5) for r in result.residuals],
               seconds=round(seconds, 2), denoise_seconds=round(result.denoise_seconds, 2),
               sync_seconds=round(result.sync_seconds, 2), peak_vram_bytes=peak,
               original_ply=str(ply.relative_to(ctx.layout.root)), frames=len(frames.names))


def diffuse(ctx: StageContext, geom: Any, cams: Any, originals: Any, alpha: Any, depth: Any,
            seed: int) -> tuple[Any, int, int]:
    """Loads the models, runs the synchronised sampling, releases the models; gives
    (SyncResult, UNet calls, images they denoised)."""
    import torch
    from PIL import Image

    from .._media import write_image
    from ..diffusion.pipeline import release
    from ..synchronise.diffusers_denoiser import UNetDenoiser, ddim_scheduler, load_pipeline
    from ..synchronise.sampler import SyncSettings, VaeCodec, sample
    from .reimagine import styled_prompts

    p: Params = ctx.params
    r = ctx.preset.reimagine
    device = ctx.device
    sources = model_sources(ctx.preset, ctx.log,
                            lambda done, total, unit: ctx.progress(done, total, f"download {unit}"))
    dtype = torch.float16 if device == "cuda" and p.fp16 else torch.float32
    pipe = load_pipeline(sources, device, dtype, p.low_vram)
    try:
        control = None
        if sources.controlnet is not None:
            control = control_maps(p.control, originals, depth, alpha, r.canny_low, r.canny_high)
            for k, image in enumerate(control):
                write_image(ctx.out.sync / "control" / f"{k:02d}.png",
                            (image.permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype("uint8"))
        ip_images = None
        if sources.ip_adapter is not None:
            ip_images = [Image.fromarray((o.cpu().numpy() * 255 + 0.5).astype("uint8")) for o in originals]
        prompt, negative = styled_prompts(r)
        denoiser = UNetDenoiser(pipe, p.family, prompt, negative, p.guidance, cams.width, device,
                                control=control, control_scale=p.control_weight, control_stop=p.control_stop,
                                ip_images=ip_images, ip_weight=r.ip_adapter_weight, ip_stop=r.ip_adapter_stop)
        settings = SyncSettings(steps=p.steps, strength=p.strength, seed=seed, batch=p.batch,
                                synchronise=p.synchronise, space=p.space, fit_steps=p.fit_steps,
                                fit_lr=p.fit_lr, final_fit_steps=p.final_fit_steps)
        last_step = [-1]

        def progress(done: int, total: int, step: int) -> None:
            ctx.progress(done, total, "view-steps")
            if step != last_step[0]:
                last_step[0] = step
                ctx.log(f"denoising step {step + 1}/{total // len(cams)} of {len(cams)} views")

        result = sample(denoiser, VaeCodec(pipe.vae, device=device, upcast=p.family == "sdxl"), ddim_scheduler(pipe), geom, cams,
                        originals, settings, device=device, dtype=dtype, on_progress=progress)
        for k, residual in enumerate(result.residuals):
            ctx.metric("sync_residual", residual, step=k + 1)
        calls, evaluations = denoiser.calls, denoiser.evaluations
        del denoiser  # it holds the models: let them go with the pipeline
        return result, calls, evaluations
    finally:
        release(pipe)


def write_frames(folder: Path, geom: Any, colours: Any, frames: FrameCameras, backend: str,
                 device: str) -> None:
    """Writes an RGBA render of the reimagined Gaussians at every frame (straight alpha)."""
    import numpy as np
    import torch

    from .._media import write_image
    from ..synchronise.gaussians import Cameras, render_features

    for k, name in enumerate(frames.names):
        w, h = frames.sizes[k]
        cam = Cameras(torch.tensor(frames.viewmats[k:k + 1], dtype=torch.float32, device=device),
                      torch.tensor(frames.Ks[k:k + 1], dtype=torch.float32, device=device), w, h)
        with torch.no_grad():
            rgb, alpha = render_features(geom, colours, cam, None, backend)
        a = alpha[0].clamp(0, 1)
        straight = torch.where(a > 1e-3, rgb[0] / a.clamp_min(1e-3), 0.0).clamp(0, 1)
        rgba = torch.cat([straight, a], dim=-1).cpu().numpy()
        write_image(folder / (Path(name).stem + ".png"), (rgba * 255.0 + 0.5).astype(np.uint8))


def sync_models(preset: Preset) -> list[ModelRef]:
    """Gives the models the sync stage of `preset` loads (none off the synchronised route)."""
    from .. import model_refs
    from ..model_refs import ModelRef, image_encoder_subfolder, source_kind, subfolder_file

    if preset.run.pipeline != ROUTE:
        return []
    p = preset.sync
    source = checkpoint_source(preset)
    field = "sync.checkpoint" if p.checkpoint or p.family == "sd15" else "reimagine.checkpoint"
    sd15 = p.family == "sd15"
    name = "SD 1.5 checkpoint" if sd15 else "SD-XL checkpoint"
    pipeline_files = model_refs.SD15_PIPELINE_FILES if sd15 else model_refs.SDXL_PIPELINE_FILES
    refs = [ModelRef("checkpoint", name, field, source, pipeline_files)]
    if source_kind(source) == "file":
        refs.append(ModelRef("single_file_config", f"{name[:-11]} configs and tokenizers (for a single-file "
                             "checkpoint)", field, SD15_CHECKPOINT if sd15 else model_refs.SDXL_CONFIG_REPO,
                             model_refs.SD15_CONFIG_FILES if sd15 else model_refs.SDXL_CONFIG_FILES))
    controlnet = controlnet_source(p)
    if controlnet:
        refs.append(ModelRef("controlnet", f"{p.control} ControlNet", "sync.controlnet_model", controlnet,
                             model_refs.CONTROLNET_FILES))
    files = ip_adapter_files(preset)
    if files:
        sub, weight, encoder = files
        folder = image_encoder_subfolder(sub, encoder)
        refs.append(ModelRef("ip_adapter", "IP-Adapter with its image encoder", "reimagine.ip_adapter_model",
                             preset.reimagine.ip_adapter_model,
                             (subfolder_file(sub, weight), f"{folder}/config.json", f"{folder}/model.safetensors")))
    return refs


STAGE = Stage(
    id="sync",
    title="Reimagine in 3D (synchronised)",
    section="sync",
    params=Params,
    after=("splat_orig",),
    outputs=("reim3d_frames", "sync"),
    version=1,
    run=run,
    reads=READS,
    gpu=True,
    off_when=off_unless_sync,
)
