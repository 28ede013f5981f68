"""sfm: the generated turn-around gets every pose right; bad inputs fail with clear words."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import small_overrides

from gausynth_engine import Progress, StageFailed

# All 24 frames of the 320×240 sample as they are: small, but enough texture.
SFM_SETS = {"run.pipeline": "original", "mask.method": "off",
            "preprocess.num_frames": 24, "preprocess.colmap_size": 320}


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory, sample_video: Path):
    """Runs preprocess and sfm on the sample once for the module; gives (status, layout, events)."""
    from gausynth_engine import Orchestrator, RunLayout, make_plan, parse_preset

    root = tmp_path_factory.mktemp("sfm-run")
    preset = parse_preset("", "test", small_overrides(sample_video, **SFM_SETS))
    layout = RunLayout.for_run(root / preset.run.outputs_root, preset.run.directory)
    events: list = []
    status = Orchestrator(preset, layout, on_event=events.append).run(
        make_plan(preset, layout, until="sfm"))
    return status, layout, events


def test_the_sample_registers_fully_into_the_colmap_layout(sample_run) -> None:
    from gausynth_engine._plan import read_manifest

    status, layout, events = sample_run
    failures = [e.error for e in events if isinstance(e, StageFailed)]
    assert status == "done", failures
    record = read_manifest(layout, "sfm")["record"]
    assert record["registered"] == record["total"] == 24
    assert record["points3d"] > 200
    assert 0 < record["mean_reprojection_error_px"] < 1.5
    assert record["mean_track_length"] > 2
    for folder in (layout.colmap_input, layout.colmap_images, layout.colmap_stereo):
        assert folder.is_dir(), folder
    assert len(list(layout.colmap_images.iterdir())) == 24
    assert layout.colmap_database.is_file()
    for model in (layout.colmap_distorted / "sparse" / "0", layout.colmap_sparse):
        assert {"cameras.bin", "images.bin", "points3D.bin"} <= {p.name for p in model.iterdir()}
    assert layout.video("colmap").stat().st_size > 10_000
    # The journal counted registered frames as they came, not just a spinner.
    mapping = [e for e in events if isinstance(e, Progress) and e.unit == "frames registered"]
    assert len(mapping) >= 3 and mapping[-1].value == 24


def test_the_sample_poses_match_the_true_cameras(sample_run, sample_video: Path) -> None:
    import pycolmap

    from gausynth_engine._plan import read_manifest
    from gausynth_engine.sfm.truth import centre_error, true_centres

    _, layout, _ = sample_run
    truth = json.loads(sample_video.with_name("turnaround.cameras.json").read_text())
    w2c = np.array([f["world_to_camera"] for f in truth["frames"]])
    pre = read_manifest(layout, "preprocess")["record"]
    model = pycolmap.Reconstruction(layout.colmap_sparse)
    by_name = {im.name: im for im in model.images.values()}
    estimated = np.array([by_name[name].projection_center() for name in pre["frames"]])
    expected = true_centres(w2c[pre["source_indices"]])
    error = centre_error(estimated, expected)
    # Cameras 5 units from the object, ~5 units from their centroid: 2 % is ~0.1 units.
    assert error["rms_relative"] < 0.02, error
    assert error["max_relative"] < 0.05, error


def test_prepare_views_lines_frames_up_as_colmap_did(sample_run, tmp_path: Path) -> None:
    from gausynth_engine._media import read_image, write_image
    from gausynth_engine.poses import prepare_views

    _, layout, _ = sample_run
    # The originals come out as COLMAP's own undistorted images.
    names = prepare_views(layout, layout.filtered_frames_colmap, tmp_path / "orig")
    assert len(names) == 24
    for name in names[:4]:
        ours = read_image(tmp_path / "orig" / name).astype(int)
        colmaps = read_image(layout.colmap_images / name).astype(int)
        assert ours.shape == colmaps.shape
        assert np.abs(ours - colmaps).max() <= 2  # rounding only
    # A cut-out keeps its alpha channel through the warp.
    cutouts = tmp_path / "cutouts"
    for name in names:
        rgb = read_image(layout.filtered_frames_colmap / name)
        write_image(cutouts / name, np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)]))
    prepare_views(layout, cutouts, tmp_path / "cut")
    warped = read_image(tmp_path / "cut" / names[0])
    assert warped.shape[2] == 4 and warped[warped.shape[0] // 2, warped.shape[1] // 2, 3] == 200


def test_prepare_views_refuses_missing_or_resized_frames(sample_run, tmp_path: Path) -> None:
    import cv2

    from gausynth_engine._stage import StageError
    from gausynth_engine.poses import prepare_views

    _, layout, _ = sample_run
    frames = tmp_path / "reimagined"
    shutil.copytree(layout.filtered_frames_colmap, frames)
    (frames / "0005.png").unlink()
    with pytest.raises(StageError, match=r"0005\.png: missing"):
        prepare_views(layout, frames, tmp_path / "out")
    shutil.copy2(layout.filtered_frames_colmap / "0005.png", frames / "0005.png")
    big = cv2.resize(cv2.imread(str(frames / "0007.png")), (480, 480))
    cv2.imwrite(str(frames / "0007.png"), big)
    with pytest.raises(StageError, match=r"0007\.png: 480×480 px, but COLMAP saw this frame at 320×240"):
        prepare_views(layout, frames, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.parametrize("case, expected", [
    ("empty", "holds no frames"),
    ("too_few", "2 frame\\(s\\); SfM needs at least 3"),
    ("identical", "nearly\\) identical"),
])
def test_hopeless_frame_folders_fail_with_a_clear_error(tmp_path: Path, case: str, expected: str) -> None:
    from gausynth_engine._media import write_image
    from gausynth_engine._stage import StageError
    from gausynth_engine.sfm.reconstruct import reconstruct

    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
    count = {"empty": 0, "too_few": 2, "identical": 8}[case]
    for n in range(count):
        write_image(frames / f"{n:04d}.png", image)
    with pytest.raises(StageError, match=expected):
        reconstruct(frames, tmp_path / "work")


def test_identical_frames_fail_the_stage_in_the_engine(engine_run, tmp_path: Path) -> None:
    import cv2

    frames = tmp_path / "still"
    frames.mkdir()
    image = np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    for n in range(6):
        cv2.imwrite(str(frames / f"{n:03d}.png"), image)
    status, _, events = engine_run(small_overrides(frames, **{**SFM_SETS, "preprocess.num_frames": 6,
                                                              "preprocess.colmap_size": 96}),
                                   until="sfm")
    assert status == "failed"
    failed = [e for e in events if isinstance(e, StageFailed) and e.stage == "sfm"]
    assert failed and "identical" in failed[0].error


@pytest.mark.parametrize("allow", [False, True])
def test_low_registration_fails_unless_the_preset_allows_it(sample_run, engine_run, tmp_path: Path,
                                                            allow: bool) -> None:
    from gausynth_engine import read_manifest
    from gausynth_engine._media import write_image

    _, layout, _ = sample_run
    frames = tmp_path / "mixed"
    shutil.copytree(layout.filtered_frames_colmap, frames)
    rng = np.random.default_rng(2)
    for n in range(24, 30):  # six frames of noise that no camera pose explains
        write_image(frames / f"{n:04d}.png", rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    sets = {**SFM_SETS, "preprocess.num_frames": 30, "sfm.allow_low_registration": allow}
    status, run_layout, events = engine_run(small_overrides(frames, **sets), until="sfm")
    if not allow:
        assert status == "failed"
        error = next(e.error for e in events if isinstance(e, StageFailed) and e.stage == "sfm")
        assert "registered 24/30" in error and "sfm.min_registered = 0.9" in error
        assert not run_layout.colmap.exists()  # nothing half-made is left in the run folder
    else:
        assert status == "done"
        record = read_manifest(run_layout, "sfm")["record"]
        assert record["registered"] == 24 and len(record["unregistered"]) == 6
        assert len(list(run_layout.colmap_images.iterdir())) == 24


def test_sequential_pairs_close_the_loop_around_the_object() -> None:
    from gausynth_engine.sfm.reconstruct import cyclic_pairs

    pairs = set(cyclic_pairs(48, overlap=5))
    assert (0, 47) in pairs and (2, 45) in pairs  # the end of the turn-around meets its start
    assert (0, 16) in pairs and (10, 42) in pairs  # power-of-two jumps tie distant views together
    assert (0, 20) not in pairs and all(i < j for i, j in pairs)
