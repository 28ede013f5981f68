"""Synchronised DDIM sampling over V views (SyncTweedies' "case 2": synchronise the Tweedie x0).

At every step each view's model output gives its Tweedie estimate of the clean image x0|t; the
V estimates are projected into the shared Gaussians (their colours fitted to all of them), the
synchronised x0 is rendered back at every view, and each view continues from it:

    x_{t-1} = √ā_{t-1} · x̂0_sync + √(1 − ā_{t-1}) · ε̂_view      (DDIM, η = 0)

`space = "pixel"` decodes the estimates with the VAE, fits RGB colours, and encodes the renders
again (the paper's choice for 3DGS, exact in colour); `space = "latent"` fits C-channel latent
features on the latent grid instead and skips the VAE in the loop (≈ 8× fewer pixels, no VAE
round trips: much cheaper at 1024², but it averages latents, which the VAE decodes only
approximately linearly). Either way the last x0 is decoded and RGB colours are fitted to it, so
the reimagined 3DGS is made of the same colours that its renders show.

The model is a `Denoiser` and the image space a `Codec`, so tests run the same loop with a
stand-in whose x0 is known, and the real one runs SD-XL or SD 1.5 through diffusers' UNet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from .gaussians import Cameras, ColourFit, Geometry

SPACES = ("pixel", "latent")


class Denoiser(Protocol):
    """The diffusion model: model outputs for a chunk of views at one timestep."""

    prediction_type: str  # "epsilon" or "v_prediction"

    def __call__(self, latents: Tensor, t: Tensor, index: int, total: int, views: list[int]) -> Tensor:
        """latents [B, C, h, w] of views `views` (indices into the V views) → output [B, C, h, w]."""
        ...


class Codec(Protocol):
    """Between images [V, 3, H, W] in [0, 1] and the latents the denoiser works on."""

    channels: int
    factor: int  # image side / latent side

    def encode(self, images: Tensor) -> Tensor: ...

    def decode(self, latents: Tensor) -> Tensor: ...


class PixelCodec:
    """Pixel-space diffusion: the latent is the image itself, scaled to [-1, 1]."""

    channels = 3
    factor = 1

    def encode(self, images: Tensor) -> Tensor:
        return images * 2.0 - 1.0

    def decode(self, latents: Tensor) -> Tensor:
        return ((latents.float() + 1.0) / 2.0).clamp(0.0, 1.0)


class VaeCodec:
    """A diffusers AutoencoderKL: encodes with the posterior mean, decodes in chunks.

    SD-XL's VAE overflows in fp16, so `upcast` runs it at a wider range (None: when its config
    says `force_upcast`, as diffusers' SD-XL pipelines do; SD 1.5's VAE is fine in fp16):
    bfloat16 where the GPU has it (fp32's range at half the memory and a fraction of the time:
    the pixel mode round-trips the VAE at every step), else float32.
    """

    def __init__(self, vae: Any, *, chunk: int = 4, device: str | None = None,
                 upcast: bool | None = None) -> None:
        self.vae = vae
        if upcast is None:
            upcast = bool(getattr(vae.config, "force_upcast", False))
        if upcast and vae.dtype == torch.float16:
            wide = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
            vae.to(wide)
        self.channels = vae.config.latent_channels
        self.factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.scale = vae.config.scaling_factor
        self.shift = getattr(vae.config, "shift_factor", None) or 0.0
        self.chunk = max(1, chunk)
        self.device = device

    def _dev(self) -> torch.device:
        return torch.device(self.device) if self.device else next(self.vae.parameters()).device

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        x = (images * 2.0 - 1.0).to(self._dev(), self.vae.dtype)
        out = [self.vae.encode(x[i:i + self.chunk]).latent_dist.mean for i in range(0, len(x), self.chunk)]
        return (torch.cat(out) - self.shift) * self.scale

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        z = (latents / self.scale + self.shift).to(self._dev(), self.vae.dtype)
        out = [self.vae.decode(z[i:i + self.chunk]).sample for i in range(0, len(z), self.chunk)]
        return ((torch.cat(out).float() + 1.0) / 2.0).clamp(0.0, 1.0)


@dataclass(frozen=True)
class SyncSettings:
    steps: int = 30  # DDIM steps of a full (strength 1) run
    strength: float = 1.0  # 1 = from pure noise; < 1 = from the noised originals (img2img)
    seed: int = 0
    batch: int = 0  # views per denoiser call; 0 = all V at once
    synchronise: bool = True  # False: each view denoised on its own (the baseline)
    space: str = "pixel"
    fit_steps: int = 20  # Adam steps per synchronisation
    fit_lr: float = 0.05
    final_fit_steps: int = 200  # Adam steps fitting the RGB colours to the last x0


@dataclass
class SyncResult:
    """What one synchronised sampling made."""

    images: Tensor  # the V final images [V, H, W, 3] in [0, 1]
    colours: Tensor  # the Gaussians' final RGB [N, 3] in [0, 1]
    steps: int  # denoising steps run
    residuals: list[float] = field(default_factory=list)  # per step: MSE of x0 vs its sync render
    denoise_seconds: float = 0.0  # inside the denoiser
    sync_seconds: float = 0.0  # VAE round trips + colour fits + renders


def run_steps(steps: int, strength: float) -> int:
    """Gives how many steps run for `steps` at `strength` (diffusers' img2img rule)."""
    from ..diffusion import img2img_steps

    return img2img_steps(steps, strength)


def _sync_now() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def sample(denoiser: Denoiser, codec: Codec, scheduler: Any, geom: Geometry, cams: Cameras,
           originals: Tensor, settings: SyncSettings, *, device: str, dtype: torch.dtype = torch.float32,
           background: Tensor | None = None,
           on_progress: Callable[[int, int, int], None] | None = None) -> SyncResult:
    """Runs synchronised (or, with settings.synchronise False, independent) sampling of V views.

    geom: the original Gaussians; cams: the V cameras at the image size; originals [V, H, W, 3]
    in [0, 1]: renders of the original 3DGS (the img2img start when strength < 1). `scheduler`
    is a diffusers DDIMScheduler (its timesteps and ᾱ only). `on_progress(done, total, step)`
    hears every chunk of views at every step (done/total count view-steps).
    """
    s = settings
    if s.space not in SPACES:
        raise ValueError(f"synchronisation space {s.space!r}; accepted: {', '.join(SPACES)}")
    V = len(cams)
    bg = torch.ones(3, device=device) if background is None else background.to(device)
    rgb_fit = ColourFit(geom, cams, geom.rgb, bg, backend=_backend(device), steps=s.fit_steps, lr=s.fit_lr)
    latent_fit = None
    started = time.perf_counter()
    scheduler.set_timesteps(s.steps, device=device)
    count = run_steps(s.steps, s.strength)
    timesteps = scheduler.timesteps[len(scheduler.timesteps) - count:]
    alphas = scheduler.alphas_cumprod.to(device=device, dtype=torch.float32)
    final_alpha = float(getattr(scheduler, "final_alpha_cumprod", torch.tensor(1.0)))
    stride = scheduler.config.num_train_timesteps // s.steps
    gen = torch.Generator("cpu").manual_seed(s.seed)
    h, w = cams.height // codec.factor, cams.width // codec.factor
    noise = torch.randn((V, codec.channels, h, w), generator=gen).to(device)
    if count < s.steps:  # img2img: the originals' latents, noised to the first timestep
        init = codec.encode(originals.permute(0, 3, 1, 2).to(device)).float()
        a = alphas[timesteps[0]]
        x = a.sqrt() * init + (1 - a).sqrt() * noise
    else:
        x = noise
    if s.synchronise and s.space == "latent":
        latent_fit = _latent_fit(codec, geom, cams, originals, bg, s, device)
    result = SyncResult(images=torch.empty(0), colours=geom.rgb, steps=count)
    batch = s.batch if s.batch > 0 else V
    setup = time.perf_counter() - started
    for i, t in enumerate(timesteps):
        a_t = alphas[t]
        prev = int(t) - stride
        a_prev = alphas[prev] if prev >= 0 else torch.tensor(final_alpha, device=device)
        outputs = []
        tick = time.perf_counter()
        for lo in range(0, V, batch):
            ids = list(range(lo, min(V, lo + batch)))
            outputs.append(denoiser(x[ids].to(dtype), t, i, count, ids).float())
            if on_progress:
                on_progress(i * V + ids[-1] + 1, count * V, i)
        _sync_now()
        result.denoise_seconds += time.perf_counter() - tick
        out = torch.cat(outputs)
        x0, eps = _split(out, x, a_t, denoiser.prediction_type)
        if s.synchronise:
            tick = time.perf_counter()
            x0 = _synchronise(x0, codec, rgb_fit, latent_fit, result)
            _sync_now()
            result.sync_seconds += time.perf_counter() - tick
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    tick = time.perf_counter()
    images = codec.decode(x).permute(0, 2, 3, 1).float()
    rgb_fit.fit(images, s.final_fit_steps)
    _sync_now()
    result.sync_seconds += time.perf_counter() - tick + setup
    result.images = images
    result.colours = rgb_fit.colours.clamp(0.0, 1.0)
    return result


def _backend(device: str) -> str:
    from .gaussians import backend_for

    return backend_for(device)


def _split(out: Tensor, x: Tensor, a_t: Tensor, prediction_type: str) -> tuple[Tensor, Tensor]:
    """Gives (x0, ε) from a model output: Tweedie's estimate of the clean latent, and the noise."""
    if prediction_type == "epsilon":
        eps = out
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    elif prediction_type == "v_prediction":
        x0 = a_t.sqrt() * x - (1 - a_t).sqrt() * out
        eps = a_t.sqrt() * out + (1 - a_t).sqrt() * x
    else:
        raise ValueError(f"prediction type {prediction_type!r}; accepted: epsilon, v_prediction")
    return x0, eps


def _synchronise(x0: Tensor, codec: Codec, rgb_fit: ColourFit, latent_fit: ColourFit | None,
                 result: SyncResult) -> Tensor:
    """Gives the synchronised x0 [V, C, h, w]: the renders of colours fitted to all V estimates."""
    if latent_fit is not None:
        renders = latent_fit.fit(x0.permute(0, 2, 3, 1))
        result.residuals.append(latent_fit.residual)
        return renders.permute(0, 3, 1, 2).to(x0)
    images = codec.decode(x0).permute(0, 2, 3, 1)
    renders = rgb_fit.fit(images)
    result.residuals.append(rgb_fit.residual)
    return codec.encode(renders.permute(0, 3, 1, 2)).float()


def _latent_fit(codec: Codec, geom: Geometry, cams: Cameras, originals: Tensor, bg: Tensor,
                s: SyncSettings, device: str) -> ColourFit:
    """Gives the latent-feature fit on the latent grid, started from the originals' latents."""
    small = cams.scaled(1.0 / codec.factor)
    white = bg[None, :, None, None].expand(1, 3, cams.height, cams.width)
    bg_latent = codec.encode(white).float().mean(dim=(2, 3))[0]
    start = torch.zeros(len(geom), codec.channels, device=device)
    fit = ColourFit(geom, small, start, bg_latent, backend=_backend(device), steps=s.fit_steps, lr=s.fit_lr)
    target = codec.encode(originals.permute(0, 3, 1, 2).to(device)).float().permute(0, 2, 3, 1)
    fit.fit(target, s.final_fit_steps)
    return fit
