"""`gausynth queue …`: add runs, see them, reorder, cancel, retry; start the detached runner."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .._journal import RunView
from .._layout import LayoutError, RunLayout, check_run_name
from .._lock import RunLock, holder_alive
from .._preset import load_preset
from ._journal import (
    STATES,
    Job,
    JobAdded,
    JobCancelled,
    JobMoved,
    JobRetried,
    QueueJournal,
    QueueView,
)

RUN_OPTIONS = ("start", "until", "only", "force")


class QueueError(LayoutError):
    """A queue command that cannot be done (an unknown job, a run folder already queued)."""


def _journal(args: argparse.Namespace) -> QueueJournal:
    return QueueJournal(Path(args.root))


def runner_alive(journal: QueueJournal) -> int | None:
    """Gives the pid of the live runner of this queue, or None."""
    from ._runner import pid_is

    info = RunLock(journal.lock).read()
    if info is None or not holder_alive(info):
        return None
    pid = int(info["pid"])
    return pid if info.get("host") != socket.gethostname() or pid_is(pid, info.get("start")) else None


def _job(view: QueueView, ref: str) -> Job:
    """Finds a job by id or by its run folder's name."""
    for job in view.jobs.values():
        if ref in (job.id, job.directory):
            return job
    known = ", ".join(view.order[-8:]) or "none"
    raise QueueError(f"queue job {ref!r}: no such job or run folder in the queue; known ids: {known}")


def _stem(value: str) -> str:
    stem = Path(value.rstrip("/")).stem or "input"
    clean = "".join(c if c.isalnum() or c in "._+-" else "-" for c in stem).strip("-._") or "input"
    return clean[:64]


# --- add ----------------------------------------------------------------------------------------
def cmd_add(args: argparse.Namespace) -> int:
    from .._runs import find_preset, resolve_paths

    journal = _journal(args)
    root = journal.outputs_root
    inputs = args.input or [None]
    many = len(inputs) > 1 or len(args.presets) > 1
    planned: list[tuple[Path, list[str], str]] = []
    for name in args.presets:
        preset_path = find_preset(name).absolute()
        for value in inputs:
            sets = list(args.set) + ([f"run.input={str(Path(value).absolute())!r}"] if value else [])
            preset = resolve_paths(load_preset(preset_path, sets))  # every problem named at once
            if not preset.run.input or not Path(preset.run.input).exists():
                raise QueueError(f"{preset_path}: run.input = {preset.run.input!r} — no such file or "
                                 "folder; give --input VIDEO_OR_FOLDER")
            directory = args.name or preset.run.directory
            if many:
                tag = _stem(preset.run.input) if len(inputs) > 1 else preset_path.stem
                if len(inputs) > 1 and len(args.presets) > 1:
                    tag = f"{preset_path.stem}-{tag}"
                directory = f"{directory}-{tag}"
            check_run_name(directory)
            planned.append((preset_path, sets, directory))
    options = {k: getattr(args, k) for k in RUN_OPTIONS if getattr(args, k)}
    with journal.transaction() as (view, pending):
        active = {j.directory: j for j in view.jobs.values() if j.state in ("waiting", "running")}
        dirs = [d for _, _, d in planned]
        for d in dirs:
            if d in active:
                raise QueueError(f"run folder {root / d} is already in the queue as job {active[d].id} "
                                 f"({active[d].state}); two runs never share a folder: give --name")
            if dirs.count(d) > 1:
                raise QueueError(f"run folder {root / d} would be used twice; give inputs with distinct "
                                 "names or --name")
        number = len(view.jobs)
        for preset_path, sets, directory in planned:
            number += 1
            job = f"q{number:03d}"
            full = [*sets, f"run.outputs_root={str(root)!r}", f"run.directory={directory!r}"]
            pending.append(JobAdded(job=job, preset=str(preset_path), sets=tuple(full),
                                    directory=directory, options=options))
            print(f"added {job}: {preset_path.stem} → {root / directory}")
    if args.start:
        return cmd_start(args)
    if runner_alive(journal) is None:
        print(f"no runner works on this queue; start one with: gausynth queue start --root {args.root}")
    return 0


# --- list / show ----------------------------------------------------------------------------
def _gpu_text(job: Job) -> str:
    if job.placed:
        return ",".join(str(g) for g in job.gpus) or "cpu"
    last = job.history[-1] if job.history else None
    return "" if last is None else ("(" + (",".join(str(g) for g in last.gpus) or "cpu") + ")")


