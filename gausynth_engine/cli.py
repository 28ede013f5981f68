"""The headless `gausynth` command line (the TUI launcher hands every subcommand here)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ._console import ConsolePrinter, human_bytes, render_status
from ._errors import StageError, os_error_line
from ._journal import RunView, follow_journal, pid_alive
from ._layout import OUTPUTS_ROOT_ENV, LayoutError, RunLayout, default_outputs_root
from ._lock import RunLock, RunLockedError, probe
from ._plan import PlanError, check_input_count, check_same_input, make_plan
from ._preset import Preset, PresetError, load_preset, preset_table
from ._result import result_card
from ._runs import find_preset, find_run, presets_dir, resolve_paths, run_argv
from .stages import STAGES

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED, EXIT_CANCELLED = 0, 1, 2, 3, 130
STAGE_IDS = [s.id for s in STAGES]


# --- run --------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    preset_path = find_preset(args.preset)
    preset = resolve_paths(load_preset(preset_path, args.set), getattr(args, "outputs_root", None))
    root = Path(preset.run.outputs_root)
    if any(p.exists() and not p.is_dir() for p in (root, *root.parents)):
        raise PresetError([_problem(preset_path, "run.outputs_root", f"{root}: a part of this path "
                                    "is a file, not a folder; accepted: a folder (or a path to create)")])
    if not preset.run.input:
        raise PresetError([_problem(preset_path, "run.input", "is empty; give a video file or an "
                                    "image folder, e.g. --set run.input=clip.mp4")])
    layout = RunLayout.for_run(Path(preset.run.outputs_root), preset.run.directory)
    if not Path(preset.run.input).exists():
        raise PresetError([_problem(preset_path, "run.input", f"{preset.run.input}: no such file "
                                    "or folder")])
    check_input_count(preset)  # cheap refusals before any folder is made (make_plan repeats them)
    check_same_input(preset, layout, args.force)

    def plan(write_cache: bool = True):
        return make_plan(preset, layout, start=args.start, until=args.until, only=args.only,
                         force=args.force, write_cache=write_cache)

    if args.dry_run:  # reads only: no lock, no cache, no folder
        print(f"plan for {layout.root}:\n{plan(write_cache=False).describe()}")
        return EXIT_OK
    if args.detach:
        plan(write_cache=False)  # refuse a bad range or a missing upstream here, not in a log
        return _detach(args, layout)
    from ._orchestrator import Orchestrator

    printer = ConsolePrinter(verbose=args.verbose)
    print(f"run folder: {layout.root}")
    command = " ".join(_rebuild_run_argv(args))
    place = None
    if os.environ.get("GAUSYNTH_QUEUE"):  # started by the queue runner: it places each stage
        from .queue._client import placement_from_env

        place = placement_from_env(preset)
    # The plan that runs is made again once the lock is held: another run may have just ended.
    status = Orchestrator(preset, layout, preset_source=str(preset_path.absolute()),
                          command=command, on_event=printer, place=place).run(plan)
    print(result_card(layout, printer.view))
    return {"done": EXIT_OK, "cancelled": EXIT_CANCELLED}.get(status, EXIT_FAILED)


def _problem(path: Path, field: str, message: str):
    from ._preset import Problem

    return Problem(str(path), None, field, message)


def _detach(args: argparse.Namespace, layout: RunLayout) -> int:
    """Starts the same run as a process of its own session; gives once its journal shows it."""
    argv = _rebuild_run_argv(args)
    lock = RunLock(layout.lock)
    if probe(layout.lock).held:  # say so here, as a foreground run would
        raise RunLockedError(lock.busy_message(lock.read() or {}))
    layout.logs.mkdir(parents=True, exist_ok=True)
    log_path = layout.logs / "orchestrator.log"
    start = log_path.stat().st_size if log_path.exists() else 0
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, "-m", "gausynth_engine", *argv], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = [ln for ln in _read_from(log_path, start).splitlines() if ln.strip()]
            print(f"the run exited at once with code {proc.returncode}"
                  + (f": {said[-1]}" if said else "") + f" (full log: {log_path})", file=sys.stderr)
            return proc.returncode or EXIT_FAILED
        if RunView.from_journal(layout.journal).pid == proc.pid:
            break
        time.sleep(0.1)
    print(f"started run {layout.root} (pid {proc.pid}); watch it with: gausynth watch {layout.root}")
    return EXIT_OK


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _rebuild_run_argv(args: argparse.Namespace) -> list[str]:
    return run_argv(find_preset(args.preset).absolute(), args.set, start=args.start, until=args.until,
                    only=args.only, force=args.force, outputs_root=getattr(args, "outputs_root", None))


# --- viewing and control ----------------------------------------------------------------------
def cmd_status(args: argparse.Namespace) -> int:
    layout = find_run(args.run, args.root)
    view = RunView.from_journal(layout.journal)
    for warning in view.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"run folder: {layout.root}")
    print(render_status(view, STAGE_IDS))
    if view.note:
        print(f"note: {view.note}")
    if view.status == "new":
        print(_new_run_plan(layout))
    return EXIT_OK


def _new_run_plan(layout: RunLayout) -> str:
    """Says what `gausynth run` would do in a run folder where nothing has run yet."""
    snapshot = layout.preset_snapshot
    if not snapshot.exists():
        return ("nothing has run here and no preset is recorded; start it with "
                f"`gausynth run PRESET --set run.directory={layout.root.name}`")
    try:
        plan = make_plan(resolve_paths(load_preset(snapshot)), layout)
    except (PresetError, PlanError, LayoutError) as e:
        return f"nothing has run here; `gausynth run {snapshot}` would fail: {e}"
    return (f"nothing has run here yet; `gausynth run {snapshot}` would run "
            f"{len(plan.to_run)} stage(s):\n{plan.describe()}")


def cmd_watch(args: argparse.Namespace) -> int:
    layout = find_run(args.run, args.root)
    printer = ConsolePrinter(verbose=args.verbose)
    view = RunView.from_journal(layout.journal)
    follow = view.status == "running"
    who = view.orchestrator

    def alive() -> bool:  # the journal's only writer: once it is gone, nothing more will come
        if who is not None:
            return who.alive() is not False
        return bool(view.pid) and pid_alive(view.pid)

    finished = False
    try:
        for event in follow_journal(layout.journal, stop_when_finished=True, alive=alive) if follow else []:
            printer(event)
            finished = finished or event.type == "run_finished"
    except KeyboardInterrupt:
        return EXIT_OK  # watching stops; the run goes on
    if follow and not finished:
        view = RunView.from_journal(layout.journal)
        print(f"the run process {view.pid} is gone without finishing:")
    if not follow or not finished:
        print(render_status(view, STAGE_IDS))
        if view.note:
            print(f"note: {view.note}")
    if follow or view.status in ("done", "failed", "cancelled"):
        print(result_card(layout))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    """Stops a run: its orchestrator if it lives, else the orphan workers that hold its lock.

    Only processes proven to be this run's (pid + start time + host, as the lock and the
    journal record them) are signalled; another host's run is never signalled from here.
    """
    layout = find_run(args.run, args.root)
    lock = probe(layout.lock)
    holder = lock.holder
    if lock.held and holder is not None and not holder.local:
        print(f"error: {layout.root} is run by process {holder.pid} on host {holder.host}; "
              "cancel it there", file=sys.stderr)
        return EXIT_FAILED
    if lock.held and holder is not None and holder.alive() is True:
        why = holder.signal(signal.SIGTERM)
        if why:
            print(f"error: {why}", file=sys.stderr)
            return EXIT_FAILED
        if _wait_released(layout):
            print(f"cancelled the run in {layout.root}")
        else:
            print(f"asked process {holder.pid} to stop; it is still finishing")
        return EXIT_OK
    view = RunView.from_journal(layout.journal)
    who = view.orchestrator
    if view.status == "running" and who is not None and not who.local:
        print(f"error: {layout.root} is run by process {who.pid} on host {who.host}, says its "
              "journal; cancel it there", file=sys.stderr)
        return EXIT_FAILED
    orphans = [s for s in view.stages.values() if s.state == "running"]
    stopped, refused = [], []
    for s in orphans:  # workers whose orchestrator died
        why = s.proc.signal_group(signal.SIGTERM) if s.proc is not None else (
            f"worker {s.pid} of {s.id}: the journal does not prove whose it is (no start time)")
        (refused if why else stopped).append(why or s.id)
    for why in refused:
        print(f"not signalled: {why}", file=sys.stderr)
    if stopped and not _wait_released(layout):
        for s in orphans:
            if s.proc is not None:
                s.proc.signal_group(signal.SIGKILL)
        _wait_released(layout)
    if lock.held and not stopped:
        print(f"error: {layout.root} is locked by a process this run's records do not name; "
              "not signalled", file=sys.stderr)
        return EXIT_FAILED
    print(f"{layout.root}: no active run"
          + (f"; stopped {len(stopped)} orphan worker(s): {', '.join(stopped)}" if stopped else ""))
    return EXIT_OK


def _wait_released(layout: RunLayout, seconds: float = 15.0) -> bool:
    """Gives whether the run lock became free within `seconds` (the run and its workers ended)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not probe(layout.lock).held:
            return True
        time.sleep(0.05)
    return not probe(layout.lock).held


