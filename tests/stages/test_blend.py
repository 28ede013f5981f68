"""blend: a user cuts the object out of their frames with a rembg model and gets the reimagined
object inside the original silhouette, with SSIM/PSNR saying how far each 2D step moved."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # before onnxruntime is imported
from gausynth_engine import StageError  # noqa: E402
from gausynth_engine.compositing import fill_silhouette, on_white, resize_alpha, rgba  # noqa: E402
from gausynth_engine.cutout import MaskSession, resolve_model  # noqa: E402
from tests.conftest import small_overrides  # noqa: E402


def export_mask_model(path: Path, kind: str) -> Path:
    """Writes a tiny ONNX 'segmentation' model: [1,3,320,320] → [1,1,320,320].

    kind "red": the mask is the red channel (exact masks from crafted images);
    kind "dark": a sharp threshold on brightness (the sample's object on its light backdrop; the
    backdrop normalises to ~2.25 in rembg's ImageNet scaling, the object stays below ~1.5).
    """
    import torch

    class Red(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :1]

    class Dark(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(20.0 * (2.0 - x.mean(dim=1, keepdim=True)))

    path.parent.mkdir(parents=True, exist_ok=True)
    model = Red() if kind == "red" else Dark()
    torch.onnx.export(model, (torch.zeros(1, 3, 320, 320),), str(path), dynamo=False,
                      input_names=["input"], output_names=["mask"])
    return path


@pytest.fixture(scope="module")
def mask_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("rembg_models")
    return {k: export_mask_model(folder / f"tiny-{k}.onnx", k) for k in ("red", "dark")}


def test_a_custom_onnx_model_gives_the_exact_mask(mask_models: dict[str, Path]) -> None:
    logs: list[str] = []
    session = MaskSession(str(mask_models["red"]), "cpu", logs.append)
    image = np.zeros((320, 320, 3), np.uint8)
    image[:, 200:, 0] = 255  # the "object" is the red right part
    image[..., 1] = 90
    alpha = session.mask(image)
    assert alpha.dtype == np.float32 and alpha.shape == (320, 320)
    assert np.all(alpha[:, :200] == 0.0) and np.all(alpha[:, 200:] == 1.0)
    assert session.providers == ["CPUExecutionProvider"]
    assert any("u2net_custom" in m and "CPUExecutionProvider" in m for m in logs)
    # rembg must not have been left pointing at the test's folder.
    assert os.environ.get("REMBG_HOME") != str(mask_models["red"].parent)


def test_a_local_file_named_like_a_rembg_model_keeps_that_models_session(tmp_path: Path) -> None:
    path = export_mask_model(tmp_path / "u2net.onnx", "red")
    model = resolve_model(str(path))
    assert (model.session, model.path, model.home) == ("u2net", path, tmp_path)
    session = MaskSession(str(path))
    image = np.zeros((320, 320, 3), np.uint8)
    image[:160, :, 0] = 255
    alpha = session.mask(image)
    assert alpha[:160].min() == 1.0 and alpha[160:].max() == 0.0


def test_a_missing_model_offline_is_one_clear_error(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMBG_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("U2NET_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(StageError) as err:
        MaskSession("isnet-general-use")
    text = str(err.value)
    assert "blend.model = 'isnet-general-use'" in text and "isnet-general-use.onnx" in text
    assert "new_session('isnet-general-use')" in text and "\n" not in text
    assert not (tmp_path / "empty").exists()  # nothing was downloaded
    with pytest.raises(StageError, match="no such file"):
        MaskSession(str(tmp_path / "nowhere.onnx"))
    with pytest.raises(StageError, match="not a rembg model; accepted: .*u2net"):
        MaskSession("u3net")


def test_compositing_is_exact() -> None:
    orig = np.full((4, 4, 3), 100, np.uint8)
    reim = np.full((4, 4, 3), 20, np.uint8)
    a = np.array([[0, 0.5, 1, 1]] * 4, np.float32)  # the original's mask
    e = np.array([[1, 1, 1, 0]] * 4, np.float32)  # the reimagined cut-out misses the last column
    np.testing.assert_array_equal(on_white(orig, a)[0, :, 0], [255, 178, 100, 100])  # 177.5 → 178
    cut = rgba(reim, a * e)
    np.testing.assert_array_equal(cut[0, :, 3], [0, 128, 255, 0])
    np.testing.assert_array_equal(cut[..., :3], reim)
    blended = fill_silhouette(orig, reim, a, e)
    # Outside: white; half-covered: half reimagined, half white; inside: reimagined; the hole:
    # filled from the original, so the silhouette stays the original's.
    np.testing.assert_array_equal(blended[0, :, 0], [255, 138, 20, 100])
    np.testing.assert_array_equal(resize_alpha(np.ones((8, 8), np.float32), 4), np.ones((4, 4)))


def test_the_given_masks_composite_to_the_given_cutouts(shared_data: Path) -> None:
    """realfusion15 ships image, mask and an RGBA cut-out made elsewhere: ours must agree."""
    from gausynth_engine._media import read_image

    folders = sorted(p for p in (shared_data / "realfusion15").iterdir() if p.is_dir())
    assert len(folders) >= 10
    for folder in folders:
        image = read_image(folder / "image.png")
        mask = read_image(folder / "mask.png")[..., 0].astype(np.float32) / 255.0
        given = read_image(folder / "image_rgba.png")
        ours_rgba = rgba(image, mask)
        np.testing.assert_array_equal(ours_rgba[..., 3], np.rint(mask * 255))
        ours, theirs = on_white(image, mask), on_white(given[..., :3], given[..., 3] / 255.0)
        diff = np.abs(ours.astype(int) - theirs.astype(int))
        # The given mask and cut-out come from slightly different mattes: edges differ, the
        # object's interior must match to the rounding of the cut-out's own resampling.
        solid = (mask > 0.99) & (given[..., 3] > 252)
        assert np.percentile(diff[solid], 99) <= 2, folder.name
        assert diff.mean() < 4, folder.name


def cut_out(layout, preset, device: str = "cpu"):
    """Runs the mask stage in-process straight into the run folder; gives its context."""
    from gausynth_engine import StageContext
    from gausynth_engine.stages import BY_ID

    ctx = StageContext(BY_ID["mask"], preset, layout, layout, lambda e: None, device)
    BY_ID["mask"].run(ctx)
    return ctx


def test_the_mask_stage_cuts_out_the_sample_with_a_rembg_model(
        engine_run, sample_video: Path, mask_models: dict[str, Path]) -> None:
    from gausynth_engine import parse_preset

    overrides = small_overrides(sample_video, "orig", **{"run.pipeline": "original",
                                                         "mask.method": "model",
                                                         "blend.model": str(mask_models["dark"])})
    status, layout, events = engine_run(overrides, until="preprocess")
    assert status == "done"
    ctx = cut_out(layout, parse_preset("", "test", overrides))
    from gausynth_engine._media import list_images, read_image

    frames = list_images(layout.orig_transparent)
    assert [f.name for f in frames] == [f.name for f in list_images(layout.filtered_frames_colmap)]
    cut = read_image(frames[0])
    assert cut.shape == (96, 128, 4)  # the SfM frames' size and aspect, with the mask as alpha
    raw = read_image(layout.filtered_frames_colmap / frames[0].name)
    corners = cut[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert corners[:, 3].max() <= 5  # the light backdrop is transparent
    centre = (slice(38, 58), slice(54, 74))
    assert cut[centre][..., 3].min() >= 250  # the object is kept, in its own colours
    np.testing.assert_array_equal(cut[..., :3], raw)
    assert layout.video("orig_transparent").stat().st_size > 0
    record = ctx.record_data
    assert record["method"] == "model" and 0.05 < record["coverage"]["mean"] < 0.95


def test_reimagined_frames_are_blended_into_the_original_silhouette(
        engine_run, sample_video: Path, mask_models: dict[str, Path], tmp_path: Path) -> None:
    from gausynth_engine import RunLayout, StageContext, parse_preset
    from gausynth_engine._media import list_images, read_image, write_image
    from gausynth_engine.stages import BY_ID

    overrides = small_overrides(sample_video, "reim", **{"run.pipeline": "original"})
    status, layout, _ = engine_run(overrides, until="preprocess")
    assert status == "done"
    cut_out(layout, parse_preset("", "test", small_overrides(
        sample_video, "reim", **{"mask.method": "model", "blend.model": str(mask_models["dark"])})))
    # Stand-in for propagate (issue 4): the original frames recoloured, with a hole punched
    # into the object in every frame (white, which the dark-mask model calls background).
    for f in list_images(layout.filtered_frames_sd):
        frame = read_image(f)[..., ::-1].copy()
        frame[28:36, 28:36] = 255
        write_image(layout.ebsynth_all / f.name, frame)
    (layout.root / "metrics.json").write_text(json.dumps({"splat_reim": {"psnr": 30.0}}))
    preset = parse_preset("", "test", small_overrides(
        sample_video, "reim", **{"blend.model": str(mask_models["dark"]), "mask.method": "model",
                                 "blend.clip_model": str(tmp_path / "no-clip")}))
    out = RunLayout(tmp_path / "staged")
    events: list[dict] = []
    ctx = StageContext(BY_ID["blend"], preset, layout, out, events.append, "cpu")
    BY_ID["blend"].run(ctx)

    names = [f.name for f in list_images(layout.filtered_frames_sd)]
    assert [f.name for f in list_images(out.blend_transparent)] == names
    cut = read_image(out.ebsynth_transparent / names[0])
    blended = read_image(out.blend_transparent / names[0])
    assert cut.shape == (64, 64, 4) and blended.shape == (64, 64, 3)
    assert not out.orig_transparent.exists()  # the mask stage's, not blend's
    assert cut[30:34, 30:34, 3].max() < 20  # the hole is transparent in the reimagined cut-out...
    orig = read_image(layout.filtered_frames_sd / names[0])
    hole = (slice(30, 34), slice(30, 34))
    assert np.abs(blended[hole].astype(int) - orig[hole].astype(int)).mean() < 25  # ...filled
    assert blended[0, 0].min() >= 250  # background stays white
    metrics = json.loads(out.metrics.read_text())
    assert metrics["splat_reim"] == {"psnr": 30.0}  # other stages' sections survive
    section = metrics["blend"]
    assert "not a quality score" in section["meaning"]
    assert set(section["comparisons"]) == {"propagate", "propagate_cutout", "blend"}
    for comp in section["comparisons"].values():
        assert set(comp["per_frame"]) == set(names)
        assert -1 <= comp["mean"]["ssim"] <= 1 and comp["mean"]["psnr"] > 5
    # Blending restores part of the original, so it is closer to the original than the raw cut-out.
    comps = section["comparisons"]
    assert comps["blend"]["mean"]["psnr"] > comps["propagate_cutout"]["mean"]["psnr"]
    assert any("CLIP score skipped" in s for s in section["skipped"])
    assert any(e["type"] == "log" and "CLIP score skipped" in e["message"] for e in events)
    assert any(e["type"] == "metric" and e["name"] == "blend.frame_ssim" for e in events)
    assert ctx.record_data["metrics"]["blend"]["ssim"] == comps["blend"]["mean"]["ssim"]
    assert out.video("blend_transparent").stat().st_size > 0
