"""Runs can be cancelled from anywhere, survive nothing half-done, and own their folder alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gausynth_engine import RunLayout, RunView, read_manifest
from gausynth_engine._journal import pid_alive, read_journal
from gausynth_engine._sample import SampleSpec, make_sample
from gausynth_engine.cli import main as cli


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 300-frame clip: preprocess takes seconds on it at a large SfM size."""
    return make_sample(tmp_path_factory.mktemp("long"), SampleSpec(frames=300, width=64, height=48))


def start_slow_run(tmp_path: Path, video: Path, frames: int = 300) -> tuple[subprocess.Popen, RunLayout]:
    args = ["run", "original-only", "--until", "preprocess", "--set", f"run.input={video}",
            "--set", f"preprocess.num_frames={frames}", "--set", "preprocess.colmap_size=1536",
            "--set", "preprocess.sd_size=64"]
    proc = subprocess.Popen([sys.executable, "-m", "gausynth_engine", *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    layout = RunLayout(tmp_path / "demo_outputs_dir" / "original-only")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(e.type == "progress" for e in read_journal(layout.journal)):
            return proc, layout
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.05)
    raise AssertionError("the run never reported progress")


def worker_pid(layout: RunLayout) -> int:
    return next(e.pid for e in read_journal(layout.journal) if e.type == "stage_started")


def assert_nothing_half_done(layout: RunLayout) -> None:
    assert read_manifest(layout, "preprocess") is None
    assert not layout.filtered_frames_sd.exists() and not layout.filtered_frames_colmap.exists()
    assert not layout.staging.exists() or not any(layout.staging.iterdir())
    assert not layout.lock.exists()


def test_cancel_from_another_shell_stops_the_worker(tmp_path: Path, long_video: Path, capsys) -> None:
    proc, layout = start_slow_run(tmp_path, long_video)
    worker = worker_pid(layout)
    assert cli(["cancel", str(layout.root)]) == 0
    assert proc.wait(timeout=30) == 130
    kinds = [e.type for e in read_journal(layout.journal)]
    assert "stage_cancelled" in kinds and kinds[-1] == "run_finished"
    assert RunView.from_journal(layout.journal).status == "cancelled"
    time.sleep(0.2)
    assert not pid_alive(worker)
    assert_nothing_half_done(layout)


def test_ctrl_c_cancels_too(tmp_path: Path, long_video: Path) -> None:
    proc, layout = start_slow_run(tmp_path, long_video)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert RunView.from_journal(layout.journal).stages["preprocess"].state == "cancelled"
    assert_nothing_half_done(layout)


def test_a_killed_worker_fails_its_stage_and_leaves_nothing(tmp_path: Path, long_video: Path) -> None:
    proc, layout = start_slow_run(tmp_path, long_video)
    os.kill(worker_pid(layout), signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "✘ preprocess: the worker was killed by SIGKILL" in out
    assert_nothing_half_done(layout)


def test_a_second_run_on_a_busy_folder_is_refused(tmp_path: Path, long_video: Path, capsys) -> None:
    proc, layout = start_slow_run(tmp_path, long_video)
    try:
        os.chdir(tmp_path)
        code = cli(["run", "original-only", "--until", "preprocess", "--set", f"run.input={long_video}"])
        assert code == 3
        assert f"is being run by process {proc.pid}" in capsys.readouterr().err
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_a_stale_lock_of_a_dead_process_is_recovered(engine_run, sample_video: Path, tmp_path: Path) -> None:
    from conftest import small_overrides

    dead = subprocess.Popen(["true"])
    dead.wait()
    layout = RunLayout(tmp_path / "demo_outputs_dir" / "run")
    layout.meta.mkdir(parents=True)
    layout.lock.write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "start": "1"}))
    status, _, _ = engine_run(small_overrides(sample_video), until="preprocess")
    assert status == "done" and not layout.lock.exists()


def test_watch_and_status_rebuild_a_finished_run(engine_run, sample_video: Path, capsys) -> None:
    from conftest import small_overrides

    _, layout, _ = engine_run(small_overrides(sample_video), until="sheet")
    assert cli(["status", str(layout.root)]) == 0
    out = capsys.readouterr().out
    assert "status: done" in out and "preprocess  done" in out and "sheet       done" in out
    assert cli(["watch", str(layout.root)]) == 0
    assert "status: done" in capsys.readouterr().out


def test_a_dropped_terminal_does_not_stop_the_run(tmp_path: Path, long_video: Path) -> None:
    proc, layout = start_slow_run(tmp_path, long_video, frames=40)
    proc.send_signal(signal.SIGHUP)  # what an SSH drop sends to the foreground job
    assert proc.wait(timeout=120) == 0
    assert RunView.from_journal(layout.journal).stages["preprocess"].state == "done"
    assert len(list(layout.filtered_frames_sd.iterdir())) == 40
