"""metrics2d: a user reads in metrics.json how far each 2D stage moved the frames away from the
original cut-outs, and a CLIP score against the prompt when CLIP is on their machine."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gausynth_engine import metrics2d
from gausynth_engine.metrics2d import Scores, psnr, ssim


def test_psnr_and_ssim_have_their_textbook_values() -> None:
    a = np.full((32, 32, 3), 100, np.uint8)
    b = a + 10
    assert psnr(a, a) == metrics2d.PSNR_IDENTICAL and ssim(a, a) == pytest.approx(1.0)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100))
    # Flat images: only SSIM's luminance term is left, (2·μx·μy + c1) / (μx² + μy² + c1).
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 48, 3)).astype(np.uint8)
    noisy = [np.clip(image + rng.normal(0, s, image.shape), 0, 255).astype(np.uint8) for s in (5, 20, 60)]
    scores = [ssim(image, n) for n in noisy]
    assert scores == sorted(scores, reverse=True) and ssim(image, noisy[1]) == pytest.approx(
        ssim(noisy[1], image))


def test_scores_compare_at_the_outputs_size_and_publish_per_stage_sections(tmp_path: Path) -> None:
    from gausynth_engine import RunLayout, StageContext, parse_preset
    from gausynth_engine.stages import BY_ID

    layout, out = RunLayout(tmp_path / "run"), RunLayout(tmp_path / "staged")
    layout.root.mkdir()
    layout.metrics.write_text(json.dumps({"splat_orig": {"psnr": 31.0}, "blend": {"old": True}}))
    events: list[dict] = []
    ctx = StageContext(BY_ID["blend"], parse_preset("", "t", []), layout, out, events.append, "cpu")
    scores = Scores()
    big = np.full((64, 64, 3), 120, np.uint8)
    small = np.full((16, 16, 3), 120, np.uint8)
    row = scores.compare("blend", "0000.png", big, small, output="blend_transparent", reference="orig")
    assert row == {"ssim": 1.0, "psnr": metrics2d.PSNR_IDENTICAL}  # ref resized to the output
    scores.compare("blend", "0001.png", small, small // 2, output="blend_transparent", reference="orig")
    metrics2d.publish(ctx, "blend", scores, ["LPIPS skipped: the lpips package is not installed"])

    data = json.loads(out.metrics.read_text())
    assert data["splat_orig"] == {"psnr": 31.0}  # other stages' sections are kept...
    section = data["blend"]  # ...and ours replaced whole
    assert "old" not in section and "distance" in section["meaning"]
    comp = section["comparisons"]["blend"]
    assert list(comp["per_frame"]) == ["0000.png", "0001.png"]
    assert comp["mean"]["psnr"] == pytest.approx((100 + comp["per_frame"]["0001.png"]["psnr"]) / 2,
                                                 abs=1e-3)
    assert section["skipped"] == ["LPIPS skipped: the lpips package is not installed"]
    assert {e["name"] for e in events if e["type"] == "metric"} == {"blend.ssim", "blend.psnr"}
    assert ctx.record_data["metrics"]["blend"] == comp["mean"]


def test_learned_metrics_are_skipped_and_said_so_without_weights(tmp_path: Path) -> None:
    said: list[str] = []
    lp = metrics2d.lpips_scorer("cpu", said.append)
    clip = metrics2d.clip_scorer(str(tmp_path / "no-clip"), "a teapot", "cpu", said.append)
    assert clip is None and "CLIP score skipped" in said[-1] and "no-clip" in said[-1]
    if lp is None:
        assert said[0].startswith("LPIPS skipped:")
    hub = metrics2d.clip_scorer("openai/clip-vit-no-such-model", "a teapot", "cpu", said.append)
    assert hub is None and "not in the local Hugging Face cache" in said[-1]


def save_tiny_clip(folder: Path) -> Path:
    """Saves a tiny random CLIP (32-wide, one layer, 32 px images) with a byte-level tokenizer."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    chars = [chr(b) for b in printable] + [chr(256 + n) for n in range(256 - len(printable))]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": 256 + i for i, c in enumerate(chars)})
    bos, eos = len(vocab), len(vocab) + 1
    vocab.update({"<|startoftext|>": bos, "<|endoftext|>": eos})
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, bos_token_id=bos, eos_token_id=eos, pad_token_id=eos),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=16)
    CLIPModel(config).save_pretrained(folder)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def test_clip_score_sees_each_image_through_one_processor_pass(tmp_path: Path) -> None:
    scorer = metrics2d.clip_scorer(str(save_tiny_clip(tmp_path / "clip")), "a red teapot", "cpu", print)
    assert scorer is not None
    seen: list[list[np.ndarray]] = []
    processor = scorer.processor

    class Spy:
        def __call__(self, images: list[np.ndarray], **kw: object) -> object:
            seen.append(images)
            return processor(images=images, **kw)

    scorer.processor = Spy()
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (64, 64, 3)).astype(np.uint8), np.full((40, 72, 3), 200, np.uint8)]
    values = scorer(images)
    assert len(values) == 2 and all(0.0 <= v <= 100.0 for v in values)
    # Raw uint8 pixels go in once: the processor alone rescales (the reference scaled twice).
    assert len(seen) == 1 and all(im.dtype == np.uint8 for im in seen[0])
    import torch

    pixels = processor(images=images, return_tensors="pt").pixel_values
    with torch.inference_mode():
        emb = metrics2d._as_tensor(scorer.model.get_image_features(pixel_values=pixels))
        emb = emb / emb.norm(dim=-1, keepdim=True)
    expected = [100 * max(float(c), 0.0) for c in (emb @ scorer.text_embeds.T).squeeze(-1)]
    assert values == pytest.approx(expected, abs=1e-4)
