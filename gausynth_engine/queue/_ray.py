"""The queue on a Ray cluster (`gausynth queue start --cluster auto|ray://…`; `pip install gausynth[ray]`).

Each stage's worker runs as a Ray task asking `num_gpus=1` (GPU stages) and its cores; Ray picks
the node and sets CUDA_VISIBLE_DEVICES. The run folders must live on storage every node sees
(the same path everywhere). On the run's side nothing changes: the orchestrator starts this
module as the stage's "worker" (`Placement.command`), which submits the task and relays the
worker's events, streamed back by Ray, into the run's journal as a local worker would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._errors import StageError
from .._orchestrator import Placement, PlaceStage
from .._plan import StagePlan
from .._preset import Preset


def check_ray() -> None:
    """Raises a one-line error when Ray is not installed."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise StageError("--cluster needs Ray: pip install 'gausynth[ray]'") from None


def connect(address: str) -> Any:
    import ray

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    return ray


def cluster_gpus(address: str) -> float:
    """Gives the cluster's GPU count (what Ray schedules by)."""
    return float(connect(address).cluster_resources().get("GPU", 0))


def cluster_summary(address: str) -> str:
    ray = connect(address)
    res = ray.cluster_resources()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return f"{len(nodes)} node(s), {res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs"


def ray_placement(address: str, preset: Preset) -> PlaceStage:
    """Gives the placement hook that sends every stage's worker to the cluster."""
    import contextlib

    from ._gpus import wants_gpu

    @contextlib.asynccontextmanager
    async def place(step: StagePlan):
        gpus = 1 if wants_gpu(step, preset) else 0
        cpus = 1
        yield Placement(command=(sys.executable, "-m", "gausynth_engine.queue._ray", address,
                                 str(gpus), str(cpus)), gpus=())

    return place


def stage_task(run_folder: str, stage: str) -> Iterator[Any]:
    """Runs on a node: the stage's worker as a subprocess; yields where it runs, its events, its code."""
    import ray

    from .._layout import RunLayout

    yield {"type": "placed", "host": socket.gethostname(), "gpus": [int(g) for g in ray.get_gpu_ids()],
           "visible": os.environ.get("CUDA_VISIBLE_DEVICES", "")}
    layout = RunLayout(Path(run_folder))
    layout.logs.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, GAUSYNTH_EVENT_FD=str(write_fd), PYTHONUNBUFFERED="1")
    with open(layout.log_file(stage), "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gausynth_engine.worker", run_folder, stage],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(write_fd,),
                                env=env, start_new_session=True)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            for line in pipe:
                yield line.decode("utf-8", errors="replace")
        yield {"type": "exit", "code": proc.wait()}
    finally:
        if proc.poll() is None:  # cancelled: the worker goes with its task
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    """`python -m gausynth_engine.queue._ray ADDRESS NUM_GPUS NUM_CPUS RUN_FOLDER STAGE` (the orchestrator's)."""
    address, gpus, cpus, run_folder, stage = sys.argv[1:] if argv is None else argv
    fd = int(os.environ["GAUSYNTH_EVENT_FD"])
    out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
    ray = connect(address)
    task = ray.remote(stage_task).options(num_gpus=float(gpus), num_cpus=float(cpus), max_retries=0)
    stream = task.remote(run_folder, stage)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    code = 1
    try:
        for ref in stream:
            item = ray.get(ref)
            if isinstance(item, str):
                out.write(item if item.endswith("\n") else item + "\n")
            elif item.get("type") == "placed":
                _placed(run_folder, stage, item, float(gpus))
                where = ", ".join(f"GPU {g}" for g in item["gpus"]) or "no GPU"
                out.write(json.dumps({"type": "log", "level": "info", "message":
                                      f"Ray placed {stage} on {item['host']}, {where} "
                                      f"(CUDA_VISIBLE_DEVICES={item['visible']!r})"}) + "\n")
            elif item.get("type") == "exit":
                code = int(item["code"])
    except KeyboardInterrupt:
        ray.cancel(stream)
        return 143
    return code if code >= 0 else 128 - code


def _placed(run_folder: str, stage: str, item: dict[str, Any], gpus: float) -> None:
    """Records the task's node and GPUs in the queue journal, like the local runner does."""
    root, job = os.environ.get("GAUSYNTH_QUEUE"), os.environ.get("GAUSYNTH_QUEUE_JOB")
    if not root or not job:
        return
    from ._journal import QueueJournal, StagePlaced

    QueueJournal(Path(root)).append(StagePlaced(job=job, stage=stage, gpus=tuple(item["gpus"]), cores=1,
                                                vram=0, host=f"ray:{item['host']}"))


if __name__ == "__main__":
    sys.exit(main())
