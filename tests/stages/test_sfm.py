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
    from gausynth_engine._manifest import read_manifest

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

    from gausynth_engine._manifest import read_manifest
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


@pytest.fixture(scope="module")
def sample_frames(sample_video: Path) -> list[np.ndarray]:
    """The 24 sample frames, whole (320×240 RGB), in orbit order."""
    from gausynth_engine._media import probe_input, read_frames

    info = probe_input(sample_video)
    return [image[..., :3] for _, image in read_frames(info, list(range(info.frame_count)))]


def _write(folder: Path, frames: list[np.ndarray]) -> Path:
    from gausynth_engine._media import write_image

    for n, frame in enumerate(frames):
        write_image(folder / f"{n:04d}.png", frame)
    return folder


def test_frames_the_cheap_pass_cannot_pose_come_back_in_the_retry(sample_frames, tmp_path: Path) -> None:
    """Shuffled so that no pair the cheap pass matches (neighbours and 2^k apart) is closer than
    60°: plain matching poses nothing; the retry's guided bridges pose every frame."""
    from gausynth_engine._stage import StageError
    from gausynth_engine.sfm.reconstruct import SfmOptions, reconstruct

    # Position p holds orbit frame 5p mod 24: the true neighbours sit 5 places apart.
    frames = _write(tmp_path / "shuffled", [sample_frames[(5 * p) % 24][:, 40:280] for p in range(24)])
    cheap = SfmOptions(overlap=1, retry=False)
    try:
        registered = reconstruct(frames, tmp_path / "cheap", cheap).registered
    except StageError:
        registered = 0
    assert registered < 12
    result = reconstruct(frames, tmp_path / "retry", SfmOptions(overlap=1))
    assert result.registered == 24
    kept = [a for a in result.attempts if a["kept"]]
    assert len(kept) == 1 and kept[0]["guided_pairs"] > 0
    assert result.mapper == kept[0]["mapper"] and result.mapper != result.attempts[0]["mapper"]


def test_non_square_frames_keep_their_shape_and_poses(sample_frames, sample_video: Path,
                                                      tmp_path: Path) -> None:
    import cv2
    import pycolmap

    from gausynth_engine._layout import RunLayout
    from gausynth_engine.sfm.layout import write_layout_and_preview
    from gausynth_engine.sfm.reconstruct import SfmOptions, reconstruct
    from gausynth_engine.sfm.truth import centre_error, true_centres

    frames = _write(tmp_path / "wide", sample_frames)  # 320×240, 15° apart
    true_focal = 0.5 * 320 / np.tan(np.radians(40.0) / 2)
    result = reconstruct(frames, tmp_path / "work", SfmOptions(focal_length_px=true_focal))
    assert result.registered == 24
    camera = next(iter(result.reconstruction.cameras.values()))
    assert (camera.width, camera.height) == (320, 240)
    assert (camera.principal_point_x, camera.principal_point_y) == (160, 120)
    truth = json.loads(sample_video.with_name("turnaround.cameras.json").read_text())
    w2c = np.array([f["world_to_camera"] for f in truth["frames"]])
    estimated = np.array([result.reconstruction.find_image_with_name(f"{n:04d}.png").projection_center()
                          for n in range(24)])
    assert centre_error(estimated, true_centres(w2c))["rms_relative"] < 0.03
    out = RunLayout(tmp_path / "run")
    write_layout_and_preview(result.reconstruction, frames, result.image_names,
                             tmp_path / "work" / "database.db", out, tmp_path / "colmap.mp4")
    undistorted = next(iter(pycolmap.Reconstruction(out.colmap_sparse).cameras.values()))
    assert undistorted.width > undistorted.height  # still landscape after undistortion
    assert cv2.imread(str(out.colmap_images / "0000.png")).shape[:2] == (undistorted.height, undistorted.width)
    assert (tmp_path / "colmap.mp4").stat().st_size > 10_000


def test_frames_of_different_sizes_cannot_share_one_camera(sample_frames, tmp_path: Path) -> None:
    from gausynth_engine._stage import StageError
    from gausynth_engine.sfm.reconstruct import check_frames

    frames = _write(tmp_path / "mixed", [f[:, :300] if n == 3 else f for n, f in enumerate(sample_frames[:6])])
    with pytest.raises(StageError, match=r"0003\.png: 300×240 px, but 0000\.png is 320×240"):
        check_frames(frames)
    assert len(check_frames(frames, single_camera=False)[0]) == 6


