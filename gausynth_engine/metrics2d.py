"""How far each 2D stage's frames are from the original cut-outs: SSIM, PSNR, optional LPIPS and CLIP.

These are distances from the original, not quality scores: a reimagined frame is *meant* to
differ. LPIPS and the CLIP text–image score run only when their weights are already on this
machine; otherwise they are skipped and the log says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .quality import PSNR_IDENTICAL, lpips_scorer, psnr, ssim  # noqa: F401 (the measures, re-exported)
from .resizing import resize_like

if TYPE_CHECKING:
    from ._stage import StageContext

MEANING = ("distance of each stage's frames from the original cut-outs (SSIM 1 / high PSNR / LPIPS 0 "
           "= unchanged); the reimagined frames are meant to differ: not a quality score")
CLIP_DEFAULT = "openai/clip-vit-base-patch32"


@dataclass
class ClipScorer:
    """CLIP text–image score: 100 · max(cos(image, text), 0), the images through one processor pass."""

    model: Any
    processor: Any
    device: str
    text_embeds: Any

    def __call__(self, images: list[np.ndarray]) -> list[float]:
        """Gives the score of each RGB uint8 [H, W, 3] image against the prompt."""
        import torch

        # The processor resizes, crops and normalises the raw uint8 pixels exactly once.
        pixels = self.processor(images=images, return_tensors="pt").pixel_values.to(self.device)
        with torch.inference_mode():
            emb = _as_tensor(self.model.get_image_features(pixel_values=pixels))
            emb = emb / emb.norm(dim=-1, keepdim=True)
            cos = (emb @ self.text_embeds.T).squeeze(-1)
        return [100.0 * max(float(c), 0.0) for c in cos.cpu()]


def _as_tensor(out: Any) -> Any:
    """Gives the embedding tensor whether the model returned a tensor or an output object."""
    return out if hasattr(out, "norm") else out.pooler_output


def clip_scorer(ref: str, prompt: str, device: str,
                log: Callable[[str], None]) -> ClipScorer | None:
    """Gives a CLIP scorer for `prompt` from a local folder or the HF cache, or None (said why)."""
    from .model_refs import source_kind

    if source_kind(ref) == "folder" and not os.path.isdir(os.path.expanduser(ref)):
        log(f"CLIP score skipped: blend.clip_model = {ref!r} is not a folder on this machine")
        return None
    if source_kind(ref) == "hub":
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(ref, "config.json"), str):
            log(f"CLIP score skipped: blend.clip_model = {ref!r} is not in the local Hugging Face "
                f"cache; fetch it once (`huggingface-cli download {ref}`) to get the score")
            return None
    import torch
    from transformers import CLIPModel, CLIPProcessor

    try:
        model = CLIPModel.from_pretrained(ref, local_files_only=True).to(device).eval()
        processor = CLIPProcessor.from_pretrained(ref, local_files_only=True)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        log(f"CLIP score skipped: blend.clip_model = {ref!r} is not in the local Hugging Face "
            f"cache ({first}); fetch it once to get the score")
        return None
    tokens = processor.tokenizer([prompt], padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        text = _as_tensor(model.get_text_features(**{k: v.to(device) for k, v in tokens.items()}))
        text = text / text.norm(dim=-1, keepdim=True)
    return ClipScorer(model, processor, device, text)


# --- collecting and writing -----------------------------------------------------------------------
@dataclass
class Comparison:
    """Per-frame scores of one stage's output against its reference."""

    output: str  # the folder that was scored
    reference: str  # what it was compared with
    frames: dict[str, dict[str, float]] = field(default_factory=dict)

    def mean(self) -> dict[str, float]:
        keys = sorted({k for v in self.frames.values() for k in v})
        return {k: round(float(np.mean([v[k] for v in self.frames.values() if k in v])), 5)
                for k in keys}


