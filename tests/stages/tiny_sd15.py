"""Random SD 1.5 + depth ControlNet + IP-Adapter, saved like the public repositories.

`save_random_sd15(root, configs)` builds any size: the tests pass `TINY_SD15`, the benchmark
`sd15_configs()` (SD 1.5's real architecture: diffusers' UNet/VAE defaults with SD 1.5's sizes,
CLIP ViT-L/14 text encoder). Folders:

    root/sd15/                       a diffusers SD 1.5 pipeline (no safety checker)
    root/controlnet_sd15/            a ControlNet made from the UNet (as the depth one is)
    root/ip_adapter/models/ip-adapter_sd15.safetensors + models/image_encoder/
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiny_models import byte_tokenizer, ip_adapter_state


@dataclass(frozen=True)
class Sd15Folders:
    checkpoint: Path
    controlnet: Path
    ip_adapter: Path


TINY_SD15: dict[str, dict[str, Any]] = {
    "unet": dict(block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4,
                 out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=4,
                 cross_attention_dim=32, norm_num_groups=16),
    "controlnet": dict(conditioning_embedding_out_channels=(8, 8, 8, 8)),
    "vae": dict(block_out_channels=(16, 16, 16, 16), in_channels=3, out_channels=3,
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                latent_channels=4, norm_num_groups=8, layers_per_block=1, sample_size=64,
                scaling_factor=0.18215),
    "text_encoder": dict(bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=32,
                         intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                         vocab_size=1000, hidden_act="gelu", projection_dim=32, max_position_embeddings=77),
    "image_encoder": dict(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                          num_hidden_layers=2, image_size=32, patch_size=8, projection_dim=32),
    "scheduler": dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                      num_train_timesteps=1000, steps_offset=1, clip_sample=False, set_alpha_to_one=False),
}


def sd15_configs() -> dict[str, dict[str, Any]]:
    """Gives SD 1.5's real architecture: diffusers' UNet2DConditionModel defaults are SD 1.5's
    UNet but for the 768-wide cross-attention; its VAE has 4 levels (128…512); CLIP ViT-L/14
    encodes the text; the IP-Adapter's image encoder is CLIP ViT-H/14 (1024-d projection)."""
    return {
        "unet": dict(sample_size=64, cross_attention_dim=768),
        "controlnet": {},
        "vae": dict(block_out_channels=(128, 256, 512, 512), in_channels=3, out_channels=3,
                    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                    latent_channels=4, layers_per_block=2, sample_size=512, scaling_factor=0.18215),
        "text_encoder": dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                             num_hidden_layers=12, vocab_size=49408, max_position_embeddings=77,
                             projection_dim=768, hidden_act="quick_gelu"),
        "image_encoder": dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=16,
                              num_hidden_layers=32, image_size=224, patch_size=14, projection_dim=1024),
        "scheduler": TINY_SD15["scheduler"],
    }


def build_sd15(configs: dict[str, dict[str, Any]], *, dtype: Any = None, device: str = "cpu",
               seed: int = 0) -> tuple[Any, Any, Any]:
    """Gives (SD 1.5 pipeline, ControlNet, CLIP image encoder) with random weights, in memory."""
    import torch
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    dtype = dtype or torch.float32
    torch.manual_seed(seed)
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(configs["unet"])
        controlnet = ControlNetModel.from_unet(unet, **configs["controlnet"])
        vae = AutoencoderKL.from_config(configs["vae"])
        text = CLIPTextModel(CLIPTextConfig(**configs["text_encoder"]))
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**configs["image_encoder"]))
    with torch.no_grad():  # a fresh ControlNet's zero convolutions would change nothing: wake them
        for param in controlnet.parameters():
            if not param.any():
                param.normal_(0.0, 0.02)
    for m in (unet, controlnet, vae, text, encoder):
        m.to(dtype)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=byte_tokenizer(), unet=unet,
                                   scheduler=DDIMScheduler.from_config(configs["scheduler"]),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return pipe, controlnet, encoder


def save_random_sd15(root: Path, configs: dict[str, dict[str, Any]], **kwargs: Any) -> Sd15Folders:
    """Builds (see `build_sd15`) and saves SD 1.5, its ControlNet and an IP-Adapter under root."""
    from safetensors.torch import save_file

    root = Path(root)
    folders = Sd15Folders(root / "sd15", root / "controlnet_sd15", root / "ip_adapter")
    pipe, controlnet, encoder = build_sd15(configs, **kwargs)
    pipe.save_pretrained(folders.checkpoint)
    controlnet.save_pretrained(folders.controlnet)
    ip_folder = folders.ip_adapter / "models"
    encoder.save_pretrained(ip_folder / "image_encoder")
    state = ip_adapter_state(pipe.unet, encoder.config.projection_dim)
    save_file({k: v.to(pipe.unet.dtype).contiguous() for k, v in state.items()},
              str(ip_folder / "ip-adapter_sd15.safetensors"))
    return folders
