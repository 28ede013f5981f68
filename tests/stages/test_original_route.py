"""The original route end to end on CPU: a user's turn-around goes preprocess → sfm → mask →
splat_orig through the real engine and comes back as a 3DGS that renders the held-out views."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import small_overrides

from gausynth_engine import Orchestrator, RunLayout, StageFailed, make_plan, parse_preset
from gausynth_engine._manifest import read_manifest
from gausynth_engine._stage import StageContext
from gausynth_engine.stages import splat


def run_until_mask(root: Path, overrides: list[str]) -> tuple[RunLayout, object]:
    preset = parse_preset("", "test", overrides)
    layout = RunLayout.for_run(root / preset.run.outputs_root, preset.run.directory)
    events: list = []
    status = Orchestrator(preset, layout, on_event=events.append).run(make_plan(preset, layout, until="mask"))
    assert status == "done", [e.error for e in events if isinstance(e, StageFailed)]
    return layout, preset


def train_short(layout: RunLayout, preset, iterations: int, downscale: int) -> dict:
    """splat_orig in-process, shorter than a preset allows (the CPU rasterizer is slow)."""
    import torch

    torch.set_num_threads(1)
    small = dataclasses.replace(preset.splat, iterations=iterations, eval_at=(1, iterations),
                                downscale=downscale, checkpoint_every=10_000, sh_degree=1)
    preset = dataclasses.replace(preset, splat=small)
    ctx = StageContext(splat.STAGE_ORIG, preset, layout, layout.staging_for("splat_orig"),
                       lambda e: None, "cpu")
    splat.STAGE_ORIG.run(ctx)
    gs = ctx.out.root / ctx.record_data["folder"]
    return {**ctx.record_data, "results": json.loads((gs / "results.json").read_text())}


@pytest.mark.slow
def test_the_sample_goes_from_video_to_a_masked_3dgs(tmp_path: Path, sample_video: Path) -> None:
    layout, preset = run_until_mask(tmp_path, small_overrides(sample_video, **{
        "run.pipeline": "original", "mask.method": "sfm", "preprocess.num_frames": 24,
        "preprocess.colmap_size": 240}))
    mask = read_manifest(layout, "mask")["record"]
    assert mask["method"] == "sfm" and 0.05 < mask["coverage"]["mean"] < 0.6
    assert read_manifest(layout, "preprocess")["record"]["sfm_size"] == [240, 180]
    result = train_short(layout, preset, iterations=200, downscale=3)
    assert result["masked"] and result["size"][0] < 100  # undistorted, then shrunk 3×
    start, final = (result["results"]["evaluations"][f"ours_{s}"] for s in (1, 200))
    assert final["psnr"] > 18.5 and final["object_psnr"] > 16.0, final
    assert final["object_psnr"] > start["object_psnr"] + 4.0, (start, final)


@pytest.mark.slow
def test_kermit_real_photos_go_to_a_3dgs(tmp_path: Path, shared_data: Path) -> None:
    layout, preset = run_until_mask(tmp_path, [
        f"run.input='{shared_data / 'kermit' / 'images'}'", "run.directory='kermit'",
        "run.pipeline='original'", "run.device='cpu'", "preprocess.num_frames=0",
        "preprocess.colmap_size=320", "mask.method='sfm'"])
    assert read_manifest(layout, "sfm")["record"]["registered"] == 11
    result = train_short(layout, preset, iterations=200, downscale=4)
    start, final = (result["results"]["evaluations"][f"ours_{s}"] for s in (1, 200))
    assert final["psnr"] > 14.5 and final["object_psnr"] > 11.0, final
    assert final["psnr"] > start["psnr"] + 3.0, (start, final)