class Scores:
    """Collects the comparisons of one stage and writes them as that stage's metrics section."""

    def __init__(self, lpips: Callable[[np.ndarray, np.ndarray], float] | None = None,
                 clip: ClipScorer | None = None) -> None:
        self.lpips = lpips
        self.clip = clip
        self.comparisons: dict[str, Comparison] = {}
        self.clip_frames: dict[str, dict[str, float]] = {}

    def compare(self, name: str, frame: str, ref: np.ndarray, out: np.ndarray, *,
                output: str, reference: str) -> dict[str, float]:
        """Scores one frame of comparison `name`; `ref` is resized to `out` if needed."""
        row = self.measure(ref, out)
        self.add(name, frame, row, output=output, reference=reference)
        return row

    def measure(self, ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
        """Gives one frame's scores without recording them (safe in worker threads: the stages
        score frames in parallel, then `add` them in frame order)."""
        ref, out = resize_like(ref[..., :3], out), out[..., :3]
        row = {"ssim": round(ssim(ref, out), 5), "psnr": round(psnr(ref, out), 4)}
        if self.lpips is not None:
            row["lpips"] = round(self.lpips(ref, out), 5)
        return row

    def add(self, name: str, frame: str, row: dict[str, float], *, output: str, reference: str) -> None:
        """Records a row that `measure` gave for one frame of comparison `name`."""
        self.comparisons.setdefault(name, Comparison(output, reference)).frames[frame] = row

    def clip_score(self, frame: str, images: dict[str, np.ndarray]) -> None:
        """Scores several versions of one frame (named) against the prompt in one batch."""
        if self.clip is None:
            return
        values = self.clip([im[..., :3] for im in images.values()])
        self.clip_frames.setdefault(frame, {}).update(
            {k: round(v, 4) for k, v in zip(images, values, strict=True)})

    def section(self, skipped: list[str]) -> dict[str, Any]:
        """Gives this stage's part of metrics.json."""
        out: dict[str, Any] = {"meaning": MEANING, "comparisons": {
            name: {"output": c.output, "reference": c.reference, "mean": c.mean(),
                   "per_frame": c.frames} for name, c in self.comparisons.items()}}
        if self.clip_frames:
            names = sorted({k for v in self.clip_frames.values() for k in v})
            out["clip_score"] = {
                "meaning": "CLIP text–image score against reimagine.prompt (100·cosine, ≥ 0)",
                "mean": {k: round(float(np.mean([v[k] for v in self.clip_frames.values() if k in v])), 4)
                         for k in names},
                "per_frame": self.clip_frames}
        if skipped:
            out["skipped"] = skipped
        return out

    def means(self) -> dict[str, dict[str, float]]:
        """Gives {comparison: {measure: mean}} (and the CLIP means) for the manifest."""
        result = {name: c.mean() for name, c in self.comparisons.items()}
        if self.clip_frames:
            names = sorted({k for v in self.clip_frames.values() for k in v})
            result["clip_score"] = {k: round(float(np.mean(
                [v[k] for v in self.clip_frames.values() if k in v])), 4) for k in names}
        return result


def learned_scorers(ctx: StageContext, clip_model: str, prompt: str | None) -> tuple[Scores, list[str]]:
    """Gives a Scores with LPIPS/CLIP when their weights are here, and the list of what was skipped."""
    skipped: list[str] = []

    def note(message: str) -> None:
        skipped.append(message)
        ctx.log(message)

    lp = lpips_scorer(ctx.device, note)
    clip = clip_scorer(clip_model, prompt, ctx.device, note) if prompt else None
    return Scores(lp, clip), skipped


def publish(ctx: StageContext, section: str, scores: Scores, skipped: list[str]) -> None:
    """Reports the means as metrics and in the manifest, and merges `section` into metrics.json.

    metrics.json holds one section per stage; the run's copy is read and rewritten whole into the
    stage's staging folder, so other stages' sections survive the rename.
    """
    for name, means in scores.means().items():
        for measure, value in means.items():
            ctx.metric(f"{name}.{measure}", value)
    ctx.record(metrics=scores.means(), metrics_meaning=MEANING)
    write_section(ctx, section, scores.section(skipped))


def write_section(ctx: StageContext, section: str, data: dict[str, Any]) -> None:
    """Sets `section` of the run's metrics.json to `data`, keeping every other stage's section.

    The merged file is written into the stage's staging folder and renamed in with its outputs.
    """
    from ._manifest import write_json_atomic

    try:
        merged = json.loads(ctx.layout.metrics.read_text(encoding="utf-8"))
        if not isinstance(merged, dict):
            merged = {}
    except (FileNotFoundError, ValueError):
        merged = {}
    merged[section] = data
    write_json_atomic(ctx.out.metrics, merged)
