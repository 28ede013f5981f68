"""A user queues many objects over the GPUs of one box: stages are placed, packed, never
oversubscribed, and the queue outlives a killed runner or a dying run.

NVML is faked at its boundary only: `fake_nvml/pynvml.py` reads the GPUs from a JSON file.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import small_overrides

from gausynth_engine._journal import RunView, pid_alive, read_journal
from gausynth_engine._layout import RunLayout
from gausynth_engine._orchestrator import Placement
from gausynth_engine._plan import StagePlan
from gausynth_engine._preset import parse_preset
from gausynth_engine.queue._client import LocalPlacement
from gausynth_engine.queue._gpus import Gpu, list_gpus
from gausynth_engine.queue._journal import (
    JobAdded,
    JobFinished,
    JobRequeued,
    JobStarted,
    QueueJournal,
    RunnerStarted,
    RunnerStopped,
    StagePlaced,
)
from gausynth_engine.queue._runner import Runner
from gausynth_engine.queue._scheduler import VRAM_MARGIN, VRAM_OVERHEAD, Ledger, Need, vram_estimate
from gausynth_engine.stages import BY_ID, SECTIONS

GIB = 2**30
FAKE_NVML = Path(__file__).parent / "fake_nvml"
REPO = Path(__file__).resolve().parents[2]
QUEUE_SETS = {"run.device": "auto", "preprocess.num_frames": 24, "preprocess.colmap_size": 240}
if "mask" in SECTIONS:  # where SfM frames keep their aspect (240 → 320×240) and a mask stage exists
    QUEUE_SETS.update({"preprocess.colmap_size": 320, "mask.method": "off"})


def gpu(index: int, total_gib: float, used_gib: float = 0.0) -> Gpu:
    return Gpu(index, "Fake H200", f"GPU-fake-{index:04d}", int(total_gib * GIB), int(used_gib * GIB))


def wait_for(condition: Callable[[], object], what: str, timeout: float = 180.0) -> object:
    """Waits for a file or journal condition (a guard against hangs, not a timing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def fake_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Gives set(*(total_gib, used_gib)): the GPUs NVML shows, in this process and its children."""
    path = tmp_path / "fake-gpus.json"
    spec = importlib.util.spec_from_file_location("pynvml", FAKE_NVML / "pynvml.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.setenv("GAUSYNTH_FAKE_GPUS", str(path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKE_NVML), str(REPO), os.environ.get("PYTHONPATH", "")]))

    def set_gpus(*gpus: tuple[float, float]) -> None:
        path.write_text(json.dumps([{"name": "Fake H200", "total": int(t * GIB), "used": int(u * GIB)}
                                    for t, u in gpus]))

    return set_gpus


# --- the ledger: where stages go ----------------------------------------------------------------
def test_nvml_is_read_through_the_fake_boundary(fake_gpus) -> None:
    fake_gpus((80, 1), (80, 0))
    gpus, why = list_gpus()
    assert why == "" and [(g.index, g.uuid, g.free) for g in gpus] == [
        (0, "GPU-fake-0000", 79 * GIB), (1, "GPU-fake-0001", 80 * GIB)]


def test_stages_of_unknown_need_get_a_gpu_of_their_own() -> None:
    ledger = Ledger(cores=8)
    gpus = [gpu(0, 80, 5), gpu(1, 80, 0)]
    a = ledger.try_grant(Need("a", "splat_orig", True, None, 1), gpus)
    b = ledger.try_grant(Need("b", "splat_orig", True, None, 1), gpus)
    assert a.gpus == (1,) and b.gpus == (0,)  # the emptiest first
    assert a.env()["CUDA_VISIBLE_DEVICES"] == "GPU-fake-0001"
    assert ledger.try_grant(Need("c", "splat_orig", True, None, 1), gpus) is None
    assert ledger.try_grant(Need("c", "splat_orig", True, 2 * GIB, 1), gpus) is None  # exclusive means alone
    ledger.release(("b", "splat_orig"))
    assert ledger.try_grant(Need("c", "splat_orig", True, None, 1), gpus).gpus == (0,)


def test_small_stages_with_recorded_peaks_pack_onto_the_fullest_gpu() -> None:
    ledger = Ledger(cores=8)
    gpus = [gpu(0, 24, 0), gpu(1, 24, 10)]  # another process holds 10 GiB of GPU 1
    placed = [ledger.try_grant(Need(j, "splat_orig", True, 6 * GIB, 1), gpus).gpus[0] for j in "abcdef"]
    # GPU 1 has room for two (14 GiB), GPU 0 for four (24 GiB): best fit fills GPU 1 first.
    assert placed == [1, 1, 0, 0, 0, 0]
    assert ledger.try_grant(Need("g", "splat_orig", True, 6 * GIB, 1), gpus) is None


def test_cpu_stages_share_the_core_budget_and_get_no_gpu() -> None:
    ledger = Ledger(cores=4)
    sfm = ledger.try_grant(Need("a", "sfm", False, None, ledger.cores_for("sfm", False)), [gpu(0, 80)])
    assert sfm.gpus == () and sfm.cores == 2 and sfm.env()["CUDA_VISIBLE_DEVICES"] == ""
    assert sfm.env()["OMP_NUM_THREADS"] == "2"
    assert ledger.try_grant(Need("b", "sfm", False, None, 2), []).cores == 2
    assert ledger.try_grant(Need("c", "preprocess", False, None, 1), []) is None  # 4 of 4 cores in use
    ledger.release(("a", "sfm"))
    assert ledger.try_grant(Need("c", "preprocess", False, None, 1), []) is not None


@pytest.mark.parametrize("seed", range(5))
def test_random_claims_and_releases_never_oversubscribe_a_gpu(seed: int) -> None:
    rng = random.Random(seed)
    gpus = [gpu(i, rng.choice([16, 24, 80]), rng.choice([0, 0, 3, 9])) for i in range(rng.randint(1, 4))]
    ledger = Ledger(cores=rng.randint(2, 16))
    held: list[tuple[str, str]] = []
    granted = 0
    for step in range(400):
        if held and rng.random() < 0.4:
            ledger.release(held.pop(rng.randrange(len(held))))
            continue
        vram = rng.choice([None, 1 * GIB, 3 * GIB, 7 * GIB, 15 * GIB])
        need = Need(f"j{step}", "splat_orig", rng.random() < 0.8, vram, 1)
        grant = ledger.try_grant(need, gpus)
        if grant is None:
            continue
        granted += 1
        held.append(need.key)
        for g in gpus:  # other processes' use + our reservations fit in every GPU
            on_it = [h for h in ledger.held.values() if g.index in h.gpus]
            assert g.used + sum(h.vram for h in on_it if not h.exclusive) <= g.total
            assert not any(h.exclusive for h in on_it) or len(on_it) == 1
        assert ledger.cores_used() <= ledger.cores
    assert granted > 50


def test_the_need_comes_from_the_peaks_manifests_recorded(tmp_path: Path) -> None:
    def manifest(run: str, peak: int | None) -> RunLayout:
        layout = RunLayout(tmp_path / run)
        layout.manifests.mkdir(parents=True)
        layout.manifest("splat_orig").write_text(json.dumps({"stage": "splat_orig", "peak_vram": peak}))
        return layout

    manifest("small", 2 * GIB)
    manifest("big", 8 * GIB)
    fresh = RunLayout(tmp_path / "fresh")
    assert vram_estimate("splat_orig", fresh, tmp_path) == int(8 * GIB * VRAM_MARGIN) + VRAM_OVERHEAD
    assert vram_estimate("splat_orig", RunLayout(tmp_path / "small"), tmp_path) == \
        int(2 * GIB * VRAM_MARGIN) + VRAM_OVERHEAD  # a rerun: its own peak
    assert vram_estimate("sfm", fresh, tmp_path) is None
    layout = RunLayout(tmp_path / "model-free")  # a stage that ran on a GPU box, never touching it
    layout.manifests.mkdir(parents=True)
    layout.manifest("mask").write_text(json.dumps({"stage": "mask", "peak_vram": 0}))
    assert vram_estimate("mask", layout, tmp_path) == VRAM_OVERHEAD


def test_a_stage_that_never_touched_the_gpu_records_a_zero_peak_not_an_unknown(monkeypatch) -> None:
    """On the H200 the model-free mask stage recorded no peak, so the queue gave it a whole GPU
    and the second object's mask waited 22 s for the first object's training to end."""
    import sys
    import types

    import torch

    from gausynth_engine.worker import peak_vram

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.delitem(sys.modules, "onnxruntime", raising=False)
    assert peak_vram() == 0
    ort = types.SimpleNamespace(get_available_providers=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setitem(sys.modules, "onnxruntime", ort)
    assert peak_vram() is None  # its memory is not torch's: unknown, so the GPU stays its own
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert peak_vram() is None


# --- the runner: placing stages over its socket -------------------------------------------------
def adopted_jobs(journal: QueueJournal, names: list[str]) -> None:
    """Queues jobs already "running" in this test process, so the runner adopts them, starts nothing."""
    from gausynth_engine._lock import _start_time

    for name in names:
        journal.append(JobAdded(job=name, preset="test", sets=(), directory=name),
                       JobStarted(job=name, pid=os.getpid(), start=_start_time(os.getpid()),
                                  host=os.uname().nodename))


async def until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def gpu_step() -> StagePlan:
    return StagePlan(BY_ID["splat_orig"], "run", "test")


async def test_the_runner_pins_each_gpu_stage_and_holds_the_third_until_one_ends(tmp_path, fake_gpus) -> None:
    fake_gpus((80, 0), (80, 2))
    journal = QueueJournal(tmp_path)
    adopted_jobs(journal, ["a", "b", "c"])
    runner = Runner(journal, cores=8, keep_alive=True)
    task = asyncio.create_task(runner.run())
    await until(journal.socket.exists, "the runner's socket")
    preset = parse_preset("", "test", [])
    claims = {j: LocalPlacement(journal, j, preset)(gpu_step()) for j in "abc"}
    a = await claims["a"].__aenter__()
    b = await claims["b"].__aenter__()
    assert {a.env["CUDA_VISIBLE_DEVICES"], b.env["CUDA_VISIBLE_DEVICES"]} == {"GPU-fake-0000", "GPU-fake-0001"}
    assert a.gpus == (0,) and b.gpus == (1,)
    third = asyncio.ensure_future(claims["c"].__aenter__())
    await until(lambda: runner.waiters, "the third claim to reach the runner")
    assert not third.done()
    await claims["a"].__aexit__(None, None, None)
    c = await asyncio.wait_for(third, 60)
    assert c.env["CUDA_VISIBLE_DEVICES"] == "GPU-fake-0000"
    placed = [e for e in read_journal_queue(journal) if isinstance(e, StagePlaced)]
    assert [(e.job, e.gpus) for e in placed] == [("a", (0,)), ("b", (1,)), ("c", (0,))]
    for j in "bc":
        await claims[j].__aexit__(None, None, None)
    runner.stop()
    await asyncio.wait_for(task, 60)


async def test_a_new_runner_keeps_the_gpus_of_stages_placed_by_a_killed_one(tmp_path, fake_gpus) -> None:
    fake_gpus((80, 0))
    journal = QueueJournal(tmp_path)
    adopted_jobs(journal, ["a", "b"])
    first = Runner(journal, cores=8, keep_alive=True)
    task = asyncio.create_task(first.run())
    await until(journal.socket.exists, "the runner's socket")
    preset = parse_preset("", "test", [])
    claim_a = LocalPlacement(journal, "a", preset)(gpu_step())
    a = await claim_a.__aenter__()
    assert a.gpus == (0,)
    task.cancel()  # the runner dies without a word (its socket closes, nothing is released)
    with pytest.raises(asyncio.CancelledError):
        await task
    second = Runner(journal, cores=8, keep_alive=True)
    task = asyncio.create_task(second.run())
    await until(lambda: ("a", "splat_orig") in second.ledger.held, "the new runner to know a's place")
    claim_b = asyncio.ensure_future(LocalPlacement(journal, "b", preset)(gpu_step()).__aenter__())
    await until(lambda: second.waiters, "b's claim to reach the new runner")
    assert not claim_b.done()  # the only GPU is still a's
    await claim_a.__aexit__(None, None, None)
    assert (await asyncio.wait_for(claim_b, 60)).gpus == (0,)
    second.stop()
    await asyncio.wait_for(task, 60)


async def test_places_in_the_journal_of_runs_still_going_stay_taken_after_a_restart(tmp_path, fake_gpus) -> None:
    """No word from a's run yet (it re-announces later): the journal alone keeps its GPU taken."""
    fake_gpus((80, 0))
    journal = QueueJournal(tmp_path)
    adopted_jobs(journal, ["a", "b"])
    journal.append(StagePlaced(job="a", stage="splat_orig", gpus=(0,), cores=1, vram=80 * GIB, host="box",
                               uuids=("GPU-fake-0000",), exclusive=True))
    runner = Runner(journal, cores=8, keep_alive=True)
    task = asyncio.create_task(runner.run())
    await until(journal.socket.exists, "the runner's socket")
    claim_b = asyncio.ensure_future(LocalPlacement(journal, "b", parse_preset("", "test", []))(gpu_step()).__aenter__())
    await until(lambda: runner.waiters, "b's claim to reach the runner")
    runner._pump()
    assert not claim_b.done() and runner.ledger.held[("a", "splat_orig")].gpus == (0,)
    claim_b.cancel()
    runner.stop()
    await asyncio.wait_for(task, 60)


def read_journal_queue(journal: QueueJournal) -> list:
    return journal.reader().read_new()


# --- the orchestrator's hook ------------------------------------------------------------------
def test_the_orchestrator_runs_each_worker_where_the_hook_places_it(engine_run_placed, tmp_path: Path) -> None:
    seen = tmp_path / "worker-env.json"
    spy = (f"import json, os, sys; open({str(seen)!r}, 'w').write(json.dumps(dict(os.environ))); "
           "os.execv(sys.executable, [sys.executable, '-m', 'gausynth_engine.worker', *sys.argv[1:]])")

    @contextlib.asynccontextmanager
    async def place(step):
        yield Placement(env={"CUDA_VISIBLE_DEVICES": "GPU-fake-0001", "OMP_NUM_THREADS": "3"},
                        command=(sys.executable, "-c", spy), gpus=())

    status, events = engine_run_placed(place)
    assert status == "done" and [e.stage for e in events if e.type == "stage_done"] == ["preprocess"]
    env = json.loads(seen.read_text())
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-fake-0001" and env["OMP_NUM_THREADS"] == "3"
    assert not [e for e in events if e.type == "telemetry"]  # gpus=(): nothing of this machine to sample


def test_a_run_cancelled_while_its_stage_waits_for_a_place_ends_cancelled(engine_run_placed) -> None:
    entered: list[str] = []

    @contextlib.asynccontextmanager
    async def never(step):
        entered.append(step.stage.id)
        asyncio.get_running_loop().call_soon(orchestrator_of_test.cancel)
        await asyncio.Event().wait()  # no GPU ever frees up
        yield Placement()

    status, events = engine_run_placed(never)
    assert status == "cancelled" and entered == ["preprocess"]
    assert [(e.type, e.stage) for e in events if e.type.startswith("stage_") and e.type != "stage_planned"] == \
        [("stage_cancelled", "preprocess")]


orchestrator_of_test = None


@pytest.fixture
def engine_run_placed(tmp_path: Path, sample_video: Path, monkeypatch: pytest.MonkeyPatch):
    """Gives run(place) → (status, events): preprocess of the sample through Orchestrator(place=…)."""
    from gausynth_engine import Orchestrator, make_plan

    monkeypatch.chdir(tmp_path)

    def run(place):
        global orchestrator_of_test
        preset = parse_preset("", "test", small_overrides(sample_video))
        layout = RunLayout.for_run(tmp_path / "out", "run")
        events: list = []
        orchestrator_of_test = Orchestrator(preset, layout, on_event=events.append, place=place)
        status = orchestrator_of_test.run(make_plan(preset, layout, until="preprocess"))
        return status, events

    return run


# --- whole queues of real runs (processes) ------------------------------------------------------
def gausynth(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "gausynth_engine", *args], capture_output=True, text=True,
                         timeout=300)
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


