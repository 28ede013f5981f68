"""reimagine: SD-XL img2img of the model sheet (ControlNet canny + IP-Adapter), in-process."""

from __future__ import annotations

from dataclasses import dataclass

from .._params import param
from .._stage import Stage
from ._common import off_without_reimagine

CHECKPOINTS = {
    "juggernaut-xl-v9": "RunDiffusion/Juggernaut-XL-v9",
    "realistic-stock-photo-v2": "stablediffusionapi/realistic-stock-photo-v2",
}


@dataclass(frozen=True)
class Params:
    prompt: str = param("a colourful hand-painted ceramic figurine, studio photo, high detail",
                        "What the object should become.")
    negative_prompt: str = param("blurry, lowres, deformed, watermark, text",
                                 "What the result should avoid.")
    style: str = param("none", "Prompt template wrapped around the prompt.",
                       choices=("none", "sharp-cinematic"))
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
    ip_adapter_weight: float = param(0.6, "IP-Adapter scale; 0 switches it off.", min=0.0, max=2.0)
    ip_adapter_stop: float = param(0.8, "Fraction of the steps after which the image prompt is dropped.",
                                   min=0.0, max=1.0)
    sheet_size: int = param(1024, "Side of the sheet as the diffusion model sees it, in pixels.",
                            min=256, max=2048)
    candidates: int = param(1, "How many reimagined sheets to make (each with its own seed).",
                            min=1, max=8)
    low_vram: bool = param(False, "Model CPU offload and VAE tiling, to fit a 1024² sheet in 12 GB.")


STAGE = Stage(
    id="reimagine",
    title="Reimagine the sheet",
    section="reimagine",
    after=("sheet",),
    outputs=("reimagine_sheets",),
    version=1,
    run=None,
    gpu=True,
    off_when=off_without_reimagine,
    pending_issue="issue 3",
)
