"""Every fault ends in the truth: kill -9 at each point of a tiny run, full disks, orphans, odd locks.

After each fault, `gausynth status` says what really happened and a plain rerun completes with
nothing half-made marked done. Every wait is for an event or a file (deadlines only fail a hung
test; nothing assumes how fast this machine is).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gausynth_engine import RunLayout, read_manifest
from gausynth_engine._journal import read_journal
from gausynth_engine._lock import ProcessId, RunLock, RunLockedError, probe
from gausynth_engine._sample import SampleSpec, make_sample
from gausynth_engine.cli import main as cli

ENGINE = [sys.executable, "-m", "gausynth_engine"]
FRAMES = 24
REPO = Path(__file__).resolve().parents[2]


# --- helpers ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-frame clip; at large frame sizes its preprocess takes a few seconds."""
    return make_sample(tmp_path_factory.mktemp("clip"), SampleSpec(frames=40, width=160, height=120))


@pytest.fixture
def slow_args(clip: Path) -> list[str]:
    return run_args(clip, big=True)


def run_args(clip: Path, *extra: str, frames: int = FRAMES, big: bool = False) -> list[str]:
    """Gives a preprocess-only run; `big` frame sizes make it last long enough to be caught."""
    sizes = ("1024", "768") if big else ("64", "64")
    return ["run", "original-only", "--until", "preprocess", "--set", f"run.input={clip}",
            "--set", "run.directory=victim", "--set", f"preprocess.num_frames={frames}",
            "--set", f"preprocess.colmap_size={sizes[0]}", "--set", f"preprocess.sd_size={sizes[1]}", *extra]


def victim(tmp_path: Path) -> RunLayout:
    return RunLayout(tmp_path / "demo_outputs_dir" / "victim")


