"""The shared 3D representation: the original 3DGS's fixed geometry with colours fitted to views.

Synchronisation keeps every Gaussian where the original 3DGS put it (means, rotations, scales,
opacities) and fits only its colour, a C-vector (RGB, or the VAE's latent channels), so that the
renders match the V views' clean-image estimates in the least-squares sense. The renders then
agree across views by construction: one colour per Gaussian, seen from V cameras.

Rendering uses the backends of `splatting/rasterize.py`: gsplat's CUDA rasterizer on a GPU, our
pure-PyTorch compositor (`splatting/rasterize_torch.py`) on the CPU. Colours are rendered as
plain features (gsplat's `sh_degree=None`), which is what degree-0 SH colours amount to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..quality import psnr_of_mse
from ..splatting.model import SH_C0, rgb_to_sh


@dataclass(frozen=True)
class Cameras:
    """V pinhole cameras of one size: viewmats [V, 4, 4] world→camera (OpenCV), Ks [V, 3, 3] px."""

    viewmats: Tensor
    Ks: Tensor
    width: int
    height: int

    def __len__(self) -> int:
        return len(self.viewmats)

    def subset(self, ids: list[int]) -> Cameras:
        return Cameras(self.viewmats[ids], self.Ks[ids], self.width, self.height)

    def scaled(self, factor: float) -> Cameras:
        """Gives the same cameras at a size × factor (e.g. 1/8 for a VAE's latent grid)."""
        Ks = self.Ks.clone()
        Ks[:, :2] *= factor
        return Cameras(self.viewmats, Ks, round(self.width * factor), round(self.height * factor))


@dataclass(frozen=True)
class Geometry:
    """The fixed part of the Gaussians, activated: means [N, 3], quats [N, 4], scales [N, 3]
    (world units), opacities [N] in [0, 1]; `rgb` [N, 3] their original degree-0 colours."""

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    rgb: Tensor

    @classmethod
    def from_ply(cls, raw: dict[str, np.ndarray], device: str) -> Geometry:
        """Gives the geometry of raw PLY Gaussians (`splatting.ply.read_ply`'s dict)."""
        def t(x: np.ndarray) -> Tensor:
            return torch.as_tensor(np.asarray(x, np.float32), device=device)

        rgb = torch.clamp(t(raw["sh0"]).reshape(-1, 3) * SH_C0 + 0.5, 0.0, 1.0)
        return cls(t(raw["means"]), t(raw["quats"]), torch.exp(t(raw["scales"])),
                   torch.sigmoid(t(raw["opacities"]).reshape(-1)), rgb)

    def __len__(self) -> int:
        return len(self.means)

    def to_ply(self, raw: dict[str, np.ndarray], rgb: Tensor) -> dict[str, np.ndarray]:
        """Gives PLY Gaussians: the raw geometry of `raw` with colours rgb [N, 3] (degree 0)."""
        out = {k: v for k, v in raw.items() if k != "shN"}
        out["sh0"] = rgb_to_sh(rgb.detach().float().clamp(0, 1)).cpu().numpy()[:, None, :]
        return out


def backend_for(device: str) -> str:
    from ..splatting.rasterize import pick_backend

    return pick_backend(device)


def render_features(geom: Geometry, features: Tensor, cams: Cameras, background: Tensor | None,
                    backend: str) -> tuple[Tensor, Tensor]:
    """Gives (image [V, H, W, C], alpha [V, H, W, 1]) of per-Gaussian features [N, C].

    background [C] fills what the Gaussians leave uncovered (None: zeros, premultiplied).
    """
    if backend == "gsplat":
        from gsplat import rasterization

        bg = None if background is None else background[None].expand(len(cams), -1)
        image, alpha, _ = rasterization(geom.means, geom.quats, geom.scales, geom.opacities, features,
                                        cams.viewmats, cams.Ks, cams.width, cams.height,
                                        sh_degree=None, backgrounds=bg, packed=False)
        return image, alpha
    if backend == "torch":
        from ..splatting.rasterize_torch import composite, project

        radii, means2d, depths, conics = project(geom.means, geom.quats, geom.scales, cams.viewmats,
                                                 cams.Ks, cams.width, cams.height)
        images, alphas = [], []
        for c in range(len(cams)):
            image, alpha = composite(means2d[c], conics[c], features, geom.opacities, depths[c],
                                     radii[c], cams.width, cams.height, background)
            images.append(image)
            alphas.append(alpha)
        return torch.stack(images), torch.stack(alphas)
    raise ValueError(f"rasterizer backend {backend!r}; accepted: 'gsplat', 'torch'")


@torch.no_grad()
def render_depth(geom: Geometry, cams: Cameras, backend: str) -> tuple[Tensor, Tensor]:
    """Gives (expected depth [V, H, W] in world units, 0 where empty; alpha [V, H, W])."""
    if backend == "gsplat":
        from gsplat import rasterization

        rgb0 = torch.zeros(len(geom), 1, device=geom.means.device)
        depth, alpha, _ = rasterization(geom.means, geom.quats, geom.scales, geom.opacities, rgb0,
                                        cams.viewmats, cams.Ks, cams.width, cams.height,
                                        sh_degree=None, render_mode="ED", packed=False)
        return depth[..., -1] * (alpha[..., 0] > 1e-3), alpha[..., 0]
    from ..splatting.rasterize_torch import composite, project

    radii, means2d, depths, conics = project(geom.means, geom.quats, geom.scales, cams.viewmats,
                                             cams.Ks, cams.width, cams.height)
    out, alphas = [], []
    for c in range(len(cams)):
        acc, alpha = composite(means2d[c], conics[c], depths[c][:, None], geom.opacities, depths[c],
                               radii[c], cams.width, cams.height)
        out.append(torch.where(alpha > 1e-3, acc / alpha.clamp_min(1e-3), 0.0)[..., 0])
        alphas.append(alpha[..., 0])
    return torch.stack(out), torch.stack(alphas)


def disparity_map(depth: Tensor, alpha: Tensor) -> Tensor:
    """Gives a depth ControlNet's input [V, H, W] in [0, 1]: near = bright, background = 0.

    Inverse depth, stretched per view over the object's own range (MiDaS-like, as the public
    depth ControlNets were trained on), blended out where the object's coverage fades.
    """
    out = torch.zeros_like(depth)
    for v in range(len(depth)):
        fg = alpha[v] > 0.5
        if not fg.any():
            continue
        inv = torch.where(depth[v] > 0, 1.0 / depth[v].clamp_min(1e-6), 0.0)
        lo, hi = inv[fg].min(), inv[fg].max()
        span = (hi - lo).clamp_min(1e-6)
        out[v] = (0.1 + 0.9 * ((inv - lo) / span).clamp(0, 1)) * alpha[v].clamp(0, 1)
    return out


class ColourFit:
    """Colours of the fixed Gaussians, fitted by Adam to V target images; warm-started each time.

    `colours` [N, C] starts from `initial`; `fit(targets)` runs `steps` Adam steps of the mean
    squared error between the renders (over `background`) and targets [V, H, W, C], and gives
    the renders of the fitted colours. Gaussians no view sees keep their colours.
    """

    def __init__(self, geom: Geometry, cams: Cameras, initial: Tensor, background: Tensor, *,
                 backend: str, steps: int, lr: float) -> None:
        self.geom, self.cams, self.backend = geom, cams, backend
        self.background = background.to(initial)
        self.colours = initial.detach().clone().float()
        self.steps, self.lr = steps, lr
        self.residual = float("nan")  # mean squared error of the last fit, after it

    def render(self, colours: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Gives (image [V, H, W, C], alpha [V, H, W, 1]) of the current (or given) colours."""
        return render_features(self.geom, self.colours if colours is None else colours, self.cams,
                               self.background, self.backend)

    def fit(self, targets: Tensor, steps: int | None = None) -> Tensor:
        """Fits the colours to targets [V, H, W, C]; gives the renders [V, H, W, C] after it."""
        targets = targets.detach().float()
        colours = torch.nn.Parameter(self.colours.clone())
        optimizer = torch.optim.Adam([colours], lr=self.lr)
        with torch.enable_grad():
            for _ in range(self.steps if steps is None else steps):
                image, _ = render_features(self.geom, colours, self.cams, self.background, self.backend)
                loss = torch.mean((image - targets) ** 2)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        self.colours = colours.detach()
        with torch.no_grad():
            renders = self.render()[0]
            self.residual = float(torch.mean((renders - targets) ** 2))
            return renders


def consistency_psnr(images: Tensor, geom: Geometry, cams: Cameras, mask: Tensor, *, backend: str,
                     steps: int = 150, lr: float = 0.05) -> float:
    """Gives how well ONE colour per Gaussian explains V images [V, H, W, 3] in [0, 1]: the PSNR
    (dB) between the images and the renders of colours fitted to all of them, inside mask
    [V, H, W] (the object). Views that agree in 3D score high; views that disagree cannot be
    explained by one set of colours and score low. The fit starts from grey, not from any
    colours the process made, so it measures the images alone."""
    grey = torch.full((len(geom), 3), 0.5, device=images.device)
    background = torch.ones(3, device=images.device)
    fit = ColourFit(geom, cams, grey, background, backend=backend, steps=steps, lr=lr)
    renders = fit.fit(images)
    m = mask[..., None].expand_as(images).float()
    mse = float(((renders - images) ** 2 * m).sum() / m.sum().clamp_min(1.0))
    return psnr_of_mse(mse)