def render_queue(view: QueueView, states: tuple[str, ...] = STATES) -> str:
    rows = [f"{'#':>3}  {'job':<5} {'state':<10} {'gpu':<6} {'stage':<12} {'run folder':<28} preset"]
    waiting = 0
    for job in view.in_order():
        if job.state not in states:
            continue
        pos = ""
        if job.state == "waiting":
            waiting += 1
            pos = str(waiting)
        state = "cancelling" if job.cancel_asked else job.state
        rows.append(f"{pos:>3}  {job.id:<5} {state:<10} {_gpu_text(job):<6} {job.stage[:12]:<12} "
                    f"{job.directory[:28]:<28} {Path(job.preset).stem}")
        if job.error and job.state in ("failed", "waiting"):
            rows.append(f"{'':>11}↳ {job.error[:150]}")
    if len(rows) == 1:
        rows.append("  (no jobs)")
    return "\n".join(rows)


def cmd_list(args: argparse.Namespace) -> int:
    journal = _journal(args)
    view = journal.read()
    pid = runner_alive(journal)
    where = (view.runner.cluster or "this machine") if view.runner else "this machine"
    print(f"queue {journal.root}: " + (f"runner pid {pid} on {where}" if pid else "no runner"))
    print(render_queue(view, tuple(args.state) if getattr(args, "state", None) else STATES))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .._console import human_bytes, render_status
    from ..stages import STAGES

    journal = _journal(args)
    job = _job(journal.read(), args.job)
    layout = RunLayout.for_run(journal.outputs_root, job.directory)
    print(f"job {job.id}: {job.state}, attempt {job.attempts}, preset {job.preset}")
    print(f"run folder: {layout.root}" + (f"  (pid {job.pid} on {job.host})" if job.pid else ""))
    if job.error:
        print(f"error: {job.error}")
    for p in job.history:
        where = ", ".join(f"GPU {g}" for g in p.gpus) or "CPU"
        print(f"  {p.stage:<12} {where}  {p.cores} core(s)  reserved {human_bytes(p.vram) if p.vram else '–'}"
              f"  on {p.host}")
    if layout.journal.exists():
        print(render_status(RunView.from_journal(layout.journal), [s.id for s in STAGES]))
    return 0