def start(args: list[str], cwd: Path, prelude: str = "") -> subprocess.Popen:
    """Starts the engine CLI in a subprocess, after `prelude` (fault injection) ran in it."""
    code = f"{prelude}\nimport sys\nfrom gausynth_engine.cli import main\nsys.exit(main({args!r}))"
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.Popen([sys.executable, "-c", code], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_for(check, what: str, proc: subprocess.Popen | None = None, deadline: float = 180):
    """Gives check()'s first truthy value; fails (never passes) when it does not come."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            value = check()
            if value:
                return value
            raise AssertionError(f"{what}: the process ended first:\n{proc.communicate()[0]}")
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def event(layout: RunLayout, kind: str, stage: str | None = None):
    for e in read_journal(layout.journal):
        if e.type == kind and (stage is None or getattr(e, "stage", None) == stage):
            return e
    return None


def status_of(layout: RunLayout, capsys) -> str:
    capsys.readouterr()
    assert cli(["status", str(layout.root)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return captured.out


def gone(pid: int) -> bool:
    return ProcessId.of(pid).alive() is False if ProcessId.of(pid).start else True


def rerun_completes(layout: RunLayout, args: list[str], tmp_path: Path, capsys) -> None:
    """The same command again ends done, every frame present, no staging or trash left, lock free."""
    capsys.readouterr()
    os.chdir(tmp_path)
    assert cli(args) == 0, capsys.readouterr()
    manifest = read_manifest(layout, "preprocess")
    assert manifest is not None
    assert len(list(layout.filtered_frames_sd.iterdir())) == FRAMES
    assert len(list(layout.filtered_frames_colmap.iterdir())) == FRAMES
    assert not layout.staging.exists() or not any(layout.staging.iterdir())
    assert not probe(layout.lock).held and not layout.lock.exists()
    assert "status: done" in status_of(layout, capsys)
    # What the manifest says is what is on disk, file by file.
    for rel, (size, _) in manifest["files"].items():
        assert (layout.root / rel).stat().st_size == size


def assert_nothing_marked_done(layout: RunLayout) -> None:
    assert read_manifest(layout, "preprocess") is None


# --- kill -9 of the worker and of the orchestrator ------------------------------------------------
@pytest.mark.slow
def test_kill9_of_the_worker_fails_the_stage_truthfully(tmp_path, slow_args, capsys):
    proc = start(slow_args, tmp_path)
    layout = victim(tmp_path)
    started = wait_for(lambda: event(layout, "progress", "preprocess") and event(layout, "stage_started"),
                       "the worker's first progress", proc)
    os.kill(started.pid, signal.SIGKILL)
    assert proc.wait(timeout=120) == 1
    out = status_of(layout, capsys)
    assert "status: failed" in out and "killed by SIGKILL" in out and "ETA" not in out
    assert_nothing_marked_done(layout)
    rerun_completes(layout, slow_args, tmp_path, capsys)


@pytest.mark.slow
def test_kill9_of_the_orchestrator_while_its_worker_runs(tmp_path, slow_args, capsys):
    proc = start(slow_args, tmp_path)
    layout = victim(tmp_path)
    started = wait_for(lambda: event(layout, "progress", "preprocess") and event(layout, "stage_started"),
                       "the worker's first progress", proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the orchestrator (its own session; the worker has another)
    proc.wait(timeout=60)
    # The orphan notices its reader is gone at its next event and ends; until then it holds the lock.
    wait_for(lambda: gone(started.pid) and not probe(layout.lock).held, "the orphan worker to end")
    out = status_of(layout, capsys)
    assert "status: died" in out and "interrupted" in out and "ETA" not in out
    assert "running" not in out.split("status:")[1].splitlines()[0]
    assert_nothing_marked_done(layout)
    rerun_completes(layout, slow_args, tmp_path, capsys)


@pytest.mark.slow
def test_an_orphan_worker_keeps_the_folder_until_cancelled(tmp_path, slow_args, capsys):
    """The attack's race: a rerun started a second worker beside a dead run's live orphan."""
    proc = start(slow_args, tmp_path)
    layout = victim(tmp_path)
    started = wait_for(lambda: event(layout, "progress", "preprocess") and event(layout, "stage_started"),
                       "the worker's first progress", proc)
    os.kill(started.pid, signal.SIGSTOP)  # the orphan stays alive (it cannot hit the broken pipe)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        assert probe(layout.lock).held  # the worker inherited the lock
        out = status_of(layout, capsys)
        assert "status: died" in out and f"orphan worker {started.pid}" in out and "ETA" not in out
        os.chdir(tmp_path)
        assert cli(slow_args) == 3
        err = capsys.readouterr().err
        assert "held by worker(s) of run process" in err and "gausynth cancel" in err
        assert len([e for e in read_journal(layout.journal) if e.type == "stage_started"]) == 1
        assert cli(["cancel", str(layout.root)]) == 0
        assert "stopped 1 orphan worker(s): preprocess" in capsys.readouterr().out
        assert gone(started.pid) and not probe(layout.lock).held
    finally:
        if not gone(started.pid):
            os.killpg(started.pid, signal.SIGKILL)
    out = status_of(layout, capsys)
    assert "status: died" in out and "interrupted" in out
    rerun_completes(layout, slow_args, tmp_path, capsys)


KILL_AT_TRASH_MOVE = """
import os, signal
_real, _moves = os.replace, []
def _replace(src, dst, *a, **k):
    _real(src, dst, *a, **k)
    if '.trash-' in str(dst):
        _moves.append(dst)
        if len(_moves) == 2:  # the old colmap frames are in the trash, the new ones not placed
            os.kill(os.getpid(), signal.SIGKILL)
os.replace = _replace
"""

KILL_AFTER_MANIFEST = """
import os, signal
import gausynth_engine._orchestrator as o
_real = o.write_json_atomic
def _write(path, data):
    _real(path, data)
    if path.name == 'preprocess.json':
        os.kill(os.getpid(), signal.SIGKILL)
o.write_json_atomic = _write
"""


def test_kill9_during_the_rename_into_place(tmp_path, clip, capsys):
    os.chdir(tmp_path)
    assert cli(run_args(clip, frames=12)) == 0  # earlier outputs, to be replaced by the rerun
    layout = victim(tmp_path)
    proc = start(run_args(clip), tmp_path, KILL_AT_TRASH_MOVE)
    assert proc.wait(timeout=300) == -signal.SIGKILL
    trash = list(layout.staging.glob(".trash-*"))
    assert trash and not layout.filtered_frames_sd.exists()  # killed mid-rename
    out = status_of(layout, capsys)
    assert "status: died" in out and "interrupted" in out
    assert_nothing_marked_done(layout)
    rerun_completes(layout, run_args(clip), tmp_path, capsys)  # also: the stale trash is gone


def test_kill9_after_the_manifest_is_written_keeps_the_finished_stage(tmp_path, clip, capsys):
    proc = start(run_args(clip), tmp_path, KILL_AFTER_MANIFEST)
    layout = victim(tmp_path)
    assert proc.wait(timeout=300) == -signal.SIGKILL
    out = status_of(layout, capsys)
    assert "status: died" in out and "preprocess  done" in out  # complete and recorded: truly done
    os.chdir(tmp_path)
    capsys.readouterr()
    assert cli(run_args(clip, "--dry-run")) == 0
    assert "preprocess  skip  unchanged" in capsys.readouterr().out
    rerun_completes(layout, run_args(clip), tmp_path, capsys)


def test_watch_ends_when_the_orchestrator_is_gone(tmp_path, slow_args):
    proc = start(slow_args, tmp_path)
    layout = victim(tmp_path)
    wait_for(lambda: event(layout, "progress", "preprocess"), "the worker's first progress", proc)
    watcher = subprocess.Popen([*ENGINE, "watch", str(layout.root)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    first = watcher.stdout.readline()  # it follows the live run now
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    out, _ = watcher.communicate(timeout=120)  # a watch that never ends fails here
    out = first + out
    assert watcher.returncode == 0
    assert "is gone without finishing" in out and "status: died" in out and "Traceback" not in out


# --- a training killed after a checkpoint ----------------------------------------------------------
TRAIN = """
import dataclasses, json, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from gausynth_engine import parse_preset
from gausynth_engine._layout import RunLayout
from gausynth_engine._stage import StageContext
from gausynth_engine.stages import splat
layout = RunLayout(Path(sys.argv[1]))
preset = parse_preset("", "test", ["run.pipeline='original'", "mask.method='off'"])
small = dataclasses.replace(preset.splat, iterations=20, eval_at=(), test_every=4, checkpoint_every=10)
preset = dataclasses.replace(preset, splat=small)
def emit(e):
    print(json.dumps(e), flush=True)
ctx = StageContext(splat.STAGE_ORIG, preset, layout, layout.staging_for("splat_orig"), emit, "cpu")
splat.STAGE_ORIG.run(ctx)
print(json.dumps({"type": "record", **ctx.record_data}), flush=True)
"""


@pytest.fixture(scope="module")
def true_scene(sample_video: Path, tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("torch")
    from synthetic_scene import make_true_scene

    return make_true_scene(tmp_path_factory.mktemp("scene"), views=12, width=40, height=40,
                           points=500, cameras_json=sample_video.with_suffix(".cameras.json"))


def train_process(layout: RunLayout) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.Popen([sys.executable, "-c", TRAIN, str(layout.root)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_kill9_mid_training_resumes_from_the_checkpoint_and_a_damaged_one_is_said(true_scene, tmp_path):
    from synthetic_scene import run_with_true_sfm

    layout = run_with_true_sfm(true_scene, tmp_path / "run")
    first = train_process(layout)
    for line in first.stdout:  # the worker's own event stream: wait for the checkpoint
        if json.loads(line).get("message") == "checkpoint at step 10":
            first.kill()
            break
    first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL
    work = layout.meta / "checkpoints" / "orig"
    assert (work / "last.pt").exists()
    shutil.copytree(work, tmp_path / "work-at-10")  # the same kill, once more, for the damage below
    shutil.rmtree(layout.staging, ignore_errors=True)
    again = train_process(layout)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["resumed_from"] == 10

    # A damaged checkpoint costs the resume, and the log says so.
    shutil.rmtree(layout.staging, ignore_errors=True)
    shutil.copytree(tmp_path / "work-at-10", work)
    (work / "last.pt").write_bytes((work / "last.pt").read_bytes()[:100])
    third = train_process(layout)
    out, err = third.communicate(timeout=600)
    assert third.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["resumed_from"] == 0
    assert f"checkpoint {work / 'last.pt'} unreadable:" in err and "starting from step 0" in err


# --- a full disk -----------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path):
    """A 3 MiB tmpfs (root only); skipped with the reason where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'not root'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_a_full_disk_fails_in_one_line_and_a_rerun_after_freeing_space_completes(
        tmp_path, clip, small_disk, capsys):
    os.chdir(tmp_path)
    args = [*run_args(clip, big=True), "--outputs-root", str(small_disk)]
    capsys.readouterr()
    assert cli(args) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    line = next(ln for ln in captured.out.splitlines() if "✘ preprocess" in ln)
    assert "disk full while writing" in line and str(small_disk) in line, line
    layout = RunLayout(small_disk / "victim")
    assert read_manifest(layout, "preprocess") is None
    assert "status: failed" in status_of(layout, capsys)

    # Full before the run starts: still one line, naming the path; nothing is written.
    filler = small_disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    assert cli([*args, "--set", "run.directory=second"]) == 1
    err = capsys.readouterr()
    assert "Traceback" not in err.out + err.err
    assert "the disk is full" in err.err + err.out and str(small_disk) in err.err + err.out
    filler.unlink()
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    assert cli(args) == 0
    assert len(list(layout.filtered_frames_sd.iterdir())) == FRAMES
    assert read_manifest(layout, "preprocess") is not None


def test_a_full_disk_in_a_native_library_is_not_reported_as_a_crash(tmp_path, small_disk):
    """COLMAP's glog aborts when it cannot write: the exit is SIGABRT, the cause the disk."""
    from gausynth_engine._orchestrator import _exit_text

    (small_disk / "filler").write_bytes(b"")
    with open(small_disk / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    log = tmp_path / "sfm.log"
    log.write_text("F1201 colmap: Check failed: file.is_open()\n*** Check failure stack trace: ***\n")
    text = _exit_text(-signal.SIGABRT, log, small_disk / "run")
    assert "the disk is full" in text and "SIGABRT" in text and str(small_disk / "run") in text
    (small_disk / "filler").unlink()
    assert "the disk is full" not in _exit_text(-signal.SIGABRT, log, small_disk / "run")


# --- locks: races, foreign hosts, identities ---------------------------------------------------------
RACER = """
import sys, time
from pathlib import Path
from gausynth_engine._lock import RunLock, RunLockedError
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
lock = RunLock(Path(sys.argv[1]))
try:
    lock.acquire()
except RunLockedError:
    print("refused", flush=True)
    sys.exit(0)
print("took", flush=True)
sys.stdin.readline()  # hold it until the test has counted
"""


def test_a_stale_lock_is_taken_over_by_exactly_one_of_many_racers(tmp_path):
    layout = RunLayout(tmp_path / "run")
    layout.meta.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    layout.lock.write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "start": "1"}))
    go = tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(layout.lock), str(go)], env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(4)]
    go.touch()
    answers = [r.stdout.readline().strip() for r in racers]
    for r in racers:
        r.stdin.close()
        r.wait(timeout=30)
    assert sorted(answers) == ["refused", "refused", "refused", "took"]


