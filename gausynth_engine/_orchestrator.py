"""Runs a plan: each stage in a worker subprocess, its events into the journal, outputs renamed in."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import disk_nearly_full, os_error_line
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
from ._lock import HOST, ProcessId, RunLock
from ._manifest import output_files, read_manifest, write_json_atomic
from ._plan import Plan, StagePlan
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
        self._running: set[asyncio.subprocess.Process] = set()  # the workers alive now
        self._journal: JournalWriter | None = None
        self._lock_fd: int | None = None
        self.place = place  # None: every stage runs here, on GPU 0
        self._waiting: set[asyncio.Future[Placement]] = set()  # stages waiting for their place
        self._last_sample: dict[int, float] = {}  # GPU index -> time of its last telemetry event

    # --- public -----------------------------------------------------------------------------
    def run(self, plan: Plan | Callable[[], Plan]) -> str:
        """Runs the plan to the end; gives "done", "failed" or "cancelled".

        Given a function, the plan is made once the run lock is held, so that no other run can
        change the folder between planning and running (what the CLI does).
        """
        return asyncio.run(self.run_async(plan))

    async def run_async(self, plan: Plan | Callable[[], Plan]) -> str:
        lock = RunLock(self.layout.lock)
        created = not self.layout.meta.exists()
        try:
            lock.acquire()
            self._lock_fd = lock.fd
            if callable(plan):
                plan = plan()
            clean_staging(self.layout)
        except BaseException:
            lock.release()
            if created:  # a refused plan leaves no phantom run folder behind
                for folder in (self.layout.meta, self.layout.root):
                    try:
                        folder.rmdir()
                    except OSError:
                        break
            raise
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.cancel)
        # A dropped SSH link must not end the run: the console simply goes away.
        previous_hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
        started = time.time()
        try:
            self._journal = JournalWriter(self.layout.journal)
            write_snapshot(self.layout, self.preset)
            me = ProcessId.of(os.getpid())
            self._emit(RunStarted(pid=me.pid, preset=self.preset_source, command=self.command,
                                  start=me.start, host=me.host, boot=me.boot))
            self._prune(plan.to_run[0].stage.id if plan.to_run else None)
            for step in plan.steps:
                self._emit(StagePlanned(stage=step.stage.id, action=step.action, reason=step.reason))
            try:
                status = await self._run_steps(plan)
            except BaseException:
                try:  # say that it ended, if the journal can still take a line
                    self._emit(RunFinished(status="failed", seconds=round(time.time() - started, 3)))
                except Exception:  # noqa: BLE001 - the original error is the one to report
                    pass
                raise
            self._emit(RunFinished(status=status, seconds=round(time.time() - started, 3)))
            return status
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            signal.signal(signal.SIGHUP, previous_hup)
            if self._journal is not None:
                self._journal.close()
            lock.release()

    def cancel(self) -> None:
        """Stops the running workers' process groups; the run ends as cancelled."""
        self.cancelled = True
        for proc in list(self._running):
            if proc.returncode is None:
                _kill_group(proc.pid, signal.SIGTERM)
        for waiting in list(self._waiting):
            waiting.cancel()  # a stage still waiting for its place never starts

    # --- internals --------------------------------------------------------------------------
    def _emit(self, event: Event) -> None:
        assert self._journal is not None
        self._journal.write(event)
        try:
            self.on_event(event)
        except OSError:
            pass  # the terminal is gone (SSH dropped): the journal still has everything

    def _at_once(self) -> int:
        """Gives how many stages of this run may run at the same time (`run.parallel_stages`);
        under a queue's placement, one (the queue overlaps runs instead)."""
        return 1 if self.place is not None else max(1, int(self.preset.run.parallel_stages))

    async def _run_steps(self, plan: Plan) -> str:
        """Runs the plan's stages, each as soon as the stages it comes after have finished (up
        to `_at_once()` together, in plan order): a failed stage fails what depends on it and
        nothing else; a cancel stops all of them."""
        todo = list(plan.to_run)
        planned = {step.stage.id for step in todo}
        done: set[str] = set()
        failed: set[str] = set()
        running: dict[asyncio.Task[str], str] = {}
        limit = self._at_once()
        while todo or running:
            for step in list(todo):
                if self.cancelled or len(running) >= limit:
                    break
                ups = [u for u in step.inputs if u in planned]
                blocked = [u for u in ups if u in failed]
                if blocked:
                    todo.remove(step)
                    failed.add(step.stage.id)
                    self._emit(StageFailed(stage=step.stage.id,
                                           error=f"not run: upstream {', '.join(blocked)} failed"))
                elif all(u in done for u in ups):
                    todo.remove(step)
                    running[asyncio.ensure_future(self._run_placed(step))] = step.stage.id
            if not running:
                break  # cancelled (or nothing left that can start)
            finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                sid = running.pop(task)
                outcome = task.result()
                if outcome == "done":
                    done.add(sid)
                elif outcome == "failed":
                    failed.add(sid)
        if self.cancelled:
            return "cancelled"
        return "failed" if failed else "done"

    async def _run_placed(self, step: StagePlan) -> str:
        """Runs a stage where `place` puts it, holding that place until the stage has ended."""
        if self.place is None:
            return await self._run_stage(step, Placement())
        claim = self.place(step)
        waiting = asyncio.ensure_future(claim.__aenter__())
        self._waiting.add(waiting)
        try:
            placement = await waiting
        except asyncio.CancelledError:
            if not self.cancelled:
                raise
            self._emit(StageCancelled(stage=step.stage.id))
            return "cancelled"
        finally:
            self._waiting.discard(waiting)
        try:
            return await self._run_stage(step, placement)
        finally:
            await claim.__aexit__(None, None, None)

    async def _run_stage(self, step: StagePlan, placement: Placement) -> str:
        sid = step.stage.id
        layout = self.layout
        staging = layout.staging_for(sid).root
        log_path = layout.log_file(sid)
        try:
            # Nothing half-made may look complete: the old manifest goes before any work starts.
            layout.manifest(sid).unlink(missing_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            layout.logs.mkdir(parents=True, exist_ok=True)
            open(log_path, "ab").close()
        except OSError as e:
            self._emit(StageFailed(stage=sid, error=os_error_line(e, "preparing the stage")))
            return "failed"
        read_fd, write_fd = os.pipe()
        env = dict(os.environ, **placement.env, GAUSYNTH_EVENT_FD=str(write_fd),
                   PYTHONUNBUFFERED="1")
        env.setdefault("ORT_DISABLE_TELEMETRY", "1")
        started = time.time()
        with open(log_path, "ab") as log:
            log.write(f"\n=== {sid} {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
            log.flush()
            # The worker inherits the run lock: if this process is killed, the orphan worker
            # still holds the folder and no rerun can start a second worker beside it.
            fds = (write_fd,) if self._lock_fd is None else (write_fd, self._lock_fd)
            proc = await asyncio.create_subprocess_exec(
                *(placement.command or (sys.executable, "-m", "gausynth_engine.worker")),
                str(layout.root), sid,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                pass_fds=fds, start_new_session=True, env=env)
        os.close(write_fd)
        self._running.add(proc)
        who = ProcessId.of(proc.pid)
        self._emit(StageStarted(stage=sid, pid=proc.pid, fingerprint=step.fingerprint,
                                log=str(log_path), start=who.start, host=HOST, boot=who.boot))
        telemetry = asyncio.create_task(self._sample_gpu(proc, placement))
        result: dict[str, Any] = {}
        try:
            await self._read_events(sid, read_fd, result)
            code = await proc.wait()
        finally:
            telemetry.cancel()
            self._running.discard(proc)
            # Whatever the worker left behind in its group (helpers) must not outlive it.
            _kill_group(proc.pid, signal.SIGKILL)
        if self.cancelled:
            shutil.rmtree(staging, ignore_errors=True)
            _note_in_log(log_path, f"=== {sid} cancelled on request (SIGTERM to its process group); "
                         "a '*** Aborted' / 'SIGTERM received' dump just above is COLMAP's glog "
                         "answering that signal, not a crash ===")
            self._emit(StageCancelled(stage=sid))
            return "cancelled"
        if code != 0 or result.get("type") != "done":
            shutil.rmtree(staging, ignore_errors=True)
            error = result.get("error") or _exit_text(code, log_path, layout.root)
            self._emit(StageFailed(stage=sid, error=error, detail=result.get("detail", "")))
            return "failed"
        try:
            outputs = commit_outputs(layout.staging_for(sid), layout)
            write_json_atomic(layout.manifest(sid), {
                "stage": sid, "version": step.stage.version, "fingerprint": step.fingerprint,
                "params": step.params, "inputs": step.inputs, "outputs": outputs,
                "files": output_files(layout, outputs),
                "started": started, "seconds": round(time.time() - started, 3),
                "peak_vram": result.get("peak_vram"), "peak_rss": result.get("peak_rss"),
                "device": result.get("device"), "record": result.get("record", {}),
            })
        except OSError as e:
            layout.manifest(sid).unlink(missing_ok=True)
            self._emit(StageFailed(stage=sid, error="could not move the outputs into place: "
                                   + os_error_line(e)))
            return "failed"
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._prune(sid)
        self._emit(StageDone(stage=sid, seconds=round(time.time() - started, 3),
                             peak_vram=result.get("peak_vram"), peak_rss=result.get("peak_rss")))
        return "done"

    def _prune(self, sid: str | None) -> None:
        keep = self.preset.run.keep_trainings
        for name in prune_trainings(self.layout, keep):
            if sid is not None:
                self._emit(Log(stage=sid, message=f"removed the old training gs/{name} "
                               f"(run.keep_trainings = {keep})"))

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

    async def _sample_gpu(self, proc: asyncio.subprocess.Process, placement: Placement) -> None:
        """Samples the stage's GPU while its worker lives; stages running together on one GPU
        share its samples (one every TELEMETRY_PERIOD, not one per stage)."""
        gpus = placement.gpus
        if gpus == ():
            return  # the stage runs on no GPU of this machine
        index = gpus[0] if gpus else 0
        sampler = GpuSampler(index)
        if not sampler.available:
            if index not in self._last_sample:
                self._last_sample[index] = time.monotonic()
                self._emit(sampler.sample())  # once: says N/A and why
            return
        while proc.returncode is None:
            now = time.monotonic()
            if now - self._last_sample.get(index, -1e9) >= 0.9 * TELEMETRY_PERIOD:
                self._last_sample[index] = now
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


def _exit_text(code: int, log_path: Path, root: Path | None = None) -> str:
    # A C++ library that cannot write (COLMAP's glog CHECKs) aborts: a full disk reads as SIGABRT.
    if root is not None and (disk_nearly_full(root) or "No space left on device" in _tail(log_path)):
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        return f"{root}: the disk is full (the worker {how}); free some space and rerun; see {log_path}"
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if -code == 9 else ""
        return f"the worker was killed by {name}{hint}; see {log_path}"
    return f"the worker exited with code {code} without reporting; see {log_path}"


def _tail(path: Path, size: int = 16384) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _note_in_log(path: Path, line: str) -> None:
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError:
        pass


def clean_staging(layout: RunLayout) -> None:
    """Removes what dead runs left in staging (half-staged stages, `.trash-*` of a killed rename).

    Called with the run lock held: no live process of this run folder writes there then."""
    if not layout.staging.is_dir():
        return
    for entry in layout.staging.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


TRAINING = re.compile(r"^(reim|orig)_(\d+)-(\d{8}-\d{6})$")


def prune_trainings(layout: RunLayout, keep: int) -> list[str]:
    """Removes all but the newest `keep` trainings of each variant under gs/; gives their names.

    A training a stage's manifest names (the one in use) is never removed, and counts as kept.
    """
    if not layout.gs.is_dir():
        return []
    in_use: set[str] = set()
    for sid in ("splat_reim", "splat_orig"):
        manifest = read_manifest(layout, sid) or {}
        for out in manifest.get("outputs", []):
            parts = Path(str(out)).parts
            if len(parts) == 2 and parts[0] == "gs":
                in_use.add(parts[1])
        folder = (manifest.get("record") or {}).get("folder")
        if isinstance(folder, str):
            in_use.add(Path(folder).name)
    by_variant: dict[str, list[Path]] = {}
    for entry in layout.gs.iterdir():
        m = TRAINING.match(entry.name)
        if m and entry.is_dir():
            by_variant.setdefault(m.group(1), []).append(entry)
    removed = []
    for entries in by_variant.values():
        entries.sort(key=lambda p: (TRAINING.match(p.name).group(3), p.stat().st_mtime_ns),
                     reverse=True)
        kept = [p for p in entries if p.name in in_use]
        for p in entries:
            if p.name in in_use:
                continue
            if len(kept) < keep:
                kept.append(p)
                continue
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    return removed


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
