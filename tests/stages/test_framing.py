"""framing: the diffusion square and the SfM frame line up both ways, in crop and pad modes, so a
reimagined square lands exactly where its original pixels were."""

from __future__ import annotations

import numpy as np
import pytest

from gausynth_engine.framing import cut_square, place_square, sfm_size, square_box


def test_sfm_frames_keep_the_aspect_and_are_never_upsampled() -> None:
    assert sfm_size(1500, 1000, 2048) == (1500, 1000)
    assert sfm_size(1500, 1000, 750) == (750, 500)
    assert sfm_size(640, 480, 256) == (256, 192)


@pytest.mark.parametrize("how", ["crop", "pad"])
def test_a_square_cut_from_a_frame_goes_back_to_the_same_pixels(how: str) -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)
    box = square_box(90, 60, how)
    assert box == ((15, 0, 60) if how == "crop" else (0, -15, 90))
    square = cut_square(frame, box, box[2])  # at the box's own size: no resampling
    placed, valid = place_square(square, box, 90, 60)
    np.testing.assert_array_equal(placed[valid], frame[valid])
    if how == "crop":  # the sides the square leaves out are not valid
        assert valid[:, 15:75].all() and not valid[:, :15].any() and not valid[:, 75:].any()
    else:  # the padding falls outside the frame; the whole frame is covered
        assert valid.all()
        assert (square[:15] == 255).all()  # padded with white above the frame


def test_a_reimagined_square_is_placed_at_its_box_and_masked_out_elsewhere(tmp_path) -> None:
    """The 2D route's splat_reim: squares placed into wider SfM frames, the rest left out."""
    from gausynth_engine import parse_preset
    from gausynth_engine._layout import RunLayout
    from gausynth_engine._media import read_image, write_image
    from gausynth_engine._stage import StageContext
    from gausynth_engine.stages import splat

    layout = RunLayout(tmp_path / "run")
    manifest = layout.manifest("preprocess")
    manifest.parent.mkdir(parents=True)
    manifest.write_text('{"fingerprint": "x", "record": {"sd_box": [20, 0, 40]}}')
    orig = np.zeros((40, 80, 4), np.uint8)
    orig[10:30, 30:50] = (10, 20, 30, 255)  # the object, opaque; the rest transparent
    square = np.full((16, 16, 3), 200, np.uint8)  # upscaled squares have their own size
    for n in range(16):  # more frames than the placing threads hold at once
        write_image(layout.orig_transparent / f"{n:04d}.png", orig)
        write_image(layout.sr_frames / f"{n:04d}.png", square)
    preset = parse_preset("", "test", [])
    ctx = StageContext(splat.STAGE_REIM, preset, layout, layout.staging_for("splat_reim"), lambda e: None, "cpu")
    placed_dir, valid_dir = splat.place_reimagined(ctx, tmp_path / "work")
    placed, valid = read_image(placed_dir / "0000.png"), read_image(valid_dir / "0000.png")[..., 0] > 127
    assert placed.shape == (40, 80, 4)
    assert valid[:, 20:60].all() and not valid[:, :20].any() and not valid[:, 60:].any()
    assert (placed[:, 20:60, :3] == 200).all()
    np.testing.assert_array_equal(placed[..., 3], orig[..., 3])  # the original silhouette
    assert sorted(f.name for f in placed_dir.iterdir()) == sorted(f.name for f in valid_dir.iterdir()) == \
        [f"{n:04d}.png" for n in range(16)]  # every frame, not only those before the first partial one
