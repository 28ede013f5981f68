"""A user with a Ray cluster queues three objects: each stage runs as a Ray task, GPU stages
ask for one GPU, and every run's journal tells the story as a local run's would.

A real local Ray cluster with two fake GPUs (Ray only schedules by them; torch sees no CUDA).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_queue import queue_events, queue_runs, wait_for

from gausynth_engine._journal import RunView, read_journal
from gausynth_engine._layout import RunLayout
from gausynth_engine.queue._journal import JobFinished, RunnerStopped, StagePlaced

ray = pytest.importorskip("ray")

TINY_SPLAT = ("--set", "splat.iterations=1000", "--set", "splat.downscale=8")


@pytest.fixture(scope="module")
def cluster():
    # On loopback only: the test cluster must not listen on, or talk to, any other address.
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, logging_level="ERROR",
             _node_ip_address="127.0.0.1")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.mark.slow
def test_a_ray_cluster_runs_a_queue_of_three_original_only_runs(tmp_path: Path, sample_video: Path,
                                                               cluster: str) -> None:
    from test_queue import gausynth

    root = tmp_path / "shared-storage"
    queue_runs(root, sample_video, ["cat", "dog", "owl"], *TINY_SPLAT)
    gausynth("queue", "--root", str(root), "start", "--cluster", cluster)
    wait_for(lambda: any(isinstance(e, RunnerStopped) for e in queue_events(root)), "the queue to end", 600)
    events = queue_events(root)
    assert {e.job: e.status for e in events if isinstance(e, JobFinished)} == {
        "q001": "done", "q002": "done", "q003": "done"}, [e for e in events if isinstance(e, JobFinished)]
    placed = [e for e in events if isinstance(e, StagePlaced)]
    gpu_stages = [e for e in placed if e.stage == "splat_orig"]
    assert len(gpu_stages) == 3 and all(len(e.gpus) == 1 and e.gpus[0] in (0, 1) for e in gpu_stages)
    assert all(e.gpus == () for e in placed if e.stage in ("preprocess", "sfm"))
    assert all(e.host.startswith("ray:") for e in placed)
    for name in ("cat", "dog", "owl"):
        layout = RunLayout(root / f"original-only-{name}")
        view = RunView.from_journal(layout.journal)
        assert view.status == "done" and view.stages["splat_orig"].state == "done"
        logs = [e.message for e in read_journal(layout.journal) if e.type == "log" and e.stage == "splat_orig"]
        assert any(m.startswith("Ray placed splat_orig on ") and "GPU" in m for m in logs)
        assert list((layout.gs).glob("orig_1000-*/point_cloud.ply")) or list(layout.gs.rglob("*.ply"))
