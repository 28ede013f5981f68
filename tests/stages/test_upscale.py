"""upscale: a user super-resolves the blended frames with Swin2SR and gets frames that line up
pixel for pixel with the SfM frames, whatever their size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gausynth_engine import StageError, superres
from tests.conftest import small_overrides
from tests.stages.tiny_models import save_tiny_swin2sr


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run faster on one thread than on two contended ones (a busy 2-core CI box)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_x2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_swin2sr(tmp_path_factory.mktemp("swin2sr_x2"), 2)


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 2.0) // 2 + rng.integers(0, 128, (h, w, 3)).astype(np.uint8) // 4


def test_the_padding_is_cropped_exactly_so_the_output_lines_up(tmp_path: Path) -> None:
    up = superres.load(str(save_tiny_swin2sr(tmp_path / "nearest", 4, nearest=True)), 4)
    for h, w in ((32, 32), (21, 30)):  # divisible by 8 (still padded by the processor) and not
        image = smooth_image(h, w)
        pixels = up.processor(images=[image], return_tensors="pt",
                              input_data_format="channels_last").pixel_values
        assert pixels.shape[-2:] == ((h // 8 + 1) * 8, (w // 8 + 1) * 8)  # what gets cropped
        (out,) = superres.upscale(up, [image])
        assert out.shape == (4 * h, 4 * w, 3)
        # The model is nearest-neighbour, so any shift or stretch would show here.
        expected = np.repeat(np.repeat(image, 4, axis=0), 4, axis=1)
        assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
        import cv2

        back = cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA)
        assert np.abs(back.astype(int) - image.astype(int)).max() <= 1


def test_tiled_output_equals_untiled_output(tiny_x2: Path) -> None:
    up = superres.load(str(tiny_x2), 2)
    images = [smooth_image(72, 88, seed) for seed in range(3)]
    whole = list(superres.upscale(up, images, tile=512))
    assert superres.tile_starts(88, 32, 8) == [0, 24, 48, 56]
    tiled = list(superres.upscale(up, images, tile=32, overlap=8, batch=5))  # batches mix images
    assert len(tiled) == 3
    for a, b in zip(whole, tiled, strict=True):
        assert a.shape == b.shape == (144, 176, 3)
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.mean() < 1.0 and diff.max() <= 12, (diff.mean(), diff.max())


def test_wrong_scale_and_missing_model_are_clear_errors(tiny_x2: Path) -> None:
    with pytest.raises(StageError, match=r"upscale.scale = 4, but .* upscales ×2"):
        superres.load(str(tiny_x2), 4)
    with pytest.raises(StageError) as err:
        superres.load("caidas/no-such-swin2sr-model", 4)
    assert "upscale.model = 'caidas/no-such-swin2sr-model'" in str(err.value)
    assert "huggingface-cli download" in str(err.value)


def test_upscale_stage_on_the_sample(engine_run, sample_video: Path, tiny_x2: Path,
                                     tmp_path: Path) -> None:
    from gausynth_engine import RunLayout, StageContext, parse_preset
    from gausynth_engine._media import list_images, read_image, write_image
    from gausynth_engine.stages import BY_ID

    overrides = small_overrides(sample_video, "sr", **{"run.pipeline": "original"})
    status, layout, _ = engine_run(overrides, until="preprocess")
    assert status == "done"
    # Stand-ins for blend's outputs (its own tests run it): sd-size frames and SfM-size originals.
    for f in list_images(layout.filtered_frames_sd):
        write_image(layout.blend_transparent / f.name, read_image(f))
        write_image(layout.orig_transparent / f.name, read_image(layout.filtered_frames_colmap / f.name))
    layout.metrics.write_text(json.dumps({"blend": {"comparisons": {}}}))

    def run(scale: int, model: Path, staged: str) -> tuple[RunLayout, list[dict]]:
        preset = parse_preset("", "test", small_overrides(
            sample_video, "sr", **{"upscale.model": str(model), "upscale.scale": scale,
                                   "upscale.tile": 64, "upscale.overlap": 8,
                                   "blend.clip_model": str(tmp_path / "no-clip")}))
        out = RunLayout(tmp_path / staged)
        events: list[dict] = []
        BY_ID["upscale"].run(StageContext(BY_ID["upscale"], preset, layout, out, events.append, "cpu"))
        return out, events

    # 64 px × 2 = 128 px squares: nothing resized.
    out, events = run(2, tiny_x2, "x2")
    names = [f.name for f in list_images(layout.blend_transparent)]
    assert [f.name for f in list_images(out.sr_frames)] == names
    assert read_image(out.sr_frames / names[0]).shape == (128, 128, 3)
    assert out.video("sr").stat().st_size > 0
    assert not any(e["type"] == "log" and "resizing" in e["message"] for e in events)
    metrics = json.loads(out.metrics.read_text())
    assert "blend" in metrics  # the earlier stage's section is kept
    comp = metrics["upscale"]["comparisons"]["upscale"]
    assert set(comp["per_frame"]) == set(names) and comp["output"] == "sr_frames"
    assert any(e["type"] == "progress" and e["value"] == len(names) for e in events)

    # 64 px × 4 = 256 px: the squares keep the model's size (the 3DGS places them at sd_box).
    out4, events4 = run(4, save_tiny_swin2sr(tmp_path / "x4", 4, nearest=True), "x4")
    sr = read_image(out4.sr_frames / names[0])
    assert sr.shape == (256, 256, 3)
    # A nearest-neighbour model: the frame lines up with the original's square at that size.
    psnr = json.loads(out4.metrics.read_text())["upscale"]["comparisons"]["upscale"]["mean"]["psnr"]
    assert psnr > 25


def test_frames_finished_out_of_order_are_written_scored_and_encoded_in_frame_order(
        engine_run, sample_video: Path, tiny_x2: Path, tmp_path: Path, monkeypatch) -> None:
    """The stage writes and scores frames in threads beside the model; when a later frame's
    thread finishes first, every file still holds its own frame and the metrics, events and
    preview keep the frames' order."""
    import threading

    import av

    from gausynth_engine import RunLayout, StageContext, metrics2d, parse_preset
    from gausynth_engine._media import list_images, read_image, write_image
    from gausynth_engine.stages import BY_ID, blend

    overrides = small_overrides(sample_video, "order", **{"run.pipeline": "original"})
    status, layout, _ = engine_run(overrides, until="preprocess")
    assert status == "done"
    files = list_images(layout.filtered_frames_sd)
    for k, f in enumerate(files):  # frames that differ from each other, so a mix-up shows
        write_image(layout.blend_transparent / f.name, np.roll(read_image(f), 7 * k, axis=1))
    names = [f.name for f in files]
    second_scored = threading.Event()
    measure = metrics2d.Scores.measure

    def first_waits_for_second(self, ref, out):
        if out.shape and np.array_equal(out, expected[names[0]]):
            second_scored.wait(timeout=60)  # frame 0 finishes after frame 1
        row = measure(self, ref, out)
        if np.array_equal(out, expected[names[1]]):
            second_scored.set()
        return row

    up = superres.load(str(tiny_x2), 2)
    expected = {n: sr for n, sr in zip(names, superres.upscale(
        up, [read_image(layout.blend_transparent / n) for n in names], tile=64, overlap=8), strict=True)}
    monkeypatch.setattr(blend, "frame_workers", lambda: 3)
    monkeypatch.setattr(metrics2d.Scores, "measure", first_waits_for_second)
    preset = parse_preset("", "test", small_overrides(
        sample_video, "order", **{"upscale.model": str(tiny_x2), "upscale.scale": 2, "upscale.tile": 64,
                                  "upscale.overlap": 8, "blend.clip_model": str(tmp_path / "no-clip")}))
    out = RunLayout(tmp_path / "staged")
    events: list[dict] = []
    BY_ID["upscale"].run(StageContext(BY_ID["upscale"], preset, layout, out, events.append, "cpu"))

    assert second_scored.is_set()
    for n in names:
        assert np.array_equal(read_image(out.sr_frames / n), expected[n]), n
    per_frame = json.loads(out.metrics.read_text())["upscale"]["comparisons"]["upscale"]["per_frame"]
    assert list(per_frame) == names
    steps = [e["step"] for e in events if e["type"] == "metric" and e["name"] == "upscale.frame_ssim"]
    assert steps == list(range(len(names)))
    with av.open(str(out.video("sr"))) as video:
        decoded = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
    assert len(decoded) == len(names)
    # H.264 is lossy: each decoded frame is nearest to its own upscaled frame, not a neighbour's.
    for k, frame in enumerate(decoded):
        dist = [np.abs(frame.astype(int) - expected[n][: frame.shape[0], : frame.shape[1]]).mean() for n in names]
        assert int(np.argmin(dist)) == k
