"""One call from the original Gaussians and the key views to every camera's reimagined frame."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .bake import bake
from .geometry import Cameras, Geometry, render_geometry
from .keys import KeyView
from .reproject import reproject

METHODS = ("reproject", "bake", "hybrid", "flow")


@dataclass
class Carried:
    """Every camera's frame: rgb [V, H, W, 3] in 0..1 (straight, not premultiplied), alpha
    [V, H, W] (the original's silhouette), coverage [V, H, W] (1 where a key view was carried,
    0 where the fill was used), and facts for the manifest."""

    rgb: Tensor
    alpha: Tensor
    coverage: Tensor
    geometry: Geometry
    facts: dict[str, object] = field(default_factory=dict)

    def rgba_uint8(self, v: int) -> np.ndarray:
        """Gives camera v's frame as RGBA uint8 [H, W, 4]."""
        out = torch.cat([self.rgb[v], self.alpha[v][..., None]], -1).clamp(0, 1)
        return (out * 255 + 0.5).to(torch.uint8).cpu().numpy()


def straight(geometry: Geometry) -> Tensor:
    """Gives the un-premultiplied colours [V, H, W, 3] of a render (0 where alpha ≈ 0)."""
    return (geometry.rgb / geometry.alpha.clamp_min(1e-3)[..., None]).clamp(0, 1) \
        * (geometry.alpha > 1e-3)[..., None]


def nearest_keys(cams: Cameras, keys: Sequence[KeyView]) -> list[int]:
    """Gives for each camera the position in `keys` of the key whose optical axis is closest."""
    axes = cams.viewmats[:, 2, :3]  # the camera's z axis in world coordinates
    key_axes = axes[[k.index for k in keys]]
    return [int(np.argmax(key_axes @ a)) for a in axes]


FILLS = ("map", "reinhard")


def recoloured_fill(geometry: Geometry, cams: Cameras, keys: Sequence[KeyView], fill: str = "map") -> Tensor:
    """Gives every camera's original render [V, H, W, 3] (0..1) recoloured like the keys: by one
    colour map learnt from every key's pixels against the original render at its camera
    ("map": each original colour takes the restyled colour the keys gave it), or like its
    nearest key by a Reinhard Lab transfer ("reinhard")."""
    from ..propagation.colour import ColourMap, ColourTransfer

    if fill not in FILLS:
        raise ValueError(f"transfer fill {fill!r}; accepted: {', '.join(FILLS)}")
    base = (straight(geometry).cpu().numpy() * 255).astype(np.float32)
    alpha = geometry.alpha.cpu().numpy()
    pairs = []
    for k in keys:
        inside = (alpha[k.index] > 0.5) & (k.valid > 0.5)
        if inside.sum() < 16:
            inside = k.valid > 0.5
        pairs.append((base[k.index][inside], k.rgb[inside] * 255))
    if fill == "map":
        colour_map = ColourMap.learn(np.concatenate([a for a, _ in pairs]),
                                     np.concatenate([b for _, b in pairs]))
        out = np.stack([colour_map.apply(b) for b in base])
    else:
        transfers = [ColourTransfer.learn(a[None], b[None]) for a, b in pairs]
        out = np.stack([transfers[n].apply(base[v]) for v, n in enumerate(nearest_keys(cams, keys))])
    return torch.as_tensor(np.clip(out / 255.0, 0, 1), dtype=torch.float32, device=geometry.rgb.device)


def along_flow(frames: np.ndarray, keys: Sequence[KeyView], rgb: Tensor, coverage: Tensor
               ) -> tuple[Tensor, Tensor, float]:
    """Gives (rgb [V, H, W, 3] 0..1, the reprojection's `coverage` [V, H, W], the share of
    non-key pixels the flow carried): the 2D route's propagation from the key cameras' frames
    (`rgb` there: the key where it covers, the reprojection around it), filled by `rgb` where
    no flow is trusted."""
    from ..propagation import propagate

    reprojected = (rgb.clamp(0, 1) * 255).cpu().numpy().astype(np.float32)
    key_frames = {k.index: (reprojected[k.index] + 0.5).astype(np.uint8) for k in keys}
    shares: dict[int, float] = {}
    out = np.stack(list(propagate(list(frames[..., :3]), key_frames, cyclic=True, fallback=shares,
                                  fill=lambda t: reprojected[t])))
    inner = [t for t in range(len(frames)) if t not in key_frames]
    flow_share = 1.0 - float(np.mean([shares[t] for t in inner])) if inner else 0.0
    carried = torch.as_tensor(out.astype(np.float32) / 255.0, device=rgb.device)
    return carried, coverage, flow_share


def carry(params: dict[str, Tensor], cams: Cameras, keys: Sequence[KeyView], method: str,
          backend: str, *, depth_tolerance: float = 0.03, angle_power: float = 8.0,
          bake_steps: int = 200, bake_lr: float = 0.05, frames: np.ndarray | None = None,
          fill_method: str = "map", log: Callable[[str], None] | None = None,
          progress: Callable[[int, int], None] | None = None) -> Carried:
    """Gives every camera's reimagined frame by `method`: "reproject" (key views warped
    through the rendered depth, the recoloured original where no key sees), "bake" (the
    Gaussians' colours fitted to the keys, rendered), "hybrid" (reproject, the bake fills) or
    "flow" (the keys carried along optical flow between neighbouring `frames` — the original
    pictures at the cameras, uint8 [V, H, W, 3], in capture order — wherever that flow is
    trusted, the reprojection everywhere else: flow on short baselines, 3D on wide ones)."""
    if method not in METHODS:
        raise ValueError(f"transfer method {method!r}; accepted: {', '.join(METHODS)}")
    if not keys:
        raise ValueError("no key views to carry")
    if method == "flow" and (frames is None or len(frames) != len(cams)):
        raise ValueError(f"transfer method 'flow' needs the {len(cams)} original frames at the cameras")
    start = time.perf_counter()
    geometry = render_geometry(params, cams, backend)
    facts: dict[str, object] = {"method": method}
    fill = None
    if method in ("bake", "hybrid"):
        t0 = time.perf_counter()
        baked, seen = bake(params, cams, keys, backend, steps=bake_steps, lr=bake_lr, progress=progress)
        fill = straight(render_geometry(baked, cams, backend, sh_degree=0))
        facts.update(bake_seconds=round(time.perf_counter() - t0, 2),
                     gaussians_seen=round(float(seen.float().mean()), 4))
        if log:
            log(f"bake: {float(seen.float().mean()):.0%} of {len(seen)} Gaussians seen by a key "
                f"view; the rest took their neighbours' colour change")
    if method == "bake":
        rgb, coverage = fill, (geometry.alpha > 1e-3).float()
    else:
        if fill is None:
            fill = recoloured_fill(geometry, cams, keys, fill_method)
            facts["fill"] = fill_method
        rgb, coverage = reproject(geometry, cams, keys, fill, depth_tolerance=depth_tolerance,
                                  angle_power=angle_power)
    if method == "flow":
        rgb, coverage, facts["flow_share"] = along_flow(frames, keys, rgb, coverage)
        if log:
            log(f"flow: {facts['flow_share']:.0%} of the non-key pixels carried along optical flow, "
                "the rest reprojected through the original 3DGS")
    facts["seconds"] = round(time.perf_counter() - start, 2)
    return Carried(rgb, geometry.alpha, coverage, geometry, facts)
