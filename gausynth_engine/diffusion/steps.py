"""The per-step callback: progress, the IP-Adapter's stop-at, and previews of the current estimate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .preview import latent_to_rgb


def img2img_steps(steps: int, strength: float) -> int:
    """Gives how many denoising steps img2img runs for `steps` at `strength` (as diffusers does)."""
    init = min(steps * strength, steps)
    return steps - int(max(steps - init, 0))


def guided_steps(index: int, total: int, stop: float) -> bool:
    """Gives whether step `index` (0-based) of `total` is still guided for a stop-at fraction.

    The same rule as diffusers' `control_guidance_end`: step i is guided while (i + 1) / total
    ≤ stop, so stop = 1 guides every step and stop = 0.5 the first half.
    """
    return (index + 1) / total <= stop + 1e-9


class StepHooks:
    """The `callback_on_step_end` of one pipeline call.

    After each step it reports progress, switches the IP-Adapter's scale to 0 once its stop-at
    fraction is passed (its image tokens then add nothing), and every `preview_every` steps hands
    a small RGB preview of the current estimate of the clean image to `on_preview`.
    """

    def __init__(self, total: int, *, ip_weight: float = 0.0, ip_stop: float = 1.0,
                 on_step: Callable[[int, int], None] | None = None,
                 on_preview: Callable[[np.ndarray], None] | None = None,
                 preview_every: int = 5) -> None:
        self.total = total  # steps this call runs (img2img_steps)
        self.ip_weight = ip_weight  # 0: no IP-Adapter is loaded
        self.ip_stop = ip_stop
        self.on_step = on_step
        self.on_preview = on_preview
        self.preview_every = max(1, preview_every)
        self._ip_scale: float | None = None

    def start(self, pipe: Any) -> None:
        """Sets the IP-Adapter scale for the first step; call just before the pipeline."""
        self._ip_scale = None
        self._set_ip(pipe, 0)

    def __call__(self, pipe: Any, index: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        done = index + 1
        self._set_ip(pipe, done)
        if self.on_step:
            self.on_step(done, self.total)
        if self.on_preview and (done % self.preview_every == 0 or done == self.total):
            self.on_preview(latent_to_rgb(_estimate(pipe, kwargs["latents"])))
        return kwargs

    def _set_ip(self, pipe: Any, next_index: int) -> None:
        if self.ip_weight <= 0 or next_index >= self.total:
            return
        scale = self.ip_weight if guided_steps(next_index, self.total, self.ip_stop) else 0.0
        if scale != self._ip_scale:
            pipe.set_ip_adapter_scale(scale)
            self._ip_scale = scale


def _estimate(pipe: Any, latents: Any) -> Any:
    """Gives the scheduler's latest estimate of the clean latent, else the noisy latent itself.

    DPM-Solver++ keeps its converted model outputs, which are exactly the x0 predictions.
    """
    outputs = getattr(pipe.scheduler, "model_outputs", None)
    last = outputs[-1] if outputs else None
    if last is not None and getattr(last, "shape", None) == latents.shape:
        return last
    return latents
