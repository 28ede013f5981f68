"""Viewers rebuild state from the journal alone; the layout keeps runs inside the outputs root."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gausynth_engine import (
    JournalReader,
    LayoutError,
    Progress,
    RunFinished,
    RunLayout,
    RunStarted,
    RunView,
    StageDone,
    StagePlanned,
    StageStarted,
    Telemetry,
)
from gausynth_engine._journal import JournalWriter, follow_journal


def write(path: Path, *events) -> None:
    w = JournalWriter(path)
    for e in events:
        w.write(e)
    w.close()


def test_a_view_rebuilds_progress_eta_and_outcome(tmp_path: Path) -> None:
    j = tmp_path / "events.jsonl"
    write(j, RunStarted(pid=os.getpid(), preset="p.toml", command="run", t=100.0),
          StagePlanned(stage="sfm", action="run", reason="not run yet", t=100.0),
          StageStarted(stage="sfm", pid=2, fingerprint="f", log="l", t=100.0),
          *[Progress(stage="sfm", value=i, total=20, unit="images", t=100.0 + i) for i in range(11)],
          Telemetry(device="H200", vram_used=2**30, vram_total=2**32, utilization=50.0, t=111.0))
    view = RunView.from_journal(j)
    s = view.stages["sfm"]
    assert s.state == "running" and s.fraction == 0.5
    assert s.rate == pytest.approx(1.0) and s.eta == pytest.approx(10.0)
    assert view.telemetry[-1].vram_used == 2**30
    assert view.status == "running"  # its orchestrator (this process) is alive


def test_a_torn_last_line_waits_and_foreign_lines_are_skipped(tmp_path: Path) -> None:
    j = tmp_path / "events.jsonl"
    write(j, StagePlanned(stage="sheet", action="skip", reason="unchanged"))
    with open(j, "a") as f:
        f.write('{"type": "from_the_future", "x": 1}\nnot json\n{"type": "stage_done", "stage": "sh')
    reader = JournalReader(j)
    assert [e.type for e in reader.read_new()] == ["stage_planned"]
    with open(j, "a") as f:
        f.write('eet", "seconds": 1.5}\n')
    (done,) = reader.read_new()
    assert isinstance(done, StageDone) and done.stage == "sheet" and done.seconds == 1.5


def test_follow_ends_with_the_run(tmp_path: Path) -> None:
    j = tmp_path / "events.jsonl"
    write(j, StagePlanned(stage="sheet", action="run", reason="x"), RunFinished(status="done", seconds=1))
    assert [e.type for e in follow_journal(j, poll=0.01)] == ["stage_planned", "run_finished"]


@pytest.mark.parametrize("name", ["../escape", "/etc", "a/b", "..", ".hidden", ""])
def test_a_run_name_cannot_leave_the_outputs_root(tmp_path: Path, name: str) -> None:
    with pytest.raises(LayoutError, match="plain folder name"):
        RunLayout.for_run(tmp_path, name)


def test_a_link_out_of_the_outputs_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "root" / "evil").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(LayoutError, match="outside"):
        RunLayout.for_run(tmp_path / "root", "evil")


def test_the_layout_names_the_reference_folders(tmp_path: Path) -> None:
    lay = RunLayout.for_run(tmp_path, "r")
    names = {p.relative_to(lay.root).as_posix() for p in (
        lay.filtered_frames_colmap, lay.filtered_frames_sd, lay.orig_sheets, lay.reimagine_sheets,
        lay.ebsynth_all, lay.ebsynth_transparent, lay.orig_transparent, lay.blend_transparent,
        lay.sr_frames, lay.colmap_distorted, lay.colmap_images, lay.colmap_input, lay.colmap_stereo,
        lay.new_videos)}
    assert "colmap/distorted" in names and "sr_frames" in names and len(names) == 14
    assert lay.colmap_sparse.relative_to(lay.root).as_posix() == "colmap/sparse/0"
    assert lay.gs_run("reim", 7000, "20261121-1200").name == "reim_7000-20261121-1200"


def test_a_dead_orchestrator_shows_as_died(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    j = tmp_path / "events.jsonl"
    write(j, RunStarted(pid=dead.pid, preset="p", command="run"),
          StageStarted(stage="sfm", pid=dead.pid, fingerprint="f", log="l"))
    assert RunView.from_journal(j).status == "died"