def cmd_runs(args: argparse.Namespace) -> int:
    root = Path(args.root).absolute() if args.root else default_outputs_root()
    runs = sorted(p for p in root.iterdir() if (p / ".gausynth").is_dir()) if root.is_dir() else []
    if not runs:
        print(f"no runs under {root}/")
    for p in runs:
        view = RunView.from_journal(RunLayout(p).journal)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(view.last_event)) if view.last_event else "–"
        print(f"{p.name:<24} {view.status:<10} {when}")
    return EXIT_OK


# --- the bundled sample, demo, doctor ----------------------------------------------------------
def cmd_sample(args: argparse.Namespace) -> int:
    from ._sample import SampleSpec, make_sample

    w, h = (int(v) for v in args.size.split("x"))
    video = make_sample(Path(args.folder), SampleSpec(frames=args.frames, width=w, height=h))
    print(video)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from ._sample import SampleSpec, make_sample

    gpu = _cuda_available()
    frames = args.frames or (96 if gpu else 24)
    size = args.size or ("640x480" if gpu else "320x240")
    w, h = (int(v) for v in size.split("x"))
    spec = SampleSpec(frames=frames, width=w, height=h)
    root = Path(args.root).absolute() if args.root else default_outputs_root()
    sample = root / f"sample-{frames}-{size}" / "turnaround.mp4"
    if not sample.exists():
        print(f"rendering the sample turn-around into {sample.parent} …")
        make_sample(sample.parent, spec)
    name, why = demo_preset_choice(args.preset)
    print(f"demo preset: {name} — {why}")
    overrides = [f"run.input={sample.absolute()}", f"run.outputs_root={root}",
                 f"run.directory=demo-{name}"]
    if gpu:
        print(f"expected duration: about {DEMO_MINUTES[name, 'gpu']} on one GPU (plus ~1 min once, "
              "while gsplat compiles its kernels)")
    else:
        overrides += CPU_DEMO_OVERRIDES
        print("no CUDA GPU: small sizes and a short training (" + ", ".join(CPU_DEMO_OVERRIDES) + ")")
        print(f"expected duration: about {DEMO_MINUTES[name, 'cpu']} on two CPU cores")
    run_args = argparse.Namespace(
        preset=str(presets_dir() / f"{name}.toml"), set=overrides + list(args.set), start=None,
        until=None, only=None, force=False, dry_run=args.dry_run, detach=False, verbose=False)
    return cmd_run(run_args)  # a finished run ends with its result card (test PSNR, the PLY)