def test_a_foreign_hosts_lock_is_never_signalled_and_the_truth_is_told(tmp_path, clip, capsys):
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)  # a local pid it names
    try:
        layout = victim(tmp_path)
        layout.meta.mkdir(parents=True)
        record = {"pid": stranger.pid, "host": "elsewhere", "start": "1", "since": time.time()}
        layout.lock.write_text(json.dumps(record))
        layout.journal.write_text(json.dumps({"type": "run_started", "t": time.time(), "pid": stranger.pid,
                                              "preset": "p.toml", "command": "run", "host": "elsewhere",
                                              "start": "1"}) + "\n")
        out = status_of(layout, capsys)
        assert "status: running" in out and "runs on host elsewhere" in out
        assert cli(["cancel", str(layout.root)]) == 1
        assert "on host elsewhere" in capsys.readouterr().err
        assert stranger.poll() is None  # not signalled
        # Where the disk is shared and the flock held (here by this test), cancel refuses too.
        import fcntl

        fd = os.open(layout.lock, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            layout.journal.rename(layout.journal.with_suffix(".aside"))
            assert cli(["cancel", str(layout.root)]) == 1
            assert f"run by process {stranger.pid} on host elsewhere" in capsys.readouterr().err
            assert stranger.poll() is None
        finally:
            os.close(fd)
            layout.journal.with_suffix(".aside").rename(layout.journal)
        rerun_completes(layout, run_args(clip), tmp_path, capsys)  # nobody holds the flock: the rerun may go
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_cancel_signals_only_provable_process_groups(tmp_path, capsys):
    """A journal naming a reused pid, or a process that does not lead its group, gets no signal."""
    layout = RunLayout(tmp_path / "run")
    layout.meta.mkdir(parents=True)
    follower = subprocess.Popen(["sleep", "300"])  # in the test's own process group
    reused = subprocess.Popen(["sleep", "300"], start_new_session=True)
    me = ProcessId.of(follower.pid)
    lines = [{"type": "run_started", "t": 1.0, "pid": 999999, "preset": "p", "command": "run",
              "host": me.host, "start": "1"},
             {"type": "stage_started", "t": 2.0, "stage": "preprocess", "pid": follower.pid,
              "fingerprint": "x", "log": "l", "host": me.host, "start": me.start, "boot": me.boot},
             {"type": "stage_started", "t": 3.0, "stage": "sheet", "pid": reused.pid,
              "fingerprint": "x", "log": "l", "host": me.host, "start": "12345", "boot": me.boot}]
    layout.journal.write_text("".join(json.dumps(x) + "\n" for x in lines))
    try:
        capsys.readouterr()
        assert cli(["cancel", str(layout.root)]) == 0
        captured = capsys.readouterr()
        assert "Traceback" not in captured.out + captured.err
        assert f"process {follower.pid} does not lead its own process group" in captured.err
        assert follower.poll() is None and reused.poll() is None
        out = status_of(layout, capsys)
        assert "status: died" in out and "sheet" in out and "interrupted" in out  # the reused pid is not it
    finally:
        for p in (follower, reused):
            p.kill()
            p.wait()


def test_a_lock_taken_in_this_process_refuses_a_second_taker(tmp_path):
    first, second = RunLock(tmp_path / "lock"), RunLock(tmp_path / "lock")
    first.acquire()
    with pytest.raises(RunLockedError, match=f"being run by process {os.getpid()}"):
        second.acquire()
    first.release()
    second.acquire()
    second.release()
    assert not (tmp_path / "lock").exists()


# --- the journal and the manifests ---------------------------------------------------------------------
@pytest.fixture
def finished(tmp_path, clip, capsys) -> RunLayout:
    os.chdir(tmp_path)
    assert cli(run_args(clip, frames=12)) == 0
    capsys.readouterr()
    return victim(tmp_path)


def test_corrupt_or_wrongly_typed_journal_lines_are_skipped_with_a_warning(finished, capsys):
    with open(finished.journal, "a") as f:
        f.write('{"type": "progress", "t": 1.0, "stage": "preprocess", "value": "abc", "total": 3}\n')
        f.write("this is not json\n")
        f.write('{"type": "stage_failed", "t": 1.0, "stage": 7, "error": null}\n')
        f.write('[1, 2]\n')
    capsys.readouterr()
    assert cli(["status", str(finished.root)]) == 0
    captured = capsys.readouterr()
    assert "status: done" in captured.out and "Traceback" not in captured.err
    warnings = [ln for ln in captured.err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 4 and all(str(finished.journal) in w for w in warnings)
    assert "progress.value = 'abc' is not float" in warnings[0]


def test_a_deleted_journal_with_manifests_is_not_new(finished, capsys):
    finished.journal.unlink()
    out = status_of(finished, capsys)
    assert "status: new" not in out and "preprocess  done" in out and "the journal is gone" in out


def test_a_changed_or_missing_output_file_reruns_its_stage_and_says_which(finished, clip, capsys):
    frames = sorted(finished.filtered_frames_colmap.iterdir())

    def dry() -> str:
        capsys.readouterr()
        assert cli(run_args(clip, "--dry-run", frames=12)) == 0
        return capsys.readouterr().out

    assert "preprocess  skip  unchanged" in dry()
    frames[3].write_bytes(frames[3].read_bytes() + b"x")  # replaced by hand
    assert f"output file filtered_frames_colmap/{frames[3].name} changed size" in dry()
    capsys.readouterr()
    assert cli(run_args(clip, frames=12)) == 0
    frames[5].unlink()
    assert f"output file filtered_frames_colmap/{frames[5].name} is missing" in dry()
    capsys.readouterr()
    assert cli(run_args(clip, frames=12)) == 0
    first_sd = sorted(finished.filtered_frames_sd.iterdir())[0]
    os.utime(first_sd, ns=(1, 1))  # same size, rewritten in place
    assert f"output file filtered_frames_sd/{first_sd.name} was modified" in dry()
    shutil.rmtree(finished.filtered_frames_sd)
    assert "output filtered_frames_sd is missing" in dry()


def test_a_dry_run_writes_nothing_and_leaves_no_phantom_run(tmp_path, clip, finished, capsys):
    os.chdir(tmp_path)
    root = tmp_path / "demo_outputs_dir"
    assert cli(run_args(clip, "--dry-run", "--set", "run.directory=phantom", frames=12)) == 0
    assert cli(run_args(clip, "--dry-run", "--force", frames=12)) == 0
    finished.input_hashes.unlink()
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert cli(run_args(clip, "--dry-run", frames=12)) == 0
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before
    assert not (root / "phantom").exists() and not finished.input_hashes.exists()


def test_the_plan_is_made_under_the_lock(tmp_path, clip, finished, capsys):
    """A run that finished while this one waited to start must not be redone from a stale plan."""
    from gausynth_engine import Orchestrator, make_plan, parse_preset
    from gausynth_engine.cli import resolve_paths

    preset = resolve_paths(parse_preset("", "test", [f"run.input={clip}", "run.directory=victim",
                                                      "run.pipeline='original'", "preprocess.num_frames=12",
                                                      "preprocess.colmap_size=64", "preprocess.sd_size=64"]))
    calls = []

    def plan():
        calls.append(probe(finished.lock).held)
        return make_plan(preset, finished, until="preprocess")

    assert Orchestrator(preset, finished).run(plan) == "done"
    assert calls == [True]


# --- retention and stale staging --------------------------------------------------------------------------
def test_old_trainings_are_pruned_but_never_the_one_in_use(tmp_path):
    from gausynth_engine._manifest import write_json_atomic
    from gausynth_engine._orchestrator import prune_trainings

    layout = RunLayout(tmp_path / "run")
    names = [f"reim_1000-2026010{i}-000000" for i in range(1, 7)] + ["orig_1000-20260101-000000",
                                                                      "compare.md"]
    for n in names:
        (layout.gs / n).mkdir(parents=True) if not n.endswith(".md") else (layout.gs / n).write_text("x")
    in_use = "reim_1000-20260101-000000"  # the oldest, but the manifest names it
    write_json_atomic(layout.manifest("splat_reim"), {"fingerprint": "f", "outputs": [f"gs/{in_use}"]})
    removed = prune_trainings(layout, keep=3)
    left = sorted(p.name for p in layout.gs.iterdir())
    assert left == ["compare.md", "orig_1000-20260101-000000", in_use,
                    "reim_1000-20260105-000000", "reim_1000-20260106-000000"]
    assert sorted(removed) == [f"reim_1000-2026010{i}-000000" for i in (2, 3, 4)]


def test_a_run_starts_by_clearing_what_dead_runs_left_in_staging(finished, clip, tmp_path, capsys):
    trash = finished.staging / ".trash-123-456" / "0-filtered_frames_sd"
    trash.mkdir(parents=True)
    (trash / "x.png").write_bytes(b"x")
    (finished.staging / "preprocess").mkdir()
    os.chdir(tmp_path)
    assert cli(run_args(clip, frames=12)) == 0
    assert not finished.staging.exists() or not any(finished.staging.iterdir())



def test_a_normal_cancel_is_marked_expected_in_the_stage_log(tmp_path, slow_args, capsys):
    """COLMAP's glog dumps '*** Aborted … stack trace' on SIGTERM: the log says that is expected."""
    proc = start(slow_args, tmp_path)
    layout = victim(tmp_path)
    wait_for(lambda: event(layout, "progress", "preprocess"), "the worker's first progress", proc)
    assert cli(["cancel", str(layout.root)]) == 0
    assert proc.wait(timeout=120) == 130
    log = layout.log_file("preprocess").read_text()
    assert "preprocess cancelled on request" in log and "not a crash" in log
    out = status_of(layout, capsys)
    assert "status: cancelled" in out and "ETA" not in out
    assert_nothing_marked_done(layout)
