"""Runs a plan: each stage in a worker subprocess, its events into the journal, outputs renamed in."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._events import (
    Artifact,
    Event,
    Log,
    Metric,
    Progress,
    RunFinished,
    RunStarted,
    StageCancelled,
    StageDone,
    StageFailed,
    StagePlanned,
    StageStarted,
)
from ._journal import JournalWriter
from ._layout import SHARED_FOLDERS, RunLayout
from ._lock import RunLock
from ._plan import Plan, StagePlan, write_json_atomic
from ._preset import Preset
from ._telemetry import GpuSampler

TELEMETRY_PERIOD = 0.5  # seconds between GPU samples while a worker runs
KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL of a worker's process group


@dataclass(frozen=True)
class Placement:
    """Where an outside scheduler puts one stage's worker (see `Orchestrator(place=…)`)."""

    env: dict[str, str] = field(default_factory=dict)  # added to the worker's environment
    command: tuple[str, ...] = ()  # replaces `python -m gausynth_engine.worker` (e.g. a Ray task)
    gpus: tuple[int, ...] | None = None  # NVML indices to sample; None: GPU 0, (): none here


# Gives, per stage, an async context that waits for room, yields its Placement, frees it on exit.
PlaceStage = Callable[[StagePlan], AbstractAsyncContextManager[Placement]]


def write_snapshot(layout: RunLayout, preset: Preset) -> None:
    """Writes the resolved preset into the run folder (atomically)."""
    layout.meta.mkdir(parents=True, exist_ok=True)
    tmp = layout.preset_snapshot.with_suffix(".tmp")
    tmp.write_text(preset.to_toml(), encoding="utf-8")
    os.replace(tmp, layout.preset_snapshot)


class Orchestrator:
    """Executes a plan in a locked run folder; `on_event` sees every journal event (a console)."""

    def __init__(self, preset: Preset, layout: RunLayout, *, preset_source: str = "",
                 command: str = "run", on_event: Callable[[Event], None] | None = None,
                 place: PlaceStage | None = None) -> None:
        self.preset = preset
        self.layout = layout
        self.preset_source = preset_source
        self.command = command
        self.on_event = on_event or (lambda e: None)
        self.cancelled = False
        self._current: asyncio.subprocess.Process | None = None
        self._journal: JournalWriter | None = None
        self.place = place  # None: every stage runs here, on GPU 0
        self._placement = Placement()
        self._waiting: asyncio.Future[Placement] | None = None

    # --- public -----------------------------------------------------------------------------
    def run(self, plan: Plan) -> str:
        """Runs the plan to the end; gives "done", "failed" or "cancelled"."""
        return asyncio.run(self.run_async(plan))

    async def run_async(self, plan: Plan) -> str:
        lock = RunLock(self.layout.lock)
        lock.acquire()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.cancel)
        # A dropped SSH link must not end the run: the console simply goes away.
        previous_hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
        started = time.time()
        self._journal = JournalWriter(self.layout.journal)
        try:
            write_snapshot(self.layout, self.preset)
            self._emit(RunStarted(pid=os.getpid(), preset=self.preset_source, command=self.command))
            for step in plan.steps:
                self._emit(StagePlanned(stage=step.stage.id, action=step.action, reason=step.reason))
            status = await self._run_steps(plan)
            self._emit(RunFinished(status=status, seconds=round(time.time() - started, 3)))
            return status
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            signal.signal(signal.SIGHUP, previous_hup)
            self._journal.close()
            lock.release()

    def cancel(self) -> None:
        """Stops the running worker's process group; the run ends as cancelled."""
        self.cancelled = True
        proc = self._current
        if proc is not None and proc.returncode is None:
            _kill_group(proc.pid, signal.SIGTERM)
        if self._waiting is not None:
            self._waiting.cancel()  # a stage still waiting for its place never starts

    # --- internals --------------------------------------------------------------------------
    def _emit(self, event: Event) -> None:
        assert self._journal is not None
        self._journal.write(event)
        try:
            self.on_event(event)
        except OSError:
            pass  # the terminal is gone (SSH dropped): the journal still has everything

    async def _run_steps(self, plan: Plan) -> str:
        failed: set[str] = set()
        for step in plan.to_run:
            if self.cancelled:
                return "cancelled"
            blocked = [u for u in step.inputs if u in failed]
            if blocked:
                failed.add(step.stage.id)
                self._emit(StageFailed(stage=step.stage.id,
                                       error=f"not run: upstream {', '.join(blocked)} failed"))
                continue
            outcome = await self._run_placed(step)
            if outcome == "cancelled":
                return "cancelled"
            if outcome == "failed":
                failed.add(step.stage.id)
        return "failed" if failed else "done"

    async def _run_placed(self, step: StagePlan) -> str:
        """Runs a stage where `place` puts it, holding that place until the stage has ended."""
        if self.place is None:
            return await self._run_stage(step)
        claim = self.place(step)
        self._waiting = asyncio.ensure_future(claim.__aenter__())
        try:
            self._placement = await self._waiting
        except asyncio.CancelledError:
            if not self.cancelled:
                raise
            self._emit(StageCancelled(stage=step.stage.id))
            return "cancelled"
        finally:
            self._waiting = None
        try:
            return await self._run_stage(step)
        finally:
            self._placement = Placement()
            await claim.__aexit__(None, None, None)

    async def _run_stage(self, step: StagePlan) -> str:
        sid = step.stage.id
        layout = self.layout
        # Nothing half-made may look complete: the old manifest goes before any work starts.
        layout.manifest(sid).unlink(missing_ok=True)
        staging = layout.staging_for(sid).root
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        layout.logs.mkdir(parents=True, exist_ok=True)
        log_path = layout.log_file(sid)
        read_fd, write_fd = os.pipe()
        env = dict(os.environ, **self._placement.env, GAUSYNTH_EVENT_FD=str(write_fd),
                   PYTHONUNBUFFERED="1")
        env.setdefault("ORT_DISABLE_TELEMETRY", "1")
        started = time.time()
        with open(log_path, "ab") as log:
            log.write(f"\n=== {sid} {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
            log.flush()
            proc = await asyncio.create_subprocess_exec(
                *(self._placement.command or (sys.executable, "-m", "gausynth_engine.worker")),
                str(layout.root), sid,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                pass_fds=(write_fd,), start_new_session=True, env=env)
        os.close(write_fd)
        self._current = proc
        self._emit(StageStarted(stage=sid, pid=proc.pid, fingerprint=step.fingerprint,
                                log=str(log_path)))
        telemetry = asyncio.create_task(self._sample_gpu(proc))
        result: dict[str, Any] = {}
        try:
            await self._read_events(sid, read_fd, result)
            code = await proc.wait()
        finally:
            telemetry.cancel()
            self._current = None
        if self.cancelled:
            shutil.rmtree(staging, ignore_errors=True)
            self._emit(StageCancelled(stage=sid))
            return "cancelled"
        if code != 0 or result.get("type") != "done":
            shutil.rmtree(staging, ignore_errors=True)
            error = result.get("error") or _exit_text(code, log_path)
            self._emit(StageFailed(stage=sid, error=error, detail=result.get("detail", "")))
            return "failed"
        try:
            outputs = commit_outputs(layout.staging_for(sid), layout)
            write_json_atomic(layout.manifest(sid), {
                "stage": sid, "version": step.stage.version, "fingerprint": step.fingerprint,
                "params": step.params, "inputs": step.inputs, "outputs": outputs,
                "started": started, "seconds": round(time.time() - started, 3),
                "peak_vram": result.get("peak_vram"), "peak_rss": result.get("peak_rss"),
                "device": result.get("device"), "record": result.get("record", {}),
            })
        except OSError as e:
            self._emit(StageFailed(stage=sid, error=f"could not move the outputs into place: {e}"))
            return "failed"
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._emit(StageDone(stage=sid, seconds=round(time.time() - started, 3),
                             peak_vram=result.get("peak_vram"), peak_rss=result.get("peak_rss")))
        return "done"

    async def _read_events(self, sid: str, fd: int, result: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 24)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0))
        try:
            while line := await reader.readline():
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                event = _worker_event(sid, msg)
                if event is not None:
                    self._emit(event)
                elif msg.get("type") in ("done", "failed"):
                    result.update(msg)
        finally:
            transport.close()

    async def _sample_gpu(self, proc: asyncio.subprocess.Process) -> None:
        gpus = self._placement.gpus
        if gpus == ():
            return  # the stage runs on no GPU of this machine
        sampler = GpuSampler(gpus[0] if gpus else 0)
        if not sampler.available:
            self._emit(sampler.sample())  # once: says N/A and why
            return
        while proc.returncode is None:
            self._emit(sampler.sample())
            await asyncio.sleep(TELEMETRY_PERIOD)