def queue_runs(root: Path, video: Path, names: list[str], *run_options: str) -> None:
    inputs = []
    for name in names:
        copy = root.parent / "inputs" / f"{name}.mp4"
        copy.parent.mkdir(exist_ok=True)
        copy.write_bytes(video.read_bytes())
        inputs += ["--input", str(copy)]
    sets = [a for s in small_overrides(video, **QUEUE_SETS) if not s.startswith(("run.input", "run.directory"))
            for a in ("--set", s)]
    gausynth("queue", "--root", str(root), "add", "original-only", *inputs, *sets, *run_options)


def queue_events(root: Path) -> list:
    return QueueJournal(root).reader().read_new()


def started_jobs(root: Path) -> list[JobStarted]:
    return [e for e in queue_events(root) if isinstance(e, JobStarted)]


def run_events(root: Path, directory: str) -> list:
    return read_journal(RunLayout(root / directory).journal)


def stage_started(root: Path, directory: str, stage: str):
    return next((e for e in run_events(root, directory) if e.type == "stage_started" and e.stage == stage), None)


@pytest.mark.slow
def test_a_queue_resumes_after_its_runner_is_killed(tmp_path: Path, sample_video: Path, fake_gpus) -> None:
    """kill -9 the runner mid-run: the run goes on, a new runner adopts it and finishes the queue."""
    fake_gpus((80, 0))
    root = tmp_path / "out"
    queue_runs(root, sample_video, ["cat", "dog"], "--until", "sfm")
    gausynth("queue", "--root", str(root), "start", "--max-runs", "1")
    runner = [e for e in queue_events(root) if isinstance(e, RunnerStarted)][0]
    wait_for(lambda: stage_started(root, "original-only-cat", "sfm"), "cat's sfm to start")
    os.kill(runner.pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(runner.pid) or _zombie(runner.pid), "the runner to die")
    cat = started_jobs(root)[0]
    assert pid_alive(cat.pid)  # the run outlives its runner
    gausynth("queue", "--root", str(root), "start", "--max-runs", "1")
    wait_for(lambda: any(isinstance(e, RunnerStopped) for e in queue_events(root)), "the queue to end")
    events = queue_events(root)
    finished = {e.job: e.status for e in events if isinstance(e, JobFinished)}
    assert finished == {"q001": "done", "q002": "done"}
    assert [e.job for e in events if isinstance(e, JobStarted)] == ["q001", "q002"]  # adopted, not rerun
    for name in ("cat", "dog"):
        view = RunView.from_journal(RunLayout(root / f"original-only-{name}").journal)
        assert view.status == "done" and view.stages["sfm"].state == "done"
    listing = gausynth("queue", "--root", str(root), "list").stdout
    assert "q001  done" in listing and "q002  done" in listing


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.slow
def test_a_run_killed_with_its_runner_is_requeued_and_resumes(tmp_path: Path, sample_video: Path,
                                                             fake_gpus) -> None:
    fake_gpus((80, 0))
    root = tmp_path / "out"
    queue_runs(root, sample_video, ["cat"], "--until", "sfm", "--name", "original-only-cat")
    gausynth("queue", "--root", str(root), "start")
    runner = [e for e in queue_events(root) if isinstance(e, RunnerStarted)][0]
    sfm = wait_for(lambda: stage_started(root, "original-only-cat", "sfm"), "cat's sfm to start")
    cat = started_jobs(root)[0]
    os.killpg(sfm.pid, signal.SIGSTOP)  # the worker stays put (not done, not gone) until someone acts
    for pid in (runner.pid, cat.pid):  # the whole box goes: runner and run process alike
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: all(not pid_alive(p) or _zombie(p) for p in (runner.pid, cat.pid)), "both to die")
    assert pid_alive(sfm.pid)  # its worker is left behind, in a session of its own
    try:
        gausynth("queue", "--root", str(root), "start")
        wait_for(lambda: any(isinstance(e, JobRequeued) for e in queue_events(root)), "cat to be requeued")
        # The orphan worker is stopped before the run starts again.
        assert not pid_alive(sfm.pid) or _zombie(sfm.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sfm.pid, signal.SIGKILL)
    wait_for(lambda: any(isinstance(e, RunnerStopped) for e in queue_events(root)), "the queue to end")
    events = queue_events(root)
    assert [type(e).__name__ for e in events if getattr(e, "job", None) == "q001"
            and isinstance(e, (JobStarted, JobRequeued, JobFinished))] == \
        ["JobStarted", "JobRequeued", "JobStarted", "JobFinished"]
    assert [e.status for e in events if isinstance(e, JobFinished)] == ["done"]
    run = run_events(root, "original-only-cat")
    planned = [e for e in run if e.type == "stage_planned" and e.stage == "preprocess"]
    assert [e.action for e in planned] == ["run", "skip"]  # the second attempt resumed


