"""The queue runner: a detached process that starts the queue's runs and places their stages.

Each job is an ordinary `gausynth run` process (its own session, its own run folder, lock and
journal, so `status`, `watch`, `cancel` and the app treat it like any run). Its orchestrator
asks this runner, over a Unix socket, where each stage may run, and holds the connection open
while the stage runs: a closed connection frees the place. Everything the runner decides goes
into the queue journal, so a runner killed with -9 is replaced by one that adopts the runs
still going, requeues the ones that died unfinished, and carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path

from .._journal import RunView, pid_alive
from .._layout import RunLayout
from .._lock import RunLock, _start_time
from .._runs import run_argv
from ._gpus import Gpu, describe, list_gpus
from ._journal import (
    GpuSample,
    Job,
    JobFinished,
    JobRequeued,
    JobStarted,
    QueueJournal,
    QueueView,
    RunnerStarted,
    RunnerStopped,
    StagePlaced,
    StageReleased,
)
from ._scheduler import Grant, Ledger, Need, vram_estimate

TICK = 0.25  # seconds between looks at the queue journal and NVML
SAMPLE_PERIOD = 0.5  # seconds between GPU samples written to the queue journal


def pid_is(pid: int | None, start: str | None) -> bool:
    """Gives whether process `pid` still runs and is the one that started at `start` (pids get reused)."""
    if not pid or not pid_alive(pid) or _zombie(pid):
        return False
    now = _start_time(pid)
    return start is None or now is None or now == start


def _zombie(pid: int) -> bool:
    """Gives whether `pid` has exited but not been reaped (an orphan of a killed runner, say)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def take_runner_lock(journal: QueueJournal) -> RunLock:
    """Takes the queue's runner lock; a dead runner's lock (zombie included) is recovered."""
    lock = RunLock(journal.lock)
    info = lock.read()
    if info is not None and info.get("host") == socket.gethostname() and not pid_is(
            int(info.get("pid", 0)), info.get("start")):
        journal.lock.unlink(missing_ok=True)
    lock.acquire()
    return lock