def _worker_event(sid: str, msg: dict[str, Any]) -> Event | None:
    """Gives the journal event for a worker message (None for done/failed, handled apart)."""
    t = msg.get("t", time.time())
    kind = msg.get("type")
    if kind == "progress":
        return Progress(stage=sid, value=msg["value"], total=msg["total"], unit=msg.get("unit", ""), t=t)
    if kind == "log":
        return Log(stage=sid, message=msg["message"], level=msg.get("level", "info"), t=t)
    if kind == "metric":
        return Metric(stage=sid, name=msg["name"], value=msg["value"], step=msg.get("step"), t=t)
    if kind == "artifact":
        return Artifact(stage=sid, kind=msg["kind"], path=msg["path"], t=t)
    return None


def _exit_text(code: int, log_path: Path) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if -code == 9 else ""
        return f"the worker was killed by {name}{hint}; see {log_path}"
    return f"the worker exited with code {code} without reporting; see {log_path}"


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        return
    if sig == signal.SIGTERM:
        # Escalate if the group is still there after the grace period.
        def later() -> None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

        try:
            asyncio.get_running_loop().call_later(KILL_GRACE, later)
        except RuntimeError:
            pass


def commit_outputs(staged: RunLayout, layout: RunLayout) -> list[str]:
    """Renames everything a stage staged into the run folder; gives the paths it placed.

    Shared folders (new_videos, gs) are merged entry by entry; any other folder replaces its
    predecessor whole. Each replacement is a rename on one filesystem.
    """
    placed: list[str] = []
    trash = layout.staging / f".trash-{os.getpid()}-{time.time_ns()}"
    for entry in sorted(staged.root.iterdir()):
        targets = sorted(entry.iterdir()) if entry.name in SHARED_FOLDERS and entry.is_dir() else [entry]
        for src in targets:
            rel = src.relative_to(staged.root)
            dest = layout.root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                trash.mkdir(parents=True, exist_ok=True)
                os.replace(dest, trash / f"{len(placed)}-{src.name}")
            os.replace(src, dest)
            placed.append(str(rel))
    shutil.rmtree(trash, ignore_errors=True)
    return placed