@pytest.mark.slow
def test_a_dying_worker_fails_its_run_frees_its_place_and_retry_finishes_it(tmp_path: Path, sample_video: Path,
                                                                            fake_gpus) -> None:
    fake_gpus((80, 0))
    root = tmp_path / "out"
    queue_runs(root, sample_video, ["cat", "dog"], "--until", "sfm")
    gausynth("queue", "--root", str(root), "start", "--max-runs", "1")
    sfm = wait_for(lambda: stage_started(root, "original-only-cat", "sfm"), "cat's sfm to start")
    os.killpg(sfm.pid, signal.SIGKILL)  # the worker dies (out of memory, say)
    wait_for(lambda: any(isinstance(e, RunnerStopped) for e in queue_events(root)), "the queue to end")
    finished = {e.job: e for e in queue_events(root) if isinstance(e, JobFinished)}
    assert finished["q001"].status == "failed" and "SIGKILL" in finished["q001"].error
    assert finished["q002"].status == "done"  # the queue went on
    listing = gausynth("queue", "--root", str(root), "list").stdout
    assert "q001  failed" in listing and "SIGKILL" in listing
    gausynth("queue", "--root", str(root), "retry")
    gausynth("queue", "--root", str(root), "start")
    wait_for(lambda: [e for e in queue_events(root) if isinstance(e, RunnerStopped)][1:], "the retry to end")
    finished = [e for e in queue_events(root) if isinstance(e, JobFinished)]
    assert (finished[-1].job, finished[-1].status) == ("q001", "done")


# --- the command line ---------------------------------------------------------------------------
def test_adding_reordering_and_cancelling_jobs(tmp_path: Path, sample_video: Path) -> None:
    root = tmp_path / "out"
    queue_runs(root, sample_video, ["cat", "dog", "owl"])
    gausynth("queue", "--root", str(root), "move", "q003", "--top")
    gausynth("queue", "--root", str(root), "cancel", "original-only-dog")
    listing = gausynth("queue", "--root", str(root), "list").stdout.splitlines()
    rows = [line.split()[:3] for line in listing[2:]]
    assert rows == [["1", "q003", "waiting"], ["2", "q001", "waiting"], ["q002", "cancelled", "original-only-dog"]]
    again = gausynth("queue", "--root", str(root), "add", "original-only", "--input",
                     str(root.parent / "inputs" / "cat.mp4"), "--name", "original-only-cat", check=False)
    assert again.returncode == 2 and "already in the queue as job q001" in again.stderr
    assert len([e for e in queue_events(root) if isinstance(e, JobAdded)]) == 3  # nothing added
    bad = gausynth("queue", "--root", str(root), "move", "q009", "--top", check=False)
    assert bad.returncode == 2 and "q009" in bad.stderr