def kill_orphan_workers(layout: RunLayout) -> int:
    """Kills the stage workers a dead orchestrator left running; gives how many."""
    view = RunView.from_journal(layout.journal)
    killed = 0
    for s in view.stages.values():
        if s.state == "running" and s.pid and pid_alive(s.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(s.pid, signal.SIGKILL)
                killed += 1
    return killed


def run_outcome(layout: RunLayout, code: int | None) -> tuple[str, str]:
    """Gives (job status, error) of a run whose process has ended, from its journal."""
    view = RunView.from_journal(layout.journal)
    if view.status in ("done", "cancelled"):
        return view.status, ""
    failed = [f"{s.id}: {s.error}" for s in view.stages.values() if s.state == "failed" and s.error]
    if failed:
        return "failed", failed[0]
    log = layout.logs / "orchestrator.log"
    try:
        tail = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        tail = []
    why = f"the run process ended (code {code}) before finishing" if code is not None else \
        "the run process died before finishing"
    return "failed", f"{why}: {tail[-1]}" if tail else why


class Runner:
    """Runs the queue of one outputs root until nothing is waiting or running."""

    def __init__(self, journal: QueueJournal, *, cores: int | None = None, max_runs: int | None = None,
                 cluster: str = "", keep_alive: bool = False) -> None:
        self.journal = journal
        self.cluster = cluster
        self.keep_alive = keep_alive  # wait for new jobs instead of ending with an empty queue
        self.host = socket.gethostname()
        gpus, _ = list_gpus()
        self.gpu_count = len(gpus)
        self.ledger = Ledger(cores or os.cpu_count() or 1)
        self.max_runs = max_runs or max(2, self.gpu_count + 1)
        self.view = QueueView()
        self.reader = journal.reader()
        self.waiters: list[tuple[Need, asyncio.Future[Grant]]] = []
        self.children: dict[str, asyncio.subprocess.Process] = {}
        self.watching: set[str] = set()  # jobs whose process we wait on (children and adopted)
        self.signalled: set[str] = set()
        self.stopping = False
        self.connections: set[asyncio.StreamWriter] = set()
        self._wake = asyncio.Event()

    # --- the main loop --------------------------------------------------------------------------
    async def run(self) -> str:
        lock = take_runner_lock(self.journal)  # one runner per queue
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        sock = self.journal.socket
        sock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        sock.unlink(missing_ok=True)
        server = await asyncio.start_unix_server(self._serve, path=str(sock))
        reason = "stopped"
        try:
            self._refresh()
            self.journal.append(RunnerStarted(
                pid=os.getpid(), host=self.host, gpus=tuple(describe(g) for g in list_gpus()[0]),
                cores=self.ledger.cores, max_runs=self.max_runs, cluster=self.cluster))
            self._recover()
            sampler = asyncio.create_task(self._sample())
            while not self.stopping:
                self._refresh()
                self._cancel_asked()
                await self._start_jobs()
                self._pump()
                if not self.keep_alive and not self.watching and not self.view.in_order("waiting"):
                    reason = "the queue is empty"
                    break
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), TICK)
            sampler.cancel()
        finally:
            server.close()
            for writer in self.connections:  # their runs re-announce their places to a successor
                writer.close()
            sock.unlink(missing_ok=True)
            self.journal.append(RunnerStopped(reason=reason))
            lock.release()
        return reason

    def stop(self) -> None:
        """Stops starting runs; the runs going on go on (a new runner adopts them)."""
        self.stopping = True
        self._wake.set()

    def _refresh(self) -> None:
        for e in self.reader.read_new():
            self.view.apply(e)

    def _layout(self, job: Job) -> RunLayout:
        return RunLayout.for_run(self.journal.outputs_root, job.directory)

    # --- jobs -----------------------------------------------------------------------------------
    def _recover(self) -> None:
        """Adopts the runs a previous runner left going; settles or requeues the ones that ended."""
        for job in self.view.in_order("running"):
            if pid_is(job.pid, job.start) and job.host == self.host:
                for stage, placed in job.placed.items():  # nothing else may land on their GPUs
                    self.ledger.hold((job.id, stage), Grant(placed.gpus, placed.uuids, placed.cores,
                                                            placed.vram, placed.exclusive))
                self.watching.add(job.id)
                asyncio.get_running_loop().create_task(self._watch_adopted(job.id, job.pid, job.start))
                continue
            layout = self._layout(job)
            kill_orphan_workers(layout)
            events: list = [StageReleased(job=job.id, stage=s) for s in job.placed]
            if RunView.from_journal(layout.journal).status in ("done", "failed", "cancelled"):
                status, error = run_outcome(layout, None)
                events.append(JobFinished(job=job.id, status=status, error=error))
            else:  # killed mid-way with the runner: fingerprints skip what is done, splat resumes
                events.append(JobRequeued(job=job.id, reason="its run process died with the queue "
                                          "runner; it resumes where it was"))
            self.journal.append(*events)
        self._refresh()

    async def _start_jobs(self) -> None:
        if self.stopping:
            return
        while len(self.watching) < self.max_runs:
            waiting = [j for j in self.view.in_order("waiting") if j.id not in self.watching]
            if not waiting:
                return
            await self._start(waiting[0])
            self._refresh()

    async def _start(self, job: Job) -> None:
        layout = self._layout(job)
        layout.logs.mkdir(parents=True, exist_ok=True)
        argv = run_argv(job.preset, job.sets, **{k: v for k, v in job.options.items()
                                                  if k in ("start", "until", "only", "force")})
        env = dict(os.environ, GAUSYNTH_QUEUE=str(self.journal.outputs_root), GAUSYNTH_QUEUE_JOB=job.id)
        if self.cluster:
            env["GAUSYNTH_QUEUE_CLUSTER"] = self.cluster
        with open(layout.logs / "orchestrator.log", "ab") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gausynth_engine", *argv, stdin=asyncio.subprocess.DEVNULL,
                stdout=log, stderr=log, start_new_session=True, env=env)
        self.children[job.id] = proc
        self.watching.add(job.id)
        self.journal.append(JobStarted(job=job.id, pid=proc.pid, start=_start_time(proc.pid), host=self.host))
        asyncio.get_running_loop().create_task(self._watch_child(job.id, proc))

    async def _watch_child(self, job_id: str, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        self._finished(job_id, code)

    async def _watch_adopted(self, job_id: str, pid: int | None, start: str | None) -> None:
        while pid_is(pid, start):  # not our child: no wait(), only a look now and then
            await asyncio.sleep(TICK)
        self._finished(job_id, None)

    def _finished(self, job_id: str, code: int | None) -> None:
        self._refresh()
        job = self.view.jobs[job_id]
        layout = self._layout(job)
        kill_orphan_workers(layout)  # a killed orchestrator leaves its worker behind
        status, error = run_outcome(layout, code)
        events: list = []
        for key in [k for k in self.ledger.held if k[0] == job_id]:
            self.ledger.release(key)
            events.append(StageReleased(job=job_id, stage=key[1]))
        for need, fut in list(self.waiters):
            if need.job == job_id and not fut.done():
                fut.cancel()
        events.append(JobFinished(job=job_id, status=status, error=error))
        self.journal.append(*events)
        self.children.pop(job_id, None)
        self.watching.discard(job_id)
        self.signalled.discard(job_id)
        self._wake.set()

    def _cancel_asked(self) -> None:
        for job in self.view.in_order("running"):
            if job.cancel_asked and job.id not in self.signalled and pid_is(job.pid, job.start):
                self.signalled.add(job.id)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(job.pid, signal.SIGTERM)  # its orchestrator cancels like `gausynth cancel`

    # --- placing stages -------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One stage's claim: wait for room, answer the grant, hold it until released or closed."""
        key: tuple[str, str] | None = None
        self.connections.add(writer)
        try:
            msg = json.loads(await reader.readline() or b"{}")
            key = (str(msg.get("job")), str(msg.get("stage")))
            if msg.get("op") == "hold":  # a stage placed by a runner that died: keep it reserved
                g = msg["grant"]
                if key not in self.ledger.held:
                    self.ledger.hold(key, Grant(tuple(g["gpus"]), tuple(g["uuids"]), g["cores"], g["vram"],
                                                g.get("exclusive", False)))
                ended = asyncio.ensure_future(reader.readline())
            else:
                self._refresh()
                need = self._need(key, bool(msg.get("gpu")))
                fut: asyncio.Future[Grant] = asyncio.get_running_loop().create_future()
                self.waiters.append((need, fut))
                self._pump()
                ended = asyncio.ensure_future(reader.readline())
                await asyncio.wait({fut, ended}, return_when=asyncio.FIRST_COMPLETED)
                if not fut.done():  # the run went away while waiting (cancelled)
                    fut.cancel()
                    self.waiters = [w for w in self.waiters if w[1] is not fut]
                    return
                if fut.cancelled():
                    return
                grant = fut.result()
                writer.write((json.dumps({"gpus": grant.gpus, "uuids": grant.uuids, "cores": grant.cores,
                                          "vram": grant.vram, "exclusive": grant.exclusive,
                                          "env": grant.env()}) + "\n").encode())
                await writer.drain()
            line = await ended
            if line.strip() and json.loads(line).get("op") == "release" and key in self.ledger.held:
                self.ledger.release(key)
                self.journal.append(StageReleased(job=key[0], stage=key[1]))
                self._wake.set()
            # A close without "release" means the run process died: `_finished` frees its places
            # after killing its orphan worker, never before.
        except (ValueError, KeyError, ConnectionError):
            pass
        finally:
            self.connections.discard(writer)
            writer.close()

    def _need(self, key: tuple[str, str], gpu: bool) -> Need:
        job = self.view.jobs.get(key[0])
        vram = None
        if gpu and job is not None:
            vram = vram_estimate(key[1], self._layout(job), self.journal.outputs_root)
        return Need(key[0], key[1], gpu, vram, self.ledger.cores_for(key[1], gpu))

    def _pump(self) -> None:
        """Grants what fits now, front of the queue first; smaller stages may pass a waiting big one."""
        if not self.waiters:
            return
        gpus, _ = list_gpus()
        position = {job: i for i, job in enumerate(self.view.order)}
        for need, fut in sorted(self.waiters, key=lambda w: position.get(w[0].job, 1 << 30)):
            if fut.done():
                continue
            wanted = need if gpus else Need(need.job, need.stage, False, None, need.cores)  # no GPU here
            grant = self.ledger.try_grant(wanted, gpus)
            if grant is None:
                continue
            self.journal.append(StagePlaced(job=need.job, stage=need.stage, gpus=grant.gpus, cores=grant.cores,
                                            vram=grant.vram, host=self.host, uuids=grant.uuids,
                                            exclusive=grant.exclusive))
            fut.set_result(grant)
        self.waiters = [w for w in self.waiters if not w[1].done()]

    async def _sample(self) -> None:
        """Writes each GPU's use into the queue journal while runs go on (per-GPU use over time)."""
        while True:
            if self.watching:
                gpus: list[Gpu] = list_gpus()[0]
                if gpus:
                    self.journal.append(*(GpuSample(gpu=g.index, vram_used=g.used, vram_total=g.total,
                                                    utilization=g.utilization) for g in gpus))
            self._pump()  # memory freed on a GPU may let a waiting stage in
            await asyncio.sleep(SAMPLE_PERIOD)


def main(argv: list[str] | None = None) -> int:
    """`python -m gausynth_engine.queue._runner OUTPUTS_ROOT [--cores N] [--max-runs N] [--cluster A]`."""
    import argparse

    from .._lock import RunLockedError

    p = argparse.ArgumentParser(prog="gausynth queue runner")
    p.add_argument("outputs_root")
    p.add_argument("--cores", type=int)
    p.add_argument("--max-runs", type=int)
    p.add_argument("--cluster", default="")
    p.add_argument("--keep-alive", action="store_true")
    args = p.parse_args(argv)
    runner = Runner(QueueJournal(Path(args.outputs_root)), cores=args.cores, max_runs=args.max_runs,
                    cluster=args.cluster, keep_alive=args.keep_alive)
    if args.cluster:
        from ._ray import cluster_gpus

        runner.max_runs = args.max_runs or max(2, int(cluster_gpus(args.cluster)) + 1)
    try:
        print(asyncio.run(runner.run()), flush=True)
    except RunLockedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