def test_a_known_focal_length_is_honoured(sample_frames, tmp_path: Path) -> None:
    from gausynth_engine.sfm.reconstruct import SfmOptions, reconstruct

    frames = _write(tmp_path / "frames", sample_frames)
    true_focal = 0.5 * 320 / np.tan(np.radians(40.0) / 2)  # the sample's 40° field of view
    # A trusted calibration is kept exactly, even a slightly wrong one.
    fixed = reconstruct(frames, tmp_path / "fixed", SfmOptions(focal_length_px=1.05 * true_focal,
                                                               fix_focal_length=True))
    camera = next(iter(fixed.reconstruction.cameras.values()))
    assert fixed.registered == 24
    assert camera.mean_focal_length() == pytest.approx(1.05 * true_focal, rel=1e-6)
    # A prior is where refinement starts: from 20 % off it ends near the truth.
    prior = reconstruct(frames, tmp_path / "prior", SfmOptions(focal_length_px=1.2 * true_focal))
    camera = next(iter(prior.reconstruction.cameras.values()))
    assert camera.has_prior_focal_length
    assert camera.mean_focal_length() == pytest.approx(true_focal, rel=0.05)


def test_the_stage_scales_the_preset_focal_length_to_its_frames(sample_video: Path, engine_run) -> None:
    import pycolmap

    from gausynth_engine import read_manifest

    # The input is 320×240 with f = 439.6 px; preprocess keeps the aspect and shrinks it to
    # 240×180, where f = 329.7 px.
    sets = {**SFM_SETS, "preprocess.colmap_size": 240,
            "sfm.focal_length_px": 439.6, "sfm.fix_focal_length": True}
    status, run_layout, events = engine_run(small_overrides(sample_video, **sets), until="sfm")
    assert status == "done", [e.error for e in events if isinstance(e, StageFailed)]
    record = read_manifest(run_layout, "sfm")["record"]
    assert record["focal_prior_px"] == pytest.approx(329.7)
    assert record["focal_length_px"] == pytest.approx(329.7)
    kept = [a["mapper"] for a in record["attempts"] if a["kept"]]
    assert [record["mapper_used"]] == kept and record["sift_device"] == "cpu"
    camera = next(iter(pycolmap.Reconstruction(run_layout.colmap_sparse).cameras.values()))
    assert camera.focal_length_x == pytest.approx(329.7, rel=1e-3)


def test_exif_focal_lengths_become_pixels(tmp_path: Path) -> None:
    from PIL import Image

    from gausynth_engine.sfm.intrinsics import exif_focal_px, scale_to_frames

    def photo(name: str, **tags: float) -> Path:
        exif = Image.Exif()
        ifd = exif.get_ifd(0x8769)
        codes = {"focal": 37386, "f35": 41989, "plane_x": 41486, "unit": 41488, "width": 40962}
        for key, value in tags.items():
            ifd[codes[key]] = value
        path = tmp_path / name
        Image.new("RGB", (1500, 1000)).save(path, exif=exif)
        return path

    # 35 mm equivalent: f / 36 mm of the long side.
    assert exif_focal_px(photo("a.jpg", f35=72))[0] == pytest.approx(3000.0)
    # mm with the focal plane's resolution, on a photo shrunk from 3000 px to 1500.
    focal, _ = exif_focal_px(photo("b.jpg", focal=41.0, plane_x=134.5, unit=4, width=3000))
    assert focal == pytest.approx(41.0 * 134.5 / 2)
    # mm alone says nothing without the sensor's width (plush-dog's Canon: 22.3 mm).
    assert exif_focal_px(photo("c.jpg", focal=41.0)) is None
    assert exif_focal_px(photo("d.jpg", focal=41.0), 22.3)[0] == pytest.approx(41 / 22.3 * 1500)
    assert scale_to_frames((1500, 1000), (750, 500)) == 0.5
    assert scale_to_frames((320, 240), (120, 120), "crop") == 0.5
    assert scale_to_frames((320, 240), (160, 160), "pad") == 0.5