# The pure-PyTorch rasterizer costs ~0.1 s a step at 64×48 with a few thousand Gaussians.
CPU_DEMO_OVERRIDES = ["preprocess.num_frames=0", "preprocess.colmap_size=256", "preprocess.sd_size=128",
                      "splat.iterations=1000", "splat.downscale=4", "splat.sh_degree=1"]
# `gausynth demo` wall times: CPU measured (original-only: 2 min 22 s on two cores, session 4);
# GPU estimated from the stages measured on the H200 (bench/e2e.py, bench/splat_quality.py).
DEMO_MINUTES = {("original-only", "cpu"): "3 minutes", ("original-only", "gpu"): "2 minutes",
                ("quick", "cpu"): "an hour", ("quick", "gpu"): "3 minutes",
                ("default", "cpu"): "many hours", ("default", "gpu"): "10 minutes"}


def demo_preset_choice(asked: str | None) -> tuple[str, str]:
    """Gives (bundled preset name, why) for the demo: quick with diffusion models, else original-only."""
    if asked:
        return asked, "asked for with --preset"
    try:
        from .models import missing_models
    except ImportError:
        return "original-only", "this build has no diffusion stage yet"
    missing = missing_models(load_preset(presets_dir() / "quick.toml"))
    if missing:
        fields = ", ".join(line.split(" = ", 1)[0] for line in missing)
        return "original-only", (f"the models of the quick preset are not present locally ({fields}); "
                                 "`gausynth models list quick` says which, `gausynth models fetch quick` "
                                 "gets them")
    return "quick", "the diffusion models are present locally"


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def cmd_doctor(args: argparse.Namespace) -> int:
    import textwrap

    from ._doctor import checks

    for name, ok, detail in checks(build_gsplat=args.build_gsplat):
        head = f"{'✔' if ok else '✘' if ok is False else '·'} {name:<22} "
        print(textwrap.fill(detail, DOCTOR_WIDTH, initial_indent=head, subsequent_indent=" " * len(head),
                            break_on_hyphens=False))
    return EXIT_OK


