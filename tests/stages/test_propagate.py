"""propagate: reimagined key frames carried to every frame along optical flow, without Ebsynth."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gausynth_engine.propagation import propagate, segments
from gausynth_engine.propagation.sequence import Segment
from gausynth_engine.stages.sheet import key_frame_indices

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from forward_only import propagate_forward_only  # noqa: E402 (the reference's scheme, a bench baseline)

SIDE = 32


def turntable(frames: int, side: int = SIDE, seed: int = 0) -> list[np.ndarray]:
    """Gives a closed loop: a textured strip sliding past, back where it began after `frames`."""
    import cv2

    rng = np.random.default_rng(seed)
    strip = cv2.GaussianBlur(rng.integers(0, 256, (side, side * 8, 3)).astype(np.uint8), (0, 0), 1.5)
    return [np.ascontiguousarray(np.roll(strip, -round(side * 8 * i / frames), axis=1)[:, :side])
            for i in range(frames)]


def restyle(image: np.ndarray) -> np.ndarray:
    """A known stand-in for the diffusion: colour grade + edge-preserving smoothing."""
    import cv2

    graded = np.clip(image.astype(np.float32) * (1.2, 0.9, 0.7) + (10, 0, 30), 0, 255).astype(np.uint8)
    return cv2.bilateralFilter(graded, 5, 40, 5)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


@pytest.mark.parametrize("cyclic", [True, False])
def test_key_frames_come_out_exactly_as_reimagined(cyclic: bool) -> None:
    frames = turntable(20)
    keys = {k: restyle(frames[k]) for k in (0, 5, 10, 15)}
    out = list(propagate(frames, keys, cyclic=cyclic))
    assert len(out) == 20
    for k, key in keys.items():
        assert out[k].dtype == np.uint8
        assert np.array_equal(out[k], key), f"key frame {k} changed"


def test_in_between_frames_look_like_the_restyled_clip_and_beat_the_forward_only_baseline() -> None:
    frames = turntable(24, side=48)
    truth = [restyle(f) for f in frames]
    keys = {k: truth[k] for k in key_frame_indices(24, 2)}
    ours = list(propagate(frames, keys))
    baseline = list(propagate_forward_only(frames, keys))
    inner = [t for t in range(24) if t not in keys]
    ours_psnr = np.mean([psnr(ours[t], truth[t]) for t in inner])
    base_psnr = np.mean([psnr(baseline[t], truth[t]) for t in inner])
    assert ours_psnr > 28.0
    assert ours_psnr > base_psnr


def test_a_constant_colour_restyling_gives_that_colour_everywhere() -> None:
    frames = turntable(17)
    colour = np.array([200, 40, 90], np.uint8)
    keys = {k: np.broadcast_to(colour, frames[0].shape).copy() for k in key_frame_indices(17, 2)}
    for t, image in enumerate(propagate(frames, keys)):
        spread = np.abs(image.astype(int) - colour).max()
        assert spread <= 1, f"frame {t} strays {spread} from the key colour"


def test_frames_after_the_last_key_blend_back_towards_the_first_key() -> None:
    frames = turntable(12)
    red, blue = np.zeros_like(frames[0]), np.zeros_like(frames[0])
    red[...] = (255, 0, 0)
    blue[...] = (0, 0, 255)
    keys = {0: red, 6: blue}
    cyclic = list(propagate(frames, keys, cyclic=True))
    # Frame 11 is one step before key 0 round the loop and five after key 6.
    r, _, b = cyclic[11].reshape(-1, 3).mean(0)
    assert r > 180 and b < 75, (r, b)
    r, _, b = cyclic[7].reshape(-1, 3).mean(0)
    assert b > 180 and r < 75, (r, b)
    # An open clip has nothing after key 6 but key 6.
    open_clip = list(propagate(frames, keys, cyclic=False))
    assert open_clip[11][..., 2].min() >= 254 and open_clip[11][..., 0].max() <= 1


def test_the_wrap_segment_runs_from_the_last_key_round_to_the_first() -> None:
    assert segments(12, [0, 4, 8], cyclic=True)[-1] == Segment(8, 12, True, True)
    # Key 0 late in the clip: the frames before it come from the wrap, which is needed first.
    assert segments(12, [3, 9], cyclic=True)[0] == Segment(9, 15, True, True)
    assert segments(12, [3, 9], cyclic=False) == [Segment(0, 3, False, True), Segment(3, 9, True, True),
                                                  Segment(9, 11, True, False)]


def test_frames_before_a_late_first_key_come_out_in_order() -> None:
    frames = turntable(10)
    keys = {3: restyle(frames[3]), 7: restyle(frames[7])}
    for cyclic in (True, False):
        out = list(propagate(frames, keys, cyclic=cyclic))
        assert len(out) == 10 and np.array_equal(out[3], keys[3]) and np.array_equal(out[7], keys[7])


def reference_gui_counts(grid: int) -> list[int]:
    """The GUI offered grid² … 128 frames: every count up to 40 (all remainders of the key
    spacing), then primes, powers of two, the default 48, the end 128 and 129 one past it."""
    n2 = grid * grid
    picks = set(range(n2, 41)) | {41, 47, 48, 61, 64, 97, 100, 127, 128, 129}
    return sorted(picks)


@pytest.mark.parametrize("grid", [2, 3, 4])
def test_every_grid_and_frame_count_of_the_reference_gui_runs(grid: int) -> None:
    for count in reference_gui_counts(grid):
        frames = turntable(count, seed=count)
        keys = {k: 255 - frames[k] for k in key_frame_indices(count, grid)}
        out = list(propagate(frames, keys))
        assert len(out) == count, (grid, count)
        assert all(o.shape == (SIDE, SIDE, 3) and o.dtype == np.uint8 for o in out)
        assert all(np.array_equal(out[k], v) for k, v in keys.items()), (grid, count)


def test_the_stage_writes_every_frame_and_the_preview_video(sample_video, engine_run) -> None:
    from conftest import small_overrides

    from gausynth_engine._layout import RunLayout
    from gausynth_engine._manifest import read_manifest
    from gausynth_engine._media import list_images, probe_input, read_image, write_image
    from gausynth_engine._preset import load_preset
    from gausynth_engine._stage import StageContext
    from gausynth_engine.stages import BY_ID

    status, layout, _ = engine_run(small_overrides(sample_video), until="sheet")
    assert status == "done"
    keys = read_manifest(layout, "sheet")["record"]["key_frames"]
    originals = list_images(layout.filtered_frames_sd)
    for k in keys:  # stands in for the reimagine stage: restyled tiles named like their frames
        write_image(layout.key_frames / originals[k].name, restyle(read_image(originals[k])))

    events: list[dict] = []
    out = RunLayout(layout.root / "staged")
    ctx = StageContext(BY_ID["propagate"], load_preset(layout.preset_snapshot), layout, out,
                       events.append, "cpu")
    BY_ID["propagate"].run(ctx)

    written = list_images(out.ebsynth_all)
    assert [p.name for p in written] == [p.name for p in originals]
    for k in keys:
        assert np.array_equal(read_image(written[k]), read_image(layout.key_frames / originals[k].name))
    assert probe_input(out.video("ebsynth")).frame_count == len(originals)
    progress = [e for e in events if e["type"] == "progress"]
    assert progress[-1]["value"] == progress[-1]["total"] == len(originals)
    assert ctx.record_data["key_frames"] == keys
    shares = ctx.record_data["fallback_per_frame"]
    assert set(shares) == {p.name for i, p in enumerate(originals) if i not in keys}
    assert any("fell back to the recoloured original" in e.get("message", "") for e in events)


def test_a_stray_key_tile_is_named_in_the_error(tmp_path) -> None:
    from gausynth_engine._media import write_image
    from gausynth_engine._stage import StageError
    from gausynth_engine.stages.propagate import load_keys

    frames = [tmp_path / "frames" / f"{i:04d}.png" for i in range(4)]
    write_image(tmp_path / "keys" / "0042.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(StageError, match="0042.png.*0000.png … 0003.png"):
        load_keys(tmp_path / "keys", frames, (8, 8), None)
    write_image(tmp_path / "keys2" / "0000.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(StageError, match="missing for 0002.png"):
        load_keys(tmp_path / "keys2", frames, (8, 8), [0, 2])


def test_key_tiles_cut_at_the_sheet_size_are_brought_to_the_frame_size(tmp_path) -> None:
    from gausynth_engine._media import write_image
    from gausynth_engine.stages.propagate import load_keys

    frames = [tmp_path / "frames" / f"{i:04d}.png" for i in range(9)]
    tile = np.zeros((21, 21, 4), np.uint8)  # a 64² sheet cut 3 × 3, with alpha
    tile[...] = (10, 200, 30, 255)
    write_image(tmp_path / "keys" / "0003.png", tile)
    keys = load_keys(tmp_path / "keys", frames, (32, 32), [3])
    assert list(keys) == [3]
    assert keys[3].shape == (32, 32, 3)
    assert np.abs(keys[3].astype(int) - (10, 200, 30)).max() <= 1


def test_the_fallback_share_says_where_flow_carried_nothing() -> None:
    """A slow slide (the strip moves 1 px a frame) is carried by flow; a 90° jump per frame of
    a 360° loop (every frame a different quarter of the strip) is not: nearly all fallback."""
    shares = {}
    for name, count in (("slow", 32 * 8), ("wide", 8)):
        frames = turntable(count)[: min(count, 24)]
        keys = {0: restyle(frames[0]), len(frames) - 1: restyle(frames[-1])}
        got: dict[int, float] = {}
        list(propagate(frames, keys, cyclic=False, fallback=got))
        assert set(got) == set(range(len(frames))) and got[0] == 0.0
        shares[name] = float(np.mean([got[t] for t in range(1, len(frames) - 1)]))
    assert shares["slow"] < 0.3 and shares["wide"] > 0.7, shares


def test_a_colour_map_learns_a_palette_that_changes_colour_by_colour() -> None:
    """A restyle that turns each colour its own way (channels rotated, then posterised to four
    levels) learnt from pixel pairs: on pixels it never saw the colour map lands within a few
    levels of the restyle, where one Reinhard match (a single shift and spread per Lab channel)
    cannot follow it."""
    from gausynth_engine.propagation.colour import ColourMap, ColourTransfer

    def restyle(x: np.ndarray) -> np.ndarray:
        return np.floor(x[..., [1, 2, 0]] / 64) * 64 + 32

    rng = np.random.default_rng(0)
    seen = rng.integers(0, 256, (200_000, 3)).astype(np.float32)
    new = rng.integers(0, 256, (64, 64, 3)).astype(np.float32)
    mapped = ColourMap.learn(seen, restyle(seen)).apply(new)
    matched = ColourTransfer.learn(seen[None], restyle(seen)[None]).apply(new)
    error = np.abs(mapped - restyle(new)).mean()
    assert error < 12 and error < 0.25 * np.abs(matched - restyle(new)).mean()
    # colours the pairs never showed (every channel below 112: cells no bright pixel fell in)
    # fall back to the Reinhard match of those pairs
    bright = seen[seen.max(1) > 128]
    dark = np.array([[[60, 90, 30], [20, 100, 80]]], np.float32)
    reinhard = ColourTransfer.learn(bright[None], restyle(bright)[None]).apply(dark)
    assert reinhard.max() > 80  # (so that a map giving nothing there could not pass)
    assert np.abs(ColourMap.learn(bright, restyle(bright)).apply(dark) - reinhard).max() < 5