def test_feature_masks_keep_features_off_the_masked_pixels(sample_frames, tmp_path: Path) -> None:
    import cv2
    import pycolmap
    from PIL import Image

    from gausynth_engine.sfm.features import extract, static_backdrop_masks, user_masks
    from gausynth_engine.sfm.reconstruct import SfmOptions

    frames = _write(tmp_path / "frames", sample_frames[:4])
    names = [f"{n:04d}.png" for n in range(4)]
    given = tmp_path / "given"
    given.mkdir()
    for name in names:  # RGBA cut-outs: only the right half is "object"
        rgba = np.zeros((240, 320, 4), np.uint8)
        rgba[:, 160:, 3] = 255
        Image.fromarray(rgba).save(given / name)
    masks = user_masks(given, frames, names, tmp_path / "colmap-masks")
    extract(tmp_path / "db.db", frames, names, SfmOptions(peak_threshold=0.004), (320, 240), masks,
            pycolmap.Device.cpu)
    with pycolmap.Database.open(tmp_path / "db.db") as db:
        xs = np.concatenate([db.read_keypoints(im.image_id)[:, 0] for im in db.read_all_images()])
    assert len(xs) > 100 and xs.min() >= 160 - 1

    # A static backdrop: the same corner in every frame is masked, the orbiting object is not.
    still = [f.copy() for f in sample_frames[:8]]
    for f in still:
        f[:60, :80] = still[0][:60, :80]
    frames = _write(tmp_path / "still", still)
    names = [f"{n:04d}.png" for n in range(8)]
    folder, masked = static_backdrop_masks(frames, names, tmp_path / "backdrop")
    mask = cv2.imread(str(folder / "0000.png.png"), 0)
    assert mask[:40, :50].max() == 0 and mask[120, 160] == 255 and 0 < masked < 0.9


def test_the_cpu_build_asked_for_cuda_says_so_and_runs_on_the_cpu() -> None:
    import pycolmap

    from gausynth_engine.sfm.features import sift_device

    if pycolmap.has_cuda:
        pytest.skip("this pycolmap is the CUDA build")
    said: list[str] = []
    assert sift_device("cuda", lambda m, level="info": said.append(m)) == pycolmap.Device.cpu
    assert sift_device("auto") == pycolmap.Device.cpu
    assert said and "pycolmap-cuda12" in said[0]


