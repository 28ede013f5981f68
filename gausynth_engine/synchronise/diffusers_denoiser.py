"""The real denoiser: SD-XL or SD 1.5 (+ depth / canny ControlNet, + IP-Adapter) through diffusers.

The diffusers pipeline object is used only to load the models and encode the prompts and image
prompts; the denoising loop is ours (`sampler.sample`), calling the UNet and ControlNet directly
on chunks of views, with classifier-free guidance as one doubled batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..diffusion import guided_steps

FAMILIES = ("sdxl", "sd15")


@dataclass(frozen=True)
class FamilySources:
    """Local paths of what one synchronised run loads; None leaves that guidance out."""

    family: str  # "sdxl" or "sd15"
    checkpoint: Path  # a diffusers folder, or a single .safetensors file
    single_file_config: Path | None = None
    controlnet: Path | None = None
    ip_adapter: Any = None  # a diffusion.IpAdapterSource


def load_pipeline(src: FamilySources, device: str, dtype: torch.dtype, low_vram: bool) -> Any:
    """Gives the family's diffusers text-to-image pipeline (with ControlNet when given), placed.

    Low-VRAM mode keeps each model in host memory until it works (model CPU offload) and decodes
    the VAE in tiles.
    """
    import diffusers
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()
    kwargs: dict[str, Any] = {"dtype": dtype}
    if src.family == "sdxl":
        cls = diffusers.StableDiffusionXLControlNetPipeline if src.controlnet else diffusers.StableDiffusionXLPipeline
    elif src.family == "sd15":
        cls = diffusers.StableDiffusionControlNetPipeline if src.controlnet else diffusers.StableDiffusionPipeline
        kwargs.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    else:
        raise ValueError(f"model family {src.family!r}; accepted: {', '.join(FAMILIES)}")
    if src.controlnet is not None:
        kwargs["controlnet"] = diffusers.ControlNetModel.from_pretrained(src.controlnet, dtype=dtype)
    if src.checkpoint.is_file():
        pipe = cls.from_single_file(str(src.checkpoint), config=str(src.single_file_config),
                                    local_files_only=True, **kwargs)
    else:
        pipe = cls.from_pretrained(src.checkpoint, **kwargs)
    from ..diffusion.pipeline import place_pipeline

    return place_pipeline(pipe, src.ip_adapter, device, low_vram)


def ddim_scheduler(pipe: Any) -> Any:
    """Gives a DDIM scheduler with the pipeline's noise schedule (η = 0, ᾱ_final = 1)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False, set_alpha_to_one=True)


class UNetDenoiser:
    """The model output of the family's UNet for a chunk of views, with guidance folded in.

    control [V, 3, S, S] in [0, 1] (depth or edges per view) feeds the ControlNet until its
    stop-at fraction; ip_images (one PIL image per view) feed the IP-Adapter until its stop-at.
    `calls` counts UNet forward passes and `evaluations` the images they denoised (views ×
    steps, × 2 with guidance).
    """

    def __init__(self, pipe: Any, family: str, prompt: str, negative: str, guidance: float, side: int,
                 device: str, *, control: Tensor | None = None, control_scale: float = 1.0,
                 control_stop: float = 1.0, ip_images: list[Any] | None = None, ip_weight: float = 0.0,
                 ip_stop: float = 1.0) -> None:
        self.pipe, self.family, self.device = pipe, family, device
        self.unet = pipe.unet
        self.controlnet = getattr(pipe, "controlnet", None) if control is not None else None
        self.dtype = self.unet.dtype
        self.cfg = guidance > 1.0
        self.guidance = guidance
        self.prediction_type = pipe.scheduler.config.get("prediction_type", "epsilon")
        self.control = None if control is None else control.to(device, self.dtype)
        self.control_scale, self.control_stop = control_scale, control_stop
        self.ip_weight, self.ip_stop = ip_weight, ip_stop
        self._ip_scale: float | None = None
        self.calls = 0
        self.evaluations = 0
        with torch.no_grad():
            self._encode(prompt, negative or None, side)
            self._ip = self._encode_images(ip_images) if ip_images and ip_weight > 0 else None

    def _encode(self, prompt: str, negative: str | None, side: int) -> None:
        pipe, dev = self.pipe, self.device
        self.added: dict[str, Tensor] = {}
        self.neg_added: dict[str, Tensor] = {}
        if self.family == "sdxl":
            pe, npe, pooled, npooled = pipe.encode_prompt(prompt=prompt, device=dev, num_images_per_prompt=1,
                                                          do_classifier_free_guidance=self.cfg,
                                                          negative_prompt=negative)
            time_ids = torch.tensor([[side, side, 0, 0, side, side]], device=dev, dtype=self.dtype)
            self.added = {"text_embeds": pooled.to(self.dtype), "time_ids": time_ids}
            self.neg_added = {"text_embeds": (npooled if npooled is not None else torch.zeros_like(pooled))
                              .to(self.dtype), "time_ids": time_ids}
        else:
            pe, npe = pipe.encode_prompt(prompt, dev, 1, self.cfg, negative)
        self.cond = pe.to(self.dtype)
        self.uncond = (npe if npe is not None else torch.zeros_like(pe)).to(self.dtype)

    def _encode_images(self, images: list[Any]) -> tuple[Tensor, Tensor]:
        """Gives (image embeddings, negative ones) [V, D] of one image prompt per view."""
        pos, neg = self.pipe.encode_image(images, self.device, 1, False)
        return pos.to(self.dtype), neg.to(self.dtype)

    def _set_ip(self, index: int, total: int) -> None:
        scale = self.ip_weight if guided_steps(index, total, self.ip_stop) else 0.0
        if scale != self._ip_scale:
            self.pipe.set_ip_adapter_scale(scale)
            self._ip_scale = scale

    @torch.no_grad()
    def __call__(self, latents: Tensor, t: Tensor, index: int, total: int, views: list[int]) -> Tensor:
        n = len(latents)
        reps = 2 if self.cfg else 1

        def both(cond: Tensor, uncond: Tensor) -> Tensor:
            c = cond.expand(n, *cond.shape[1:])
            return torch.cat([uncond.expand(n, *uncond.shape[1:]), c]) if self.cfg else c

        x = torch.cat([latents] * reps).to(self.device, self.dtype)
        text = both(self.cond, self.uncond)
        added: dict[str, Any] = {k: both(v, self.neg_added[k]) for k, v in self.added.items()}
        if self._ip is not None:
            self._set_ip(index, total)
            pos, neg = self._ip[0][views], self._ip[1][views]
            added["image_embeds"] = [(torch.cat([neg, pos]) if self.cfg else pos)[:, None]]
        down = mid = None
        if (self.controlnet is not None and self.control_scale > 0
                and guided_steps(index, total, self.control_stop)):
            image = torch.cat([self.control[views]] * reps)
            cn_added = {k: v for k, v in added.items() if k != "image_embeds"} or None
            down, mid = self.controlnet(x, t, encoder_hidden_states=text, controlnet_cond=image,
                                        conditioning_scale=self.control_scale, added_cond_kwargs=cn_added,
                                        return_dict=False)
        out = self.unet(x, t, encoder_hidden_states=text, added_cond_kwargs=added or None,
                        down_block_additional_residuals=down, mid_block_additional_residual=mid,
                        return_dict=False)[0]
        self.calls += 1
        self.evaluations += len(x)
        if self.cfg:
            uncond, cond = out.chunk(2)
            out = uncond + self.guidance * (cond - uncond)
        return out