DOCTOR_WIDTH = 100  # a long detail (every missing model) wraps under itself


README_MARKERS = ("<!-- preset-table:start -->", "<!-- preset-table:end -->")


def cmd_schema(args: argparse.Namespace) -> int:
    if not args.write_readme:
        print(preset_table())
        return EXIT_OK
    path = Path(args.write_readme)
    text = path.read_text(encoding="utf-8")
    start, end = README_MARKERS
    if start not in text or end not in text:
        print(f"{path}: no {start} … {end} block to fill", file=sys.stderr)
        return EXIT_USAGE
    head, rest = text.split(start, 1)
    path.write_text(f"{head}{start}\n{preset_table()}\n{end}{rest.split(end, 1)[1]}", encoding="utf-8")
    return EXIT_OK


def cmd_presets(args: argparse.Namespace) -> int:
    for p in sorted(presets_dir().glob("*.toml")):
        print(f"{p.stem:<16} {p}")
    return EXIT_OK


# --- models, choices, previews ---------------------------------------------------------------
def _preset_from(args: argparse.Namespace) -> Preset:
    return resolve_paths(load_preset(find_preset(args.preset), args.set))


def cmd_models(args: argparse.Namespace) -> int:
    from .models import models_fetch, models_list

    preset = _preset_from(args)
    if args.action == "fetch":
        def progress(ref, done: float, total: float, unit: str) -> None:
            print(f"\r  {ref.source}: {done / 2**20:.0f}/{total / 2**20:.0f} MiB" if unit == "B"
                  else f"\r  {ref.source}: {done:g}/{total:g} {unit}", end="", flush=True)

        for path in models_fetch(preset, progress):
            print(f"\n✔ {path}")
        return EXIT_OK
    rows = models_list(preset)
    if not rows:
        print("this preset needs no model weights")
    for r in rows:
        mark = "✔" if r["present"] else "✘"
        size = human_bytes(_disk_size(Path(r["path"]))) if r["present"] and r["path"] else "not on disk"
        print(f"{mark} {r['role']:<32} {r['field']:<24} {size:>11}  {r['source']}"
              + (f"  {r['path']}" if r["path"] else ""))
    return EXIT_OK if all(r["present"] for r in rows) else EXIT_FAILED


