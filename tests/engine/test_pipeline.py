"""A user runs preprocess and sheet on the generated sample, then reruns with changes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import small_overrides

from gausynth_engine import (
    PlanError,
    RunLayout,
    StageFailed,
    StageStarted,
    make_plan,
    parse_preset,
    read_manifest,
)
from gausynth_engine._media import list_images, read_image


def starts(events: list) -> list[str]:
    return [e.stage for e in events if isinstance(e, StageStarted)]


@pytest.fixture
def first_run(engine_run, sample_video: Path):
    sets = small_overrides(sample_video)
    status, layout, events = engine_run(sets, until="sheet")
    return sets, status, layout, events


def test_preprocess_and_sheet_write_the_standard_layout(first_run) -> None:
    _, status, layout, events = first_run
    assert status == "done"
    assert starts(events) == ["preprocess", "sheet"]
    sd, colmap = list_images(layout.filtered_frames_sd), list_images(layout.filtered_frames_colmap)
    assert [p.name for p in sd] == [f"{i:04d}.png" for i in range(12)]
    assert [p.name for p in colmap] == [p.name for p in sd]
    # The SfM frames keep the 320×240 clip's aspect (long side 128); only the diffusion frames
    # are square, cut from the centre of each frame at the recorded box.
    assert read_image(sd[0]).shape == (64, 64, 3) and read_image(colmap[0]).shape == (96, 128, 3)
    manifest = read_manifest(layout, "preprocess")
    assert manifest["record"]["sd_box"] == [16, 0, 96] and manifest["record"]["sfm_size"] == [128, 96]
    assert manifest["record"]["source_indices"] == [i * 24 // 12 for i in range(12)]
    assert sorted(manifest["outputs"]) == ["filtered_frames_colmap", "filtered_frames_sd",
                                           "new_videos/frames.mp4"]
    sheet = read_manifest(layout, "sheet")["record"]
    assert sheet["key_frames"] == [0, 1, 2, 4, 5, 6, 8, 9, 10]  # 9 keys spread over 12 frames
    assert read_image(layout.orig_sheets / "sheet.png").shape == (192, 192, 3)
    assert not layout.staging.exists() or not any(layout.staging.iterdir())
    assert layout.preset_snapshot.exists() and layout.journal.exists()


def test_the_preview_video_is_h264_with_every_frame(first_run) -> None:
    import av

    layout = first_run[2]
    with av.open(str(layout.video("frames"))) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert sum(1 for _ in c.decode(stream)) == 12


def test_the_sheet_tiles_are_the_key_frames(first_run) -> None:
    layout = first_run[2]
    sheet = read_image(layout.orig_sheets / "sheet.png")
    keys = read_manifest(layout, "sheet")["record"]["key_frames"]
    frames = list_images(layout.filtered_frames_sd)
    for k, index in enumerate(keys):
        r, c = divmod(k, 3)
        tile = sheet[r * 64:(r + 1) * 64, c * 64:(c + 1) * 64]
        assert (tile == read_image(frames[index])).all()


def test_an_unchanged_rerun_starts_no_worker_and_decides_fast(first_run, engine_run) -> None:
    sets = first_run[0]
    t0 = time.perf_counter()
    status, layout, events = engine_run(sets, until="sheet")
    assert time.perf_counter() - t0 < 1.0
    assert status == "done" and starts(events) == []
    reasons = {e.stage: e.reason for e in events if e.type == "stage_planned"}
    assert reasons["preprocess"] == reasons["sheet"] == "unchanged"


def test_a_changed_field_reruns_its_stage_and_downstream_only(first_run, engine_run) -> None:
    sets = first_run[0]
    _, layout, events = engine_run(sets + ["sheet.grid=2"], until="sheet")
    assert starts(events) == ["sheet"]
    reasons = {e.stage: e.reason for e in events if e.type == "stage_planned"}
    assert reasons["sheet"] == "sheet.grid 3 → 2"
    assert read_manifest(layout, "sheet")["record"]["key_frames"] == [0, 3, 6, 9]
    _, _, events = engine_run(sets + ["sheet.grid=2", "preprocess.num_frames=16"], until="sheet")
    assert starts(events) == ["preprocess", "sheet"]
    assert {e.stage: e.reason for e in events if e.type == "stage_planned"}["sheet"] == (
        "upstream preprocess reruns")


def test_the_plan_explains_downstream_and_range(first_run, tmp_path: Path) -> None:
    sets, _, layout, _ = first_run
    preset = parse_preset("", overrides=sets + ["reimagine.strength=0.5"])
    plan = make_plan(preset, layout)
    assert plan["preprocess"].action == plan["sheet"].action == "skip"
    assert plan["reimagine"].action == "run"
    assert plan["propagate"].reason == "not run yet"  # never "rerun" of a stage that never ran
    both = make_plan(parse_preset("", overrides=sets + ["sheet.grid=2", "preprocess.num_frames=16"]), layout)
    assert both["sheet"].reason == "sheet.grid 3 → 2; upstream preprocess reruns"  # its own field first
    only = make_plan(preset, layout, only="sheet", force=True)
    assert [s.stage.id for s in only.to_run] == ["sheet"]
    assert make_plan(preset, layout, start="sfm", until="sfm")["sfm"].action == "run"
    fresh = RunLayout.for_run(tmp_path / "elsewhere", "new")
    with pytest.raises(PlanError, match="needs preprocess"):
        make_plan(preset, fresh, only="sheet")


def test_changed_input_content_and_missing_outputs_rerun(first_run, engine_run, tmp_path: Path) -> None:
    sets, _, layout, _ = first_run
    (layout.root / "orig_sheets" / "sheet.png").unlink()
    (layout.orig_sheets).rmdir()
    _, _, events = engine_run(sets, until="sheet")
    assert starts(events) == ["sheet"]
    video = Path(next(s for s in sets if s.startswith("run.input")).split("=", 1)[1].strip("'"))
    copy = tmp_path / "other.mp4"
    copy.write_bytes(video.read_bytes() + b"\0")  # same frames, different bytes
    sets2 = [s for s in sets if not s.startswith("run.input")] + [f"run.input='{copy}'"]
    _, _, events = engine_run(sets2, until="sheet", force=True)  # another file: replacing needs --force
    reasons = {e.stage: e.reason for e in events if e.type == "stage_planned"}
    assert reasons["preprocess"] == "the input's content changed"


def test_an_image_folder_is_an_input_too(engine_run, tmp_path: Path) -> None:
    from gausynth_engine._media import write_image
    from gausynth_engine._sample import SampleSpec, orbit_cameras, render_view

    spec = SampleSpec(frames=10, width=96, height=64)
    K, poses = orbit_cameras(spec)
    folder = tmp_path / "photos"
    for i, p in enumerate(poses):
        write_image(folder / f"IMG_{i + 1}.jpg", render_view(K, p, spec.width, spec.height))
    status, layout, events = engine_run(
        [f"run.input='{folder}'", "run.directory=photos", "preprocess.num_frames=5",
         "preprocess.sd_size=64", "preprocess.colmap_size=96", "preprocess.square='pad'"],
        until="preprocess")
    assert status == "done", [e for e in events if isinstance(e, StageFailed)]
    record = read_manifest(layout, "preprocess")["record"]
    assert record["input_kind"] == "images" and record["source_indices"] == [0, 2, 4, 6, 8]
    first = read_image(list_images(layout.filtered_frames_sd)[0])
    assert first.shape == (64, 64, 3)
    assert (first[0, :, :] > 250).all()  # padded with white above the 96×64 photo
    # The SfM frames are the photos as taken: never padded, never upsampled.
    assert read_image(list_images(layout.filtered_frames_colmap)[0]).shape == (64, 96, 3)
    assert record["sd_box"] == [0, -16, 96]


@pytest.mark.parametrize(("content", "words"), [
    (b"", "the file is empty"),
    (b"this is not a video at all" * 100, "not a readable video"),
])
def test_a_broken_video_fails_clearly_and_leaves_nothing(engine_run, tmp_path: Path, content: bytes,
                                                         words: str) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(content)
    status, layout, events = engine_run([f"run.input='{bad}'"], until="preprocess")
    failed = [e for e in events if isinstance(e, StageFailed)]
    assert status == "failed" and failed[0].stage == "preprocess"
    assert failed[0].error.startswith(f"{bad}: ") and words in failed[0].error
    assert not layout.filtered_frames_sd.exists() and read_manifest(layout, "preprocess") is None


def test_too_few_frames_is_a_clear_error(engine_run, sample_video: Path) -> None:
    status, _, events = engine_run(small_overrides(sample_video, **{"preprocess.num_frames": 100}),
                                   until="preprocess")
    (failed,) = [e for e in events if isinstance(e, StageFailed)]
    assert "24 frames, fewer than preprocess.num_frames = 100" in failed.error


def test_a_stage_not_yet_built_refuses_with_a_reason(first_run, monkeypatch) -> None:
    import dataclasses

    from gausynth_engine import worker
    from gausynth_engine.stages import BY_ID

    layout = first_run[2]
    monkeypatch.setitem(BY_ID, "sfm", dataclasses.replace(BY_ID["sfm"], run=None, pending_issue="issue 8"))
    channel = worker.Channel(None)
    assert worker.run_stage(layout, "sfm", channel) == 1
    (failed,) = channel.sent
    assert failed["type"] == "failed"
    assert failed["error"] == "stage sfm is not implemented yet (issue 8)"


def test_the_journal_alone_rebuilds_the_run(first_run) -> None:
    from gausynth_engine import RunView

    layout = first_run[2]
    view = RunView.from_journal(layout.journal)
    assert view.status == "done"
    assert view.stages["preprocess"].state == "done" and view.stages["sheet"].state == "done"
    assert view.stages["preprocess"].value == 12 and view.stages["reimagine"].state == "out"
    lines = layout.journal.read_text().splitlines()
    assert all(json.loads(line)["t"] > 0 for line in lines)


def test_unexpected_failures_are_one_line_for_people(tmp_path: Path) -> None:
    import errno

    from gausynth_engine.worker import describe_failure

    layout = RunLayout(tmp_path)
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.png"))
    assert describe_failure(full, layout) == (
        f"disk full while writing {tmp_path / 'x.png'}; free space under {tmp_path} and rerun")
    assert describe_failure(ValueError("bad\nmore"), layout) == "ValueError: bad"
    oom = type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory. Tried to allocate 2 GiB")
    assert "run.parallel_stages = 1" in describe_failure(oom, layout)
    assert "out of memory" in describe_failure(MemoryError(), layout)


def test_demo_says_which_preset_and_why(tmp_path: Path, capsys, monkeypatch) -> None:
    from gausynth_engine.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--dry-run", "--root", str(tmp_path / "out"), "--frames", "24",
                 "--size", "96x64"]) == 0
    out = capsys.readouterr().out
    assert "demo preset: " in out and " — " in out and "expected duration: about " in out
    assert "plan for " in out and "preprocess  run   not run yet" in out
    assert (tmp_path / "out" / "sample-24-96x64" / "turnaround.mp4").exists()


def test_doctor_reports_without_crashing(capsys) -> None:
    from gausynth_engine.cli import main

    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for name in ("CUDA", "NVML telemetry", "gsplat", "pycolmap", "H.264 encoder", "disk"):
        assert name in out


def test_every_frame_of_a_folder_with_num_frames_zero(engine_run, tmp_path: Path) -> None:
    from gausynth_engine._media import write_image
    from gausynth_engine._sample import SampleSpec, orbit_cameras, render_view

    spec = SampleSpec(frames=7, width=96, height=64)
    K, poses = orbit_cameras(spec)
    folder = tmp_path / "photos"
    for i, p in enumerate(poses):
        write_image(folder / f"IMG_{i + 1}.jpg", render_view(K, p, spec.width, spec.height))
    status, layout, _ = engine_run([f"run.input='{folder}'", "run.directory=all",
                                    "preprocess.num_frames=0", "preprocess.sd_size=64"],
                                   until="preprocess")
    assert status == "done"
    assert read_manifest(layout, "preprocess")["record"]["source_indices"] == list(range(7))


def test_a_folder_of_mixed_sizes_names_the_odd_file(engine_run, tmp_path: Path) -> None:
    import numpy as np

    from gausynth_engine._media import write_image

    folder = tmp_path / "mixed"
    for i in range(5):
        write_image(folder / f"{i}.png", np.full((64, 96 if i != 3 else 64, 3), 128, np.uint8))
    status, layout, events = engine_run([f"run.input='{folder}'", "run.directory=mixed",
                                         "preprocess.num_frames=0"], until="preprocess")
    (failed,) = [e for e in events if isinstance(e, StageFailed)]
    assert failed.error.startswith(f"{folder / '3.png'}: 64×64 px, unlike the first frame (96×64)")
    assert not layout.filtered_frames_colmap.exists()
