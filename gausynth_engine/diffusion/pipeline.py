"""Loading the SD-XL img2img pipeline (with ControlNet and IP-Adapter) and releasing it again."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class IpAdapterSource:
    """Where the IP-Adapter weights and their CLIP image encoder are, as `load_ip_adapter` reads them."""

    root: Path  # a local folder (a cached Hugging Face snapshot or the user's own)
    subfolder: str  # e.g. "sdxl_models"
    weight_name: str  # e.g. "ip-adapter_sdxl.safetensors"
    image_encoder: str  # a name inside `subfolder`, or a path with "/" relative to `root`


@dataclass(frozen=True)
class PipelineSources:
    """Local paths of everything one pipeline loads; None leaves that guidance out entirely."""

    checkpoint: Path  # a diffusers folder, or a single .safetensors file
    single_file_config: Path | None = None  # the SD-XL configs + tokenizers a single file needs
    controlnet: Path | None = None
    ip_adapter: IpAdapterSource | None = None


def build_pipeline(src: PipelineSources, device: str, low_vram: bool) -> Any:
    """Gives a ready SD-XL img2img pipeline (ControlNet img2img when `src.controlnet` is set).

    fp16 on CUDA, fp32 on CPU; DPM++ 2M SDE with Karras sigmas. Low-VRAM mode keeps the models
    in host memory and moves each to the GPU only while it works (model CPU offload), and
    decodes the VAE in tiles and slices.
    """
    import torch
    from diffusers import (
        ControlNetModel,
        DPMSolverMultistepScheduler,
        StableDiffusionXLControlNetImg2ImgPipeline,
        StableDiffusionXLImg2ImgPipeline,
    )
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()
    dtype = torch.float16 if device == "cuda" else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype}
    cls = StableDiffusionXLImg2ImgPipeline
    if src.controlnet is not None:
        kwargs["controlnet"] = ControlNetModel.from_pretrained(src.controlnet, dtype=dtype)
        cls = StableDiffusionXLControlNetImg2ImgPipeline
    if src.checkpoint.is_file():
        pipe = cls.from_single_file(str(src.checkpoint), config=str(src.single_file_config),
                                    local_files_only=True, **kwargs)
    else:
        pipe = cls.from_pretrained(src.checkpoint, **kwargs)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(
        pipe.scheduler.config, algorithm_type="sde-dpmsolver++", use_karras_sigmas=True)
    return place_pipeline(pipe, src.ip_adapter, device, low_vram)


def place_pipeline(pipe: Any, ip_adapter: IpAdapterSource | None, device: str, low_vram: bool) -> Any:
    """Gives the loaded pipeline with its IP-Adapter, quiet, on `device` (CPU offload and a tiled
    VAE in low-VRAM mode)."""
    if ip_adapter is not None:
        pipe.load_ip_adapter(str(ip_adapter.root), subfolder=ip_adapter.subfolder,
                             weight_name=ip_adapter.weight_name,
                             image_encoder_folder=ip_adapter.image_encoder)
    pipe.set_progress_bar_config(disable=True)
    if low_vram:
        pipe.vae.enable_tiling()
        pipe.vae.enable_slicing()
    if low_vram and device == "cuda":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    return pipe


@contextmanager
def loaded_pipeline(src: PipelineSources, device: str, low_vram: bool) -> Iterator[Any]:
    """Yields `build_pipeline(...)` and frees its host and GPU memory when the block ends."""
    pipe = build_pipeline(src, device, low_vram)
    try:
        yield pipe
    finally:
        release(pipe)


def release(pipe: Any) -> None:
    """Drops the offload hooks and every model a pipeline holds, then reclaims their host and
    GPU memory (the emptied pipeline object may live on)."""
    import torch

    pipe.maybe_free_model_hooks()
    if hasattr(pipe, "remove_all_hooks"):
        pipe.remove_all_hooks()
    for name in list(pipe.components):
        setattr(pipe, name, None)
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