def _disk_size(path: Path) -> int:
    """Gives the bytes a model file or folder takes (links followed: the HF cache links blobs)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cmd_choose(args: argparse.Namespace) -> int:
    from .stages.reimagine import choose_candidate

    if args.stage != "reimagine":
        raise StageError(f"choose {args.stage}: only reimagine has candidates")
    layout = find_run(args.run, args.root)
    lock = RunLock(layout.lock)
    lock.acquire()
    try:
        folder = choose_candidate(layout, args.candidate)
    finally:
        lock.release()
    print(f"candidate {args.candidate} now feeds the stages after reimagine ({folder}); "
          "`gausynth run` reruns only those")
    return EXIT_OK


def cmd_preview_edges(args: argparse.Namespace) -> int:
    from .stages.reimagine import preview_edges

    preset = _preset_from(args)
    layout = RunLayout.for_run(Path(preset.run.outputs_root), preset.run.directory)
    out = Path(args.out) if args.out else layout.artifacts / "edges.png"
    print(preview_edges(preset, out))
    return EXIT_OK


def _app_elsewhere(args: argparse.Namespace) -> int:
    print(f"`{args.command}` is the app: run it with the `gausynth` command (package gausynth_tui)",
          file=sys.stderr)
    return EXIT_USAGE
# --- seeing and exporting the splat ------------------------------------------------------------
EXPORT_FORMATS = ("ply", "splat", "compressed-ply", "spz")  # export.FORMATS (no numpy at parse time)


def cmd_view(args: argparse.Namespace) -> int:
    from .viewer.server import serve

    layout = find_run(args.run, args.root)
    try:
        import viser  # noqa: F401
    except ImportError:
        raise StageError("the browser viewer needs viser: pip install 'gausynth[viewer]'") from None
    serve(layout, host=args.host, port=args.port, every=args.every, duration=args.duration)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from .export import ExportError

    try:
        return _export(args)
    except ExportError as e:
        raise StageError(str(e)) from None


def _export(args: argparse.Namespace) -> int:
    from .export import FORMATS, check_cameras, export_training
    from .viewer.models import VARIANTS, cameras, final_model

    layout = find_run(args.run, args.root)
    formats = FORMATS if args.format == "all" else (args.format,)
    variants = VARIANTS if args.variant == "both" else (args.variant,)
    cams = cameras(layout) if not args.no_render_check else None
    check = check_cameras(cams) if cams is not None else None
    out = Path(args.out) if args.out else layout.exports
    done, ok = 0, True
    for variant in variants:
        model = final_model(layout, variant)
        if model is None:
            continue
        stem = model.path.parents[2].name  # gs/<variant>_<iters>-<stamp>/point_cloud/iteration_N/
        print(f"{variant}: {model.path}")
        for result in export_training(model.path, formats, out, stem, check):
            print("  " + result.line())
            ok &= result.ok
            done += 1
    if not done:
        raise StageError(f"{layout.gs}: no finished training ({' or '.join(variants)}) to export; "
                         "run the splat stages first")
    return EXIT_OK if ok else EXIT_FAILED


def cmd_tensorboard(args: argparse.Namespace) -> int:
    try:
        from .tensorboard import write_curves
    except ImportError:
        raise StageError("tensorboard event files need tensorboardX: pip install 'gausynth[tensorboard]'") from None
    layout = find_run(args.run, args.root)
    out = layout.root / "tensorboard"
    counts = write_curves(layout.journal, out, follow=args.follow)
    print(f"{sum(counts.values())} points of {len(counts)} stage(s) in {out}; "
          f"open with: tensorboard --logdir {out}")
    return EXIT_OK


# --- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gausynth", description="Turn a turn-around video into a "
                                     "reimagined 3D Gaussian Splatting model. With no command: the app.")
    sub = parser.add_subparsers(dest="command", required=True)
    # The `gausynth` launcher starts the app for these two before this parser sees them; they
    # are here so that --help lists them.
    for name, text in (("app", "the keyboard-driven app over the outputs root (also: no command)"),
                       ("attach", "open the app on one run (a folder or a name under --root)")):
        app = sub.add_parser(name, help=text)
        app.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        app.set_defaults(func=_app_elsewhere)

    def with_root(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--outputs-root", "--root", dest="root", default=None, metavar="DIR",
                       help=f"outputs root to find RUN under (default: ${OUTPUTS_ROOT_ENV}, else "
                       "~/.local/share/gausynth/runs)")
        return p

    run = sub.add_parser("run", help="run what is stale in a preset's run folder")
    run.add_argument("preset", help="a preset file, or a bundled name (default, quick, original-only)")
    run.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                     help="override a preset field (repeatable)")
    run.add_argument("--from", dest="start", choices=STAGE_IDS, help="consider this stage and later ones")
    run.add_argument("--until", choices=STAGE_IDS, help="consider stages up to this one")
    run.add_argument("--only", choices=STAGE_IDS, help="consider this stage alone")
    run.add_argument("--force", action="store_true", help="run the considered stages even if unchanged")
    run.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    run.add_argument("--detach", action="store_true", help="run in the background, outliving this shell")
    run.add_argument("--outputs-root", metavar="DIR", help="where run folders live (beats the preset "
                     f"and ${OUTPUTS_ROOT_ENV})")
    run.add_argument("-v", "--verbose", action="store_true", help="print every log line")
    run.set_defaults(func=cmd_run)

    for name, func, text in (("status", cmd_status, "a run's state, rebuilt from its journal"),
                             ("watch", cmd_watch, "follow a run's events until it ends"),
                             ("cancel", cmd_cancel, "stop a run started from any shell")):
        p = with_root(sub.add_parser(name, help=text))
        p.add_argument("run", help="a run folder, or a run name under --root")
        if name == "watch":
            p.add_argument("-v", "--verbose", action="store_true")
        p.set_defaults(func=func)

    with_root(sub.add_parser("runs", help="list the runs under the outputs root")).set_defaults(func=cmd_runs)

    demo = sub.add_parser("demo", help="render the bundled sample and run a preset on it")
    demo.add_argument("--preset", choices=("quick", "original-only", "default"))
    demo.add_argument("--outputs-root", "--root", dest="root", default=None, metavar="DIR",
                      help="where the sample and the demo run go (default: the outputs root)")
    demo.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    demo.add_argument("--dry-run", action="store_true")
    demo.add_argument("--frames", type=int, default=0,
                      help="frames of the rendered sample (default: 96 with a GPU, 24 without)")
    demo.add_argument("--size", default="",
                      help="WIDTHxHEIGHT of the rendered sample (default: 640x480 with a GPU, 320x240 without)")
    demo.set_defaults(func=cmd_demo)

    sample = sub.add_parser("sample", help="render the synthetic turn-around (video + true cameras)")
    sample.add_argument("folder")
    sample.add_argument("--frames", type=int, default=96)
    sample.add_argument("--size", default="640x480", help="WIDTHxHEIGHT")
    sample.set_defaults(func=cmd_sample)

    doctor = sub.add_parser("doctor", help="what this machine can run")
    doctor.add_argument("--build-gsplat", action="store_true", help="also compile gsplat's kernels")
    doctor.set_defaults(func=cmd_doctor)

    schema = sub.add_parser("schema", help="print the preset table (Markdown)")
    schema.add_argument("--write-readme", metavar="README", help="refresh the table inside README")
    schema.set_defaults(func=cmd_schema)
    sub.add_parser("presets", help="list the bundled presets").set_defaults(func=cmd_presets)

    models = sub.add_parser("models", help="list or download the model weights a preset needs")
    models.add_argument("action", choices=("list", "fetch"))
    models.add_argument("preset")
    models.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    models.set_defaults(func=cmd_models)

    choose = with_root(sub.add_parser("choose", help="make another reimagination candidate feed the "
                                      "stages after reimagine"))
    choose.add_argument("run")
    choose.add_argument("stage", choices=("reimagine",))
    choose.add_argument("candidate", type=int)
    choose.set_defaults(func=cmd_choose)

    edges = sub.add_parser("preview-edges", help="write the canny edge map of a run's sheet (no model)")
    edges.add_argument("preset")
    edges.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    edges.add_argument("--out", help="where to write the PNG (default: the run's artifacts)")
    edges.set_defaults(func=cmd_preview_edges)

    view = with_root(sub.add_parser("view", help="the run's splat in a browser (viser), live while "
                                    "it trains; binds to localhost and prints the ssh -L line"))
    view.add_argument("run", help="a run folder, or a run name under --root")
    view.add_argument("--port", type=int, default=8080, help="the port (the next free one if taken)")
    view.add_argument("--host", default="127.0.0.1",
                      help="address to bind (default: this machine only; 0.0.0.0 exposes it)")
    view.add_argument("--every", type=float, default=2.0,
                      help="seconds between refreshes (and training snapshots)")
    view.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    view.set_defaults(func=cmd_view)

    export = with_root(sub.add_parser("export", help="write the trained splat for other viewers, "
                                      "each file read back and compared"))
    export.add_argument("run", help="a run folder, or a run name under --root")
    export.add_argument("--format", choices=(*EXPORT_FORMATS, "all"), default="ply")
    export.add_argument("--variant", choices=("reim", "orig", "both"), default="both")
    export.add_argument("--out", help="folder for the files (default: the run's exports/)")
    export.add_argument("--no-render-check", action="store_true",
                        help="compare Gaussians only, not renders from the SfM cameras")
    export.set_defaults(func=cmd_export)

    board = with_root(sub.add_parser("tensorboard", help="write the run's training curves as "
                                     "TensorBoard event files (<run>/tensorboard/)"))
    board.add_argument("run", help="a run folder, or a run name under --root")
    board.add_argument("--follow", action="store_true", help="keep writing until the run finishes")
    board.set_defaults(func=cmd_tensorboard)
    from .queue.cli import add_queue_parser

    add_queue_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PresetError as e:
        print(str(e), file=sys.stderr)
        return EXIT_USAGE
    except (PlanError, LayoutError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except RunLockedError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_LOCKED
    except StageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        return EXIT_OK
    except OSError as e:  # the one place an OS error reaches the user: one line, the path
        print(f"error: {os_error_line(e)}", file=sys.stderr)
        return EXIT_FAILED