def test_a_cuda_build_with_no_gpu_in_sight_runs_sift_on_the_cpu(monkeypatch) -> None:
    """The queue hides the GPUs from CPU stages (CUDA_VISIBLE_DEVICES=''): on the H200 the CUDA
    pycolmap's `auto` then stopped every queued sfm with COLMAP's "num_cuda_devices > 0"."""
    import pycolmap
    import torch

    from gausynth_engine.sfm import features

    monkeypatch.setattr(pycolmap, "has_cuda", True, raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    said: list[str] = []
    assert features.sift_device("auto") == pycolmap.Device.cpu
    assert features.sift_device("cuda", lambda m, level="info": said.append(m)) == pycolmap.Device.cpu
    assert said and "no CUDA device is visible" in said[0]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert features.sift_device("auto") == pycolmap.Device.auto


@pytest.mark.gpu
def test_cuda_sift_poses_the_sample_like_the_cpu(sample_frames, tmp_path: Path) -> None:
    import pycolmap

    from gausynth_engine.sfm.reconstruct import SfmOptions, reconstruct

    if not pycolmap.has_cuda:
        pytest.skip("the CPU build of pycolmap (pip install pycolmap-cuda12 for CUDA SIFT)")
    frames = _write(tmp_path / "frames", sample_frames[::2])
    result = reconstruct(frames, tmp_path / "cuda", SfmOptions(device="cuda"))
    assert result.device == "cuda" and result.registered == 12


def _two_rings(shared_data: Path, folder: Path) -> Path:
    """The first two 360° rings of plush-dog (photos 0–41, ~18° apart), as an input folder."""
    folder.mkdir()
    for photo in sorted((shared_data / "plush-dog" / "images").iterdir())[:42]:
        (folder / photo.name).symlink_to(photo)
    return folder


def test_a_sparse_sampling_of_a_turntable_borrows_the_frames_between(shared_data: Path,
                                                                    engine_run, tmp_path: Path) -> None:
    """8 of 42 photos of a soft toy are ~80° apart: no two neighbours share a verified match, so
    SfM on them alone poses none. The 34 photos between them join SfM to link them and leave
    the model: the run's colmap/ holds the 8 sampled frames, posed, with the true focal length."""
    import pycolmap

    from gausynth_engine import read_manifest

    photos = _two_rings(shared_data, tmp_path / "rings")
    sets = {**SFM_SETS, "preprocess.num_frames": 8, "preprocess.colmap_size": 480}
    status, layout, events = engine_run(small_overrides(photos, **sets), until="sfm")
    assert status == "done", [e.error for e in events if isinstance(e, StageFailed)]
    record = read_manifest(layout, "sfm")["record"]
    assert record["registered"] == record["total"] == 8 and record["bridge_frames"] == 34
    frames = sorted(p.name for p in layout.filtered_frames_colmap.iterdir())
    assert sorted(p.name for p in layout.colmap_images.iterdir()) == frames
    model = pycolmap.Reconstruction(layout.colmap_sparse)
    assert sorted(im.name for im in model.images.values()) == frames
    assert model.num_points3D() > 200
    assert all(el.image_id in model.images for p in model.points3D.values() for el in p.track.elements)
    # The photographer's calibration: fx 2757.5 px at 1500 px wide → 882 px at 480 (SfM starts
    # from 1.2 × 480 = 576 px; measured 929–948 px from these 8 frames and their 34 bridges,
    # and 981 px in about one run of four: COLMAP's CPU matcher is not reproducible).
    assert record["focal_length_px"] == pytest.approx(882.4, rel=0.15)
    # The progress bar counts the borrowed frames under their own unit, never as "n/42 wanted".
    progress = [e for e in events if isinstance(e, Progress) and e.unit.startswith("frames registered")]
    assert {e.total for e in progress if e.unit == "frames registered"} <= {8}
    assert {e.total for e in progress if e.unit == "frames registered (with borrowed ones)"} == {42}

    alone = {**sets, "run.directory": "alone", "sfm.bridge_frames": 0}
    status, _, events = engine_run(small_overrides(photos, **alone), until="sfm")
    assert status == "failed"


def test_the_frames_borrowed_are_those_between_the_sampled_ones_spread_evenly() -> None:
    from gausynth_engine.sfm.bridges import InBetween

    def frames(indices: list[int]) -> list:
        return []

    sampled = (0, 4, 8)
    assert InBetween(sampled, 12, frames).choose() == [1, 2, 3, 5, 6, 7, 9, 10, 11]
    few = InBetween(sampled, 12, frames, budget=3).choose()
    assert few == [1, 5, 9]  # one in each gap, the wrap-around's included


def test_weak_pairs_matched_again_pose_the_rings_before_any_costlier_retry(shared_data: Path,
                                                                          tmp_path: Path) -> None:
    """Two rings of plush-dog (42 photos at 640 px): plain matching of the loop leaves most
    frames in fragments; matching only the weakly verified pairs again (guided) joins them all,
    so the costly retry (every left-out frame against frames all around) never runs."""
    from gausynth_engine._media import probe_input, read_frames
    from gausynth_engine.framing import resize
    from gausynth_engine.sfm.reconstruct import SfmOptions, reconstruct

    info = probe_input(_two_rings(shared_data, tmp_path / "rings"))
    frames = _write(tmp_path / "frames", [resize(image[..., :3], 640, 427)
                                          for _, image in read_frames(info, range(42))])
    result = reconstruct(frames, tmp_path / "work", SfmOptions())
    assert result.registered == 42
    tried = [(a["mapper"], a["registered"], a["guided_pairs"]) for a in result.attempts]
    assert tried[0][0] == "incremental" and tried[0][1] < 30, tried
    # Only the weak pairs' retry ran (from COLMAP's strict start, then a relaxed one if needed).
    assert all(label.startswith("incremental (weak pairs again") for label, _, _ in tried[1:]), tried
    kept = next(a for a in result.attempts if a["kept"])
    assert 0 < kept["guided_pairs"] < 100


def test_a_soft_toy_gets_the_low_sift_threshold_and_textured_photos_keep_colmaps(
        shared_data: Path, tmp_path: Path) -> None:
    """Three probe frames decide the SIFT contrast threshold: the plush dog's soft fur holds
    few features at COLMAP's 0.0067 and gets 0.004; kermit's photos hold enough and keep
    COLMAP's (the lower one only adds features to match there)."""
    import cv2
    import pycolmap

    from gausynth_engine.sfm.features import choose_peak_threshold
    from gausynth_engine.sfm.reconstruct import SfmOptions

    chosen = {}
    for name, long_side in (("plush-dog", 1000), ("kermit", 640)):
        photos = sorted((shared_data / name / "images").iterdir())[:9]
        folder = tmp_path / name
        folder.mkdir()
        for photo in photos:
            image = cv2.imread(str(photo))
            scale = long_side / max(image.shape[:2])
            small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(folder / f"{photo.stem}.png"), small)
        names = sorted(p.name for p in folder.iterdir())
        size = (small.shape[1], small.shape[0])
        chosen[name], counts = choose_peak_threshold(folder, names, SfmOptions(), size, None,
                                                     pycolmap.Device.cpu, tmp_path)
        assert len(counts) == 3 and min(counts) > 100, (name, counts)
    assert chosen == {"plush-dog": 0.004, "kermit": 0.0067}
