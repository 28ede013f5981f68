"""mask: a user's object is cut out of every frame, with or without background-removal weights,
and a turntable capture — the object turning before a fixed backdrop — trains a clean 3DGS."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from gausynth_engine import StageError, parse_preset
from gausynth_engine._media import list_images, read_image
from gausynth_engine._stage import StageContext
from gausynth_engine.stages import mask, splat
from tests.stages.turntable import make_turntable_run

SIZE = 40


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def run_stage(stage, preset, layout, events: list | None = None) -> StageContext:
    ctx = StageContext(stage, preset, layout, layout.staging_for(stage.id),
                       (events if events is not None else []).append, "cpu")
    stage.run(ctx)
    return ctx


def promote(ctx: StageContext, layout) -> None:
    """Moves a stage's staged outputs into the run folder and writes its manifest's record, as
    the orchestrator does."""
    import shutil

    from gausynth_engine._manifest import write_json_atomic

    for out in ctx.stage.outputs:
        src = ctx.out.root / out
        if src.exists():
            (layout.root / out).parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(layout.root / out, ignore_errors=True)
            src.replace(layout.root / out)
    write_json_atomic(layout.manifest(ctx.stage.id), {"stage": ctx.stage.id, "fingerprint": "test",
                                                      "record": ctx.record_data})


@pytest.fixture(scope="module")
def turntable(tmp_path_factory: pytest.TempPathFactory):
    return make_turntable_run(tmp_path_factory.mktemp("turntable"), views=12, size=SIZE)


def test_without_weights_the_sfm_points_and_the_static_backdrop_cut_the_object_out(turntable):
    layout, truth = turntable
    preset = parse_preset("", "test", ["run.pipeline='original'", "mask.method='sfm'"])
    events: list[dict] = []
    ctx = run_stage(mask.STAGE, preset, layout, events)
    cutouts = list_images(ctx.out.orig_transparent)
    assert [f.name for f in cutouts] == [f.name for f in list_images(layout.filtered_frames_colmap)]
    scores = []
    for f, true in zip(cutouts, truth, strict=True):
        image = read_image(f)
        assert image.shape == (SIZE, SIZE, 4)
        scores.append(iou(image[..., 3] > 127, true))
    # GrabCut and the static backdrop each add to the points' silhouette (without either: 0.89–0.90).
    assert min(scores) > 0.9 and np.mean(scores) > 0.93, scores
    record = ctx.record_data
    assert record["method"] == "sfm" and record["turntable"] is True
    assert record["static_backdrop_share"] > 0.3
    logs = [e["message"] for e in events if e["type"] == "log"]
    assert any("turntable-like capture" in m for m in logs), logs


def test_masks_without_the_backdrop_cue_still_follow_the_points(turntable):
    layout, truth = turntable
    preset = parse_preset("", "test", ["mask.method='sfm'", "mask.static_backdrop=false"])
    ctx = run_stage(mask.STAGE, preset, layout)
    scores = [iou(read_image(f)[..., 3] > 127, t)
              for f, t in zip(list_images(ctx.out.orig_transparent), truth, strict=True)]
    assert np.mean(scores) > 0.85, scores  # the points alone: ~0.71
    assert "turntable" not in ctx.record_data  # nothing measured, nothing claimed


def test_a_still_scene_trains_on_whole_frames_unless_masks_are_asked_for(tmp_path, turntable,
                                                                         monkeypatch):
    for home in ("U2NET_HOME", "REMBG_HOME"):  # no rembg weights: auto goes model-free
        monkeypatch.setenv(home, str(tmp_path / "no-weights"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    still, _ = make_turntable_run(tmp_path, views=12, size=SIZE, still_scene=True)
    for layout, method, trains_on in ((still, "auto", "filtered_frames_colmap"),
                                      (still, "sfm", "orig_transparent"),
                                      (turntable[0], "auto", "orig_transparent")):
        preset = parse_preset("", "test", [f"mask.method='{method}'", "blend.model='u2net'"])
        events: list[dict] = []
        done = run_stage(mask.STAGE, preset, layout, events)
        assert done.record_data["turntable"] is (layout is not still)
        promote(done, layout)
        orig = StageContext(splat.STAGE_ORIG, preset, layout, layout.staging_for("splat_orig"),
                            lambda e: None, "cpu")
        assert splat.source_frames(orig, "orig").name == trains_on, (method, layout)
        if trains_on == "filtered_frames_colmap":  # and the user is told why
            logs = [e["message"] for e in events if e["type"] == "log"]
            assert any("still scene" in m and "whole frames" in m for m in logs), logs


def test_a_rerun_cuts_a_real_photo_exactly_as_before(shared_data):
    """GrabCut starts from a random k-means draw of the calling thread: unseeded, a photo's mask
    changed by up to 1 % of its pixels from run to run, depending on the pool thread."""
    import cv2

    from gausynth_engine import masking

    photo = read_image(sorted((shared_data / "plush-dog" / "images").iterdir())[5])[..., :3]
    h, w = photo.shape[:2]
    rng = np.random.default_rng(0)
    points = np.stack([rng.normal(w / 2, w / 8, 3000), rng.normal(h / 2, h / 6, 3000)], 1)
    first = masking.object_mask(photo, points)
    cv2.setRNGSeed(12345)  # as a pool thread that cut other frames before would have it
    assert np.array_equal(masking.object_mask(photo, points), first)


def test_auto_says_why_it_went_model_free(turntable, monkeypatch):
    layout, _ = turntable
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    preset = parse_preset("", "test", ["mask.method='auto'", "blend.model='u2net'"])
    method, why = mask.choose_method(preset.mask, preset.blend.model)
    assert method == "sfm" and "not on this machine" in why


def test_a_mask_that_covers_nothing_is_refused_naming_the_frame(turntable, monkeypatch):
    layout, _ = turntable
    from gausynth_engine import masking

    monkeypatch.setattr(masking, "object_mask", lambda image, *a, **k: np.zeros(image.shape[:2], np.float32))
    preset = parse_preset("", "test", ["mask.method='sfm'"])
    with pytest.raises(StageError, match=r"0000\.png: the object mask covers nothing"):
        run_stage(mask.STAGE, preset, layout)


def train_orig(layout, preset, tmp: Path) -> Path:
    small = dataclasses.replace(preset.splat, iterations=120, eval_at=(), test_every=4,
                                checkpoint_every=1000, sh_degree=0)
    preset = dataclasses.replace(preset, splat=small)
    ctx = run_stage(splat.STAGE_ORIG, preset, layout)
    return ctx.out.gs / ctx.record_data["folder"].split("/", 1)[1]


def object_psnr_vs_truth(gs: Path, clean: Path, names: list[str]) -> float:
    """PSNR of the final renders (over white) against the clean object over white."""
    errs = []
    for name in names:
        render = read_image(gs / "renders_120" / name).astype(np.float64) / 255
        true = read_image(clean / name).astype(np.float64) / 255
        errs.append(np.mean((render - true) ** 2))
    return float(-10 * np.log10(np.mean(errs)))


@pytest.mark.slow
def test_a_turntable_trains_clean_with_masks_and_worse_without(turntable, tmp_path):
    import torch

    torch.set_num_threads(1)
    layout, _ = turntable
    clean = layout.root.parent / "clean"
    masked = parse_preset("", "test", ["mask.method='sfm'", "run.device='cpu'"])
    promote(run_stage(mask.STAGE, masked, layout), layout)
    with_masks = train_orig(layout, masked, tmp_path)
    plain = parse_preset("", "test", ["mask.method='off'", "run.device='cpu'"])
    without = train_orig(layout, plain, tmp_path)
    test_views = json.loads((with_masks / "results.json").read_text())["test_views"]
    assert test_views == json.loads((without / "results.json").read_text())["test_views"]
    good = object_psnr_vs_truth(with_masks, clean, test_views)
    bad = object_psnr_vs_truth(without, clean, test_views)
    assert good > 15.0 and good > bad + 4.0, (good, bad)


def test_points_on_the_frame_edge_do_not_fall_off_it() -> None:
    """A projection at 239.6 px in a 240-px frame rounds to 240 (kermit's frames did)."""
    from gausynth_engine.masking import points_silhouette

    pts = np.array([[10.0, 239.6], [319.7, 5.0], [160.0, 120.0]] * 10)
    mask = points_silhouette(pts, 320, 240, radius=3)
    assert mask.shape == (240, 320) and mask[120, 160] and mask[239, 10]
