"""SD-XL img2img in-process through diffusers: building the pipeline, and hooks into its steps.

`pipeline.py` loads and places the models (fp16 on the GPU, a low-VRAM mode) and releases them;
`steps.py` is the per-step callback (progress, IP-Adapter stop-at, previews); `preview.py` turns
a latent estimate into a small RGB picture without the VAE.
"""

from .pipeline import IpAdapterSource, PipelineSources, loaded_pipeline
from .steps import StepHooks, guided_steps, img2img_steps

__all__ = ["IpAdapterSource", "PipelineSources", "StepHooks", "guided_steps", "img2img_steps",
           "loaded_pipeline"]
