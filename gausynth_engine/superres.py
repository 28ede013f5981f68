"""Swin2SR super-resolution: batched, tiled with overlap, the processor's padding cropped exactly.

`Swin2SRImageProcessor` pads the bottom and right of every image to the next multiple of 8
(even sizes already divisible: 512 → 520). The model upscales the padded image; we keep exactly
the first H·s × W·s pixels, so the output lines up with the input (resizing 2080 → 2048, as the
reference did, shifts content by ~1.5% against the camera poses).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._errors import StageError

FIELD = "upscale.model"


@dataclass
class Upscaler:
    """A loaded Swin2SR model with the image processor it expects."""

    model: Any  # Swin2SRForImageSuperResolution, eval mode, on `device`
    processor: Any  # Swin2SRImageProcessor
    scale: int
    device: str


def load(ref: str, scale: int, device: str = "cpu",
         log: Callable[[str], None] = lambda m: None) -> Upscaler:
    """Gives the Swin2SR model `ref` (a Hugging Face id or a local folder), checked to upscale ×scale.

    Offline (HF_HUB_OFFLINE=1) a model that is not here is one StageError; online it is
    downloaded into the Hugging Face cache, and the log says so first.
    """
    import torch
    from transformers import Swin2SRForImageSuperResolution, Swin2SRImageProcessor

    from .model_refs import offline

    local_only = os.path.isdir(ref) or offline()
    if not local_only and not _cached(ref):
        log(f"Swin2SR model {ref} is not in the Hugging Face cache: downloading it now (once)")
    try:
        model = Swin2SRForImageSuperResolution.from_pretrained(ref, local_files_only=local_only)
    except OSError as e:
        how = ("the folder holds no Swin2SR config/weights" if os.path.isdir(ref) else
               f"it is not in the Hugging Face cache and this run is offline; fetch it once with "
               f"`huggingface-cli download {ref}`, or set {FIELD} to a local folder")
        raise StageError(f"{FIELD} = {ref!r}: cannot load the model: {how}") from e
    try:
        processor = Swin2SRImageProcessor.from_pretrained(ref, local_files_only=True)
    except OSError:
        processor = Swin2SRImageProcessor()  # the model card's defaults: rescale 1/255, pad to 8
    if model.config.upscale != scale:
        raise StageError(f"upscale.scale = {scale}, but {ref} upscales ×{model.config.upscale}; "
                         f"set upscale.scale = {model.config.upscale} or choose a ×{scale} model")
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Upscaler(model.to(device).eval(), processor, scale, device)


def _cached(repo: str) -> bool:
    """Gives True when the hub repository's config is already in the local cache."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, "config.json"), str)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Gives the tile origins along one axis: stride tile − overlap, the last flush with the end."""
    if length <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _ramp(length: int, fade_start: bool, fade_end: bool, overlap: int) -> np.ndarray:
    """Gives a 1-D weight [length]: linear fades of `overlap` px at the faded ends, 1 elsewhere."""
    w = np.ones(length, dtype=np.float32)
    n = min(overlap, length // 2)
    if n > 0:
        ramp = (np.arange(n, dtype=np.float32) + 0.5) / n
        if fade_start:
            w[:n] = ramp
        if fade_end:
            w[length - n :] = ramp[::-1]
    return w


def run_batch(up: Upscaler, tiles: list[np.ndarray]) -> list[np.ndarray]:
    """Gives each RGB uint8 [h, w, 3] tile upscaled to float32 [h·s, w·s, 3] in [0, 1].

    One processor pass (rescale + pad), one forward pass for the batch (tiles of one size), then
    exactly the padding is cropped away.
    """
    import torch

    h, w = tiles[0].shape[:2]
    pixels = up.processor(images=[t[..., :3] for t in tiles], return_tensors="pt",
                          input_data_format="channels_last").pixel_values
    ph, pw = pixels.shape[-2:]
    if ph < h or pw < w:
        raise RuntimeError(f"the image processor shrank {h}×{w} to {ph}×{pw}")
    with torch.inference_mode():
        out = up.model(pixel_values=pixels.to(up.device)).reconstruction
        out = out[:, :, : h * up.scale, : w * up.scale]  # the padding was added bottom/right only
        return list(out.clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy())


def upscale(up: Upscaler, images: list[np.ndarray], *, tile: int = 512, overlap: int = 32,
            batch: int = 4, on_batch: Callable[[int], None] | None = None) -> Iterator[np.ndarray]:
    """Yields each RGB uint8 [H, W, 3] image upscaled to uint8 [H·s, W·s, 3], in order.

    Images larger than `tile` (px, input side) are cut into tile × tile pieces overlapping by
    `overlap` px and blended back with linear weights over the overlaps; pieces of all images of
    one size go through the model `batch` at a time.
    """
    if any(max(im.shape[:2]) > tile for im in images) and not 0 <= overlap < tile // 2:
        raise ValueError(f"overlap {overlap} px must be ≥ 0 and under half the tile ({tile} px)")
    s = up.scale
    pending: list[tuple[int, int, int]] = []  # (image index, y, x) of each tile
    for i, img in enumerate(images):
        h, w = img.shape[:2]
        th, tw = min(tile, h), min(tile, w)
        pending += [(i, y, x) for y in tile_starts(h, th, overlap) for x in tile_starts(w, tw, overlap)]
    acc: dict[int, np.ndarray] = {}
    weight: dict[int, np.ndarray] = {}
    left = {i: 0 for i in range(len(images))}
    for i, _, _ in pending:
        left[i] += 1
    done = 0
    for b in range(0, len(pending), batch):
        chunk = pending[b : b + batch]
        # One forward pass per tile size (edge tiles of odd-sized images can differ).
        groups: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
        for i, y, x in chunk:
            h, w = images[i].shape[:2]
            groups.setdefault((min(tile, h), min(tile, w)), []).append((i, y, x))
        for (th, tw), members in groups.items():
            outs = run_batch(up, [images[i][y : y + th, x : x + tw] for i, y, x in members])
            for (i, y, x), out in zip(members, outs, strict=True):
                h, w = images[i].shape[:2]
                if i not in acc:
                    acc[i] = np.zeros((h * s, w * s, 3), np.float32)
                    weight[i] = np.zeros((h * s, w * s, 1), np.float32)
                wy = _ramp(th * s, y > 0, y + th < h, overlap * s)
                wx = _ramp(tw * s, x > 0, x + tw < w, overlap * s)
                wgt = (wy[:, None] * wx[None, :])[..., None]
                acc[i][y * s : (y + th) * s, x * s : (x + tw) * s] += out * wgt
                weight[i][y * s : (y + th) * s, x * s : (x + tw) * s] += wgt
                left[i] -= 1
        # Hand back finished images in order as soon as they are complete.
        while done < len(images) and left[done] == 0:
            result = acc.pop(done) / np.maximum(weight.pop(done), 1e-8)
            yield np.clip(np.rint(result * 255.0), 0, 255).astype(np.uint8)
            done += 1
            if on_batch:
                on_batch(done)
