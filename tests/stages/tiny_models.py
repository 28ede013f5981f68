"""Random SD-XL, canny ControlNet, IP-Adapter and CLIP image encoder, saved like the real ones.

`save_tiny_models(root)` builds tiny versions for CPU tests; `save_random_models(root, configs)`
builds any size from config dicts (the benchmark passes the real architectures' configs). The
folders mirror the public repositories, so the stage's default subfolder and file names work:

    root/sdxl/        a diffusers SD-XL pipeline (model_index.json, unet/, vae/, text_encoder*/, ...)
    root/controlnet/  config.json + diffusion_pytorch_model.safetensors
    root/ip_adapter/sdxl_models/ip-adapter_sdxl.safetensors + image_encoder/
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

IP_TOKENS = 4  # image tokens of the plain SD-XL IP-Adapter


@dataclass(frozen=True)
class ModelFolders:
    checkpoint: Path
    controlnet: Path
    ip_adapter: Path


# Tiny architectures that keep SD-XL's constraints: the UNet's cross-attention width = both text
# encoders' widths summed; its added-embedding input = 6 × time-embedding + text encoder 2's
# projection; the ControlNet's conditioning embedding downsamples by the VAE's factor (8).
TINY: dict[str, dict[str, Any]] = {
    "unet": dict(block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4,
                 out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
                 use_linear_projection=True, addition_embed_type="text_time",
                 addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
                 projection_class_embeddings_input_dim=80, cross_attention_dim=64,
                 norm_num_groups=16),
    "controlnet": dict(conditioning_embedding_out_channels=(8, 8, 8, 8)),  # + the UNet's own
    "vae": dict(block_out_channels=(16, 16, 16, 16), in_channels=3, out_channels=3,
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                latent_channels=4, norm_num_groups=8, layers_per_block=1, sample_size=64,
                scaling_factor=0.13025),
    "text_encoder": dict(bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=32,
                         intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                         vocab_size=1000, hidden_act="gelu", projection_dim=32,
                         max_position_embeddings=77),
    "text_encoder_2": dict(bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=32,
                           intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                           vocab_size=1000, hidden_act="gelu", projection_dim=32,
                           max_position_embeddings=77),
    "image_encoder": dict(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                          num_hidden_layers=2, image_size=32, patch_size=8, projection_dim=32),
    "scheduler": dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                      num_train_timesteps=1000, steps_offset=1, timestep_spacing="leading"),
}


def byte_tokenizer() -> Any:
    """Gives a CLIP tokenizer over single bytes (~520 entries): enough to drive any text encoder."""
    from transformers import CLIPTokenizer

    # GPT-2's printable stand-ins for the 256 byte values, as byte-level BPE vocabularies use.
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    chars = [chr(b) if b in keep else chr(next(extra)) for b in range(256)]
    tokens = ["<|startoftext|>", "!", "<|endoftext|>"]  # ids 0, 1, 2: bos, pad, eos as configured
    tokens += [t for c in chars for t in (c, c + "</w>") if t not in tokens]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[],
                         bos_token="<|startoftext|>", eos_token="<|endoftext|>",
                         pad_token="<|endoftext|>", unk_token="<|endoftext|>", model_max_length=77)


def ip_adapter_state(unet: Any, image_embed_dim: int, tokens: int = IP_TOKENS) -> dict[str, Any]:
    """Gives random IP-Adapter weights for `unet` with the flat keys of the public safetensors.

    image_proj maps one CLIP image embedding [image_embed_dim] to `tokens` cross-attention
    tokens; each cross-attention layer k = 1, 3, 5, … (diffusers' numbering over
    `unet.attn_processors`) gets to_k_ip / to_v_ip shaped like its own to_k / to_v.
    """
    import torch

    cross = unet.config.cross_attention_dim
    g = torch.Generator().manual_seed(7)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.05

    state = {"image_proj.proj.weight": rand(tokens * cross, image_embed_dim),
             "image_proj.proj.bias": rand(tokens * cross),
             "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        attn = unet.get_submodule(name.removesuffix(".processor"))
        state[f"ip_adapter.{key}.to_k_ip.weight"] = rand(*attn.to_k.weight.shape)
        state[f"ip_adapter.{key}.to_v_ip.weight"] = rand(*attn.to_v.weight.shape)
        key += 2
    return state


def save_random_models(root: Path, configs: dict[str, dict[str, Any]], *, dtype: Any = None,
                       device: str = "cpu", seed: int = 0) -> ModelFolders:
    """Builds SD-XL + ControlNet + IP-Adapter + image encoder with random weights; saves them.

    `configs` holds keyword dicts for: unet, controlnet (a full ControlNetModel config, or extra
    arguments for `ControlNetModel.from_unet`), vae, text_encoder, text_encoder_2,
    image_encoder (CLIP configs) and scheduler (EulerDiscreteScheduler, SD-XL's default).
    """
    import torch
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from safetensors.torch import save_file
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    dtype = dtype or torch.float32
    root = Path(root)
    folders = ModelFolders(root / "sdxl", root / "controlnet", root / "ip_adapter")
    torch.manual_seed(seed)

    def clean(cfg: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in cfg.items() if not k.startswith("_") and k != "architectures"}

    with torch.device(device):
        unet = UNet2DConditionModel.from_config(clean(configs["unet"]))
        cn_cfg = clean(configs["controlnet"])
        if "block_out_channels" in cn_cfg:
            controlnet = ControlNetModel.from_config(cn_cfg)
        else:
            controlnet = ControlNetModel.from_unet(unet, **cn_cfg)
        vae = AutoencoderKL.from_config(clean(configs["vae"]))
        te1 = CLIPTextModel(CLIPTextConfig(**clean(configs["text_encoder"])))
        te2 = CLIPTextModelWithProjection(CLIPTextConfig(**clean(configs["text_encoder_2"])))
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**clean(configs["image_encoder"])))
    # A fresh ControlNet's output convolutions start at zero (it would change nothing): wake them.
    with torch.no_grad():
        for param in controlnet.parameters():
            if not param.any():
                param.normal_(0.0, 0.02)
    if dtype != torch.float32:
        for m in (unet, controlnet, vae, te1, te2, encoder):
            m.to(dtype)
    tokenizer = byte_tokenizer()
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tokenizer, tokenizer_2=tokenizer,
        unet=unet, scheduler=EulerDiscreteScheduler.from_config(clean(configs["scheduler"])))
    pipe.save_pretrained(folders.checkpoint)
    controlnet.save_pretrained(folders.controlnet)
    ip_folder = folders.ip_adapter / "sdxl_models"
    encoder.save_pretrained(ip_folder / "image_encoder")
    state = ip_adapter_state(unet, encoder.config.projection_dim)
    save_file({k: v.to(dtype).contiguous() for k, v in state.items()},
              str(ip_folder / "ip-adapter_sdxl.safetensors"))
    return folders


def save_tiny_models(root: Path) -> ModelFolders:
    """Builds and saves the tiny random models (a second or two on CPU, ~1 MB)."""
    return save_random_models(root, TINY)


def save_tiny_swin2sr(folder: Path, scale: int, *, nearest: bool = False) -> Path:
    """Saves a tiny random Swin2SR (embed 16, depths [2, 2], window 8) with its processor.

    nearest=True sets the weights so that the model is exactly nearest-neighbour upscaling: the
    body's contribution is zeroed, the first convolution copies the colours through and the
    pixel-shuffle convolution repeats each colour into its s × s block.
    """
    import torch
    from transformers import Swin2SRConfig, Swin2SRForImageSuperResolution, Swin2SRImageProcessor

    torch.manual_seed(0)
    config = Swin2SRConfig(embed_dim=16, depths=[2, 2], num_heads=[2, 2], window_size=8,
                           upscale=scale, upsampler="pixelshuffledirect", image_size=32)
    model = Swin2SRForImageSuperResolution(config).eval()
    if nearest:
        with torch.no_grad():
            body = model.swin2sr
            body.conv_after_body.weight.zero_()
            body.conv_after_body.bias.zero_()
            body.first_convolution.weight.zero_()
            body.first_convolution.bias.zero_()
            up = model.upsample.conv
            up.weight.zero_()
            up.bias.zero_()
            for c in range(3):
                body.first_convolution.weight[c, c, 1, 1] = 1.0
                for k in range(scale * scale):
                    up.weight[c * scale * scale + k, c, 1, 1] = 1.0
    model.save_pretrained(folder)
    Swin2SRImageProcessor().save_pretrained(folder)
    return folder