# --- reorder, cancel, retry -------------------------------------------------------------------
def cmd_move(args: argparse.Namespace) -> int:
    journal = _journal(args)
    with journal.transaction() as (view, pending):
        job = _job(view, args.job)
        if job.state != "waiting":
            raise QueueError(f"queue job {job.id} is {job.state}; only waiting jobs move")
        others = [j.id for j in view.in_order("waiting") if j.id != job.id]
        if args.top:
            at = 0
        elif args.bottom:
            at = len(others)
        else:
            if not 1 <= args.to <= len(others) + 1:
                raise QueueError(f"--to {args.to}: accepted: a position from 1 to {len(others) + 1}")
            at = args.to - 1
        pending.append(JobMoved(job=job.id, before=others[at] if at < len(others) else None))
    print(f"{job.id} is now number {at + 1} of the waiting jobs")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    journal = _journal(args)
    with journal.transaction() as (view, pending):
        jobs = view.in_order() if args.all else [_job(view, ref) for ref in args.jobs]
        for job in jobs:
            if job.state in ("waiting", "running"):
                pending.append(JobCancelled(job=job.id))
                print(f"{job.id}: " + ("cancelled" if job.state == "waiting" else "asked to stop"))
            elif not args.all:
                print(f"{job.id}: already {job.state}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    journal = _journal(args)
    with journal.transaction() as (view, pending):
        jobs = [_job(view, ref) for ref in args.jobs] if args.jobs else view.in_order("failed")
        for job in jobs:
            if job.state not in ("failed", "cancelled"):
                raise QueueError(f"queue job {job.id} is {job.state}; only failed or cancelled jobs retry")
            pending.append(JobRetried(job=job.id))
            print(f"{job.id}: waiting again (its run folder resumes: finished stages are skipped)")
    if not jobs:
        print("no failed jobs")
    elif runner_alive(journal) is None:
        print(f"no runner works on this queue; start one with: gausynth queue start --root {args.root}")
    return 0


# --- the runner -------------------------------------------------------------------------------
def runner_argv(args: argparse.Namespace) -> list[str]:
    argv = [sys.executable, "-m", "gausynth_engine.queue._runner", str(Path(args.root).absolute())]
    for flag, value in (("--cores", args.cores), ("--max-runs", args.max_runs), ("--cluster", args.cluster)):
        if value:
            argv += [flag, str(value)]
    return argv


def cmd_start(args: argparse.Namespace) -> int:
    journal = _journal(args)
    pid = runner_alive(journal)
    if pid is not None:
        print(f"a runner (pid {pid}) already works on {journal.root}")
        return 0
    if getattr(args, "cluster", None):
        from ._ray import check_ray

        check_ray()
    journal.root.mkdir(parents=True, exist_ok=True)
    argv = runner_argv(args)
    if getattr(args, "foreground", False):
        from ._runner import main

        return main(argv[3:])
    with open(journal.log, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + 120
    while True:  # ready once its journal says so
        view = journal.read()
        if view.runner is not None and view.runner.pid == proc.pid:
            break
        if proc.poll() is not None:
            print(f"the queue runner exited at once (code {proc.returncode}); see {journal.log}", file=sys.stderr)
            return proc.returncode or 1
        if time.monotonic() > deadline:
            print(f"the queue runner (pid {proc.pid}) has not started after 120 s; see {journal.log}",
                  file=sys.stderr)
            return 1
        time.sleep(0.1)
    print(f"queue runner started (pid {proc.pid}) on {args.cluster or 'this machine'}; "
          f"see it with: gausynth queue list --root {args.root}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    journal = _journal(args)
    pid = runner_alive(journal)
    if pid is None:
        print(f"no runner works on {journal.root}")
        return 0
    os.kill(pid, signal.SIGTERM)
    print(f"asked the runner (pid {pid}) to stop starting runs; the runs going on go on, and "
          "`gausynth queue start` adopts them")
    return 0


def add_queue_parser(sub: argparse._SubParsersAction) -> None:
    """Adds `queue` and its subcommands to the CLI's parser."""
    q = sub.add_parser("queue", help="a queue of runs over every GPU of this machine, or a Ray cluster")
    q.add_argument("--root", default="demo_outputs_dir", help="the outputs root whose queue this is")
    q.set_defaults(func=cmd_list)
    qs = q.add_subparsers(dest="queue_command")

    def root(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--root", default=argparse.SUPPRESS, help="the outputs root whose queue this is")
        return p

    add = root(qs.add_parser("add", help="queue a preset × inputs (or several presets)"))
    add.add_argument("presets", nargs="+", metavar="PRESET", help="preset files or bundled names")
    add.add_argument("--input", action="append", metavar="VIDEO_OR_FOLDER",
                     help="an input (repeatable: one run per input and preset)")
    add.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    add.add_argument("--name", help="the run folder's name (default: the preset's run.directory, "
                     "plus the input's name when there are several)")
    add.add_argument("--from", dest="start", help="like `run --from`")
    add.add_argument("--until", help="like `run --until`")
    add.add_argument("--only", help="like `run --only`")
    add.add_argument("--force", action="store_true", help="like `run --force`")
    add.add_argument("--start", action="store_true", help="also start the runner")
    _runner_flags(add)
    add.set_defaults(func=cmd_add)

    ls = root(qs.add_parser("list", help="the jobs: waiting (in order), running with their GPU, done, failed"))
    ls.add_argument("--state", action="append", choices=STATES)
    ls.set_defaults(func=cmd_list)
    show = root(qs.add_parser("show", help="one job: its placements and its run's state"))
    show.add_argument("job", help="a job id (q001) or its run folder's name")
    show.set_defaults(func=cmd_show)
    move = root(qs.add_parser("move", help="reorder a waiting job"))
    move.add_argument("job")
    where = move.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", type=int, metavar="N", help="position among the waiting jobs (1 = next)")
    where.add_argument("--top", action="store_true")
    where.add_argument("--bottom", action="store_true")
    move.set_defaults(func=cmd_move)
    cancel = root(qs.add_parser("cancel", help="cancel waiting jobs, stop running ones"))
    cancel.add_argument("jobs", nargs="*")
    cancel.add_argument("--all", action="store_true")
    cancel.set_defaults(func=cmd_cancel)
    retry = root(qs.add_parser("retry", help="queue failed (or cancelled) jobs again; default: all failed"))
    retry.add_argument("jobs", nargs="*")
    retry.set_defaults(func=cmd_retry)
    start = root(qs.add_parser("start", help="start the detached runner (it ends when the queue is empty)"))
    _runner_flags(start)
    start.add_argument("--foreground", action="store_true", help="run in this terminal instead")
    start.set_defaults(func=cmd_start)
    root(qs.add_parser("stop", help="stop the runner; runs going on go on")).set_defaults(func=cmd_stop)


def _runner_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cores", type=int, help="CPU core budget of the stages (default: all)")
    p.add_argument("--max-runs", type=int, help="runs at once (default: GPUs + 1)")
    p.add_argument("--cluster", metavar="auto|ray://HOST:PORT",
                   help="run each stage as a Ray task on this cluster (pip install gausynth[ray])")
