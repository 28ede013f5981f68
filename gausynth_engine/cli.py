"""The headless `gausynth` command line (the TUI launcher hands every subcommand here)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ._console import ConsolePrinter, render_status
from ._journal import RunView, follow_journal, pid_alive
from ._layout import LayoutError, RunLayout
from ._lock import RunLock, RunLockedError, holder_alive
from ._plan import PlanError, make_plan
from ._preset import Preset, PresetError, load_preset, preset_table
from ._stage import StageError
from .stages import STAGES

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED, EXIT_CANCELLED = 0, 1, 2, 3, 130
STAGE_IDS = [s.id for s in STAGES]


def presets_dir() -> Path:
    """Gives the bundled presets folder (installed beside the package, or the repo's)."""
    installed = Path(__file__).parent / "presets"
    return installed if installed.is_dir() else Path(__file__).resolve().parent.parent / "presets"


def find_preset(name: str) -> Path:
    """Gives the preset file for a path or a bundled name such as 'quick'."""
    path = Path(name)
    if path.exists() or path.suffix == ".toml" or os.sep in name:
        return path
    return presets_dir() / f"{name}.toml"


def resolve_paths(preset: Preset) -> Preset:
    """Gives the preset with run.input and run.outputs_root made absolute (for the snapshot)."""
    run = preset.run
    absolute = dataclasses.replace(
        run, input=str(Path(run.input).absolute()) if run.input else "",
        outputs_root=str(Path(run.outputs_root).absolute()))
    return dataclasses.replace(preset, run=absolute)


def find_run(ref: str, root: str = "demo_outputs_dir") -> RunLayout:
    """Gives the layout of a run given as a folder path or as a name under the outputs root."""
    path = Path(ref)
    if (path / ".gausynth").is_dir():
        return RunLayout(path.absolute())
    candidate = Path(root) / ref
    if (candidate / ".gausynth").is_dir():
        return RunLayout(candidate.absolute())
    raise LayoutError(f"{ref}: no run folder here or under {root}/ (a run folder holds .gausynth/)")


# --- run --------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    preset_path = find_preset(args.preset)
    preset = resolve_paths(load_preset(preset_path, args.set))
    if not preset.run.input:
        raise PresetError([_problem(preset_path, "run.input", "is empty; give a video file or an "
                                    "image folder, e.g. --set run.input=clip.mp4")])
    layout = RunLayout.for_run(Path(preset.run.outputs_root), preset.run.directory)
    if not Path(preset.run.input).exists():
        raise PresetError([_problem(preset_path, "run.input", f"{preset.run.input}: no such file "
                                    "or folder")])
    plan = make_plan(preset, layout, start=args.start, until=args.until, only=args.only,
                     force=args.force)
    if args.dry_run:
        print(f"plan for {layout.root}:\n{plan.describe()}")
        return EXIT_OK
    if args.detach:
        return _detach(args, layout)
    from ._orchestrator import Orchestrator

    printer = ConsolePrinter(verbose=args.verbose)
    print(f"run folder: {layout.root}")
    command = " ".join(_rebuild_run_argv(args))
    place = None
    if os.environ.get("GAUSYNTH_QUEUE"):  # started by the queue runner: it places each stage
        from .queue._client import placement_from_env

        place = placement_from_env(preset)
    status = Orchestrator(preset, layout, preset_source=str(preset_path.absolute()),
                          command=command, on_event=printer, place=place).run(plan)
    return {"done": EXIT_OK, "cancelled": EXIT_CANCELLED}.get(status, EXIT_FAILED)


def _problem(path: Path, field: str, message: str):
    from ._preset import Problem

    return Problem(str(path), None, field, message)


def _detach(args: argparse.Namespace, layout: RunLayout) -> int:
    """Starts the same run as a process of its own session; gives once its journal shows it."""
    argv = _rebuild_run_argv(args)
    layout.logs.mkdir(parents=True, exist_ok=True)
    log = open(layout.logs / "orchestrator.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, "-m", "gausynth_engine", *argv], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"the run exited at once with code {proc.returncode}; see "
                  f"{layout.logs / 'orchestrator.log'}", file=sys.stderr)
            return proc.returncode or EXIT_FAILED
        if RunView.from_journal(layout.journal).pid == proc.pid:
            break
        time.sleep(0.1)
    print(f"started run {layout.root} (pid {proc.pid}); watch it with: gausynth watch {layout.root}")
    return EXIT_OK


def run_argv(preset: Path | str, sets: list[str] | tuple[str, ...] = (), *, start: str | None = None,
             until: str | None = None, only: str | None = None, force: bool = False) -> list[str]:
    """Gives the `run` command line (after the program name) for a preset and its options."""
    argv = ["run", str(preset)]
    for s in sets:
        argv += ["--set", s]
    for flag, value in (("--from", start), ("--until", until), ("--only", only)):
        if value:
            argv += [flag, value]
    if force:
        argv.append("--force")
    return argv


def _rebuild_run_argv(args: argparse.Namespace) -> list[str]:
    return run_argv(find_preset(args.preset).absolute(), args.set, start=args.start, until=args.until,
                    only=args.only, force=args.force)


# --- viewing and control ----------------------------------------------------------------------
def cmd_status(args: argparse.Namespace) -> int:
    layout = find_run(args.run, args.root)
    view = RunView.from_journal(layout.journal)
    print(f"run folder: {layout.root}")
    print(render_status(view, STAGE_IDS))
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    layout = find_run(args.run, args.root)
    printer = ConsolePrinter(verbose=args.verbose)
    view = RunView.from_journal(layout.journal)
    follow = view.status == "running"
    try:
        for event in follow_journal(layout.journal, stop_when_finished=True) if follow else []:
            printer(event)
    except KeyboardInterrupt:
        return EXIT_OK  # watching stops; the run goes on
    if not follow:
        print(render_status(view, STAGE_IDS))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    layout = find_run(args.run, args.root)
    info = RunLock(layout.lock).read()
    if info is None or not holder_alive(info):
        view = RunView.from_journal(layout.journal)
        orphans = [s for s in view.stages.values() if s.state == "running" and s.pid and pid_alive(s.pid)]
        for s in orphans:  # a worker whose orchestrator died
            os.killpg(s.pid, signal.SIGTERM)
        print(f"{layout.root}: no active run" + (f"; stopped {len(orphans)} orphan worker(s)" if orphans else ""))
        return EXIT_OK
    os.kill(int(info["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and layout.lock.exists():
        time.sleep(0.1)
    print(f"cancelled the run in {layout.root}" if not layout.lock.exists()
          else f"asked process {info['pid']} to stop; it is still finishing")
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    root = Path(args.root)
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

    w, h = (int(v) for v in args.size.split("x"))
    spec = SampleSpec(frames=args.frames, width=w, height=h)
    sample = Path(args.root) / f"sample-{args.frames}-{args.size}" / "turnaround.mp4"
    if not sample.exists():
        print(f"rendering the sample turn-around into {sample.parent} …")
        make_sample(sample.parent, spec)
    name, why = demo_preset_choice(args.preset)
    print(f"demo preset: {name} — {why}")
    overrides = [f"run.input={sample.absolute()}", f"run.outputs_root={Path(args.root).absolute()}",
                 f"run.directory=demo-{name}"]
    if not _cuda_available():
        overrides += CPU_DEMO_OVERRIDES
        print("no CUDA GPU: small sizes and a short training (" + ", ".join(CPU_DEMO_OVERRIDES) + ")")
    run_args = argparse.Namespace(
        preset=str(presets_dir() / f"{name}.toml"), set=overrides + list(args.set), start=None,
        until=None, only=None, force=False, dry_run=args.dry_run, detach=False, verbose=False)
    return cmd_run(run_args)


# The pure-PyTorch rasterizer costs ~0.15 s a step at 64² with a few thousand Gaussians.
CPU_DEMO_OVERRIDES = ["preprocess.num_frames=24", "preprocess.colmap_size=256", "preprocess.sd_size=128",
                      "splat.iterations=1000", "splat.downscale=4"]


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
    from ._doctor import checks

    for name, ok, detail in checks(build_gsplat=args.build_gsplat):
        print(f"{'✔' if ok else '✘' if ok is False else '·'} {name:<22} {detail}")
    return EXIT_OK


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
        print(f"{mark} {r['role']:<32} {r['field']:<24} {r['source']}  {r['path'] or '(missing)'}")
    return EXIT_OK if all(r["present"] for r in rows) else EXIT_FAILED


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


# --- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gausynth", description="Turn a turn-around video into a "
                                     "reimagined 3D Gaussian Splatting model. With no command: the app.")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_root(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--root", default="demo_outputs_dir", help="outputs root to find RUN under")
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
    demo.add_argument("--root", default="demo_outputs_dir")
    demo.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    demo.add_argument("--dry-run", action="store_true")
    demo.add_argument("--frames", type=int, default=96, help="frames of the rendered sample")
    demo.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of the rendered sample")
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

    choose = with_root(sub.add_parser("choose", help="make another reimagination candidate feed on"))
    choose.add_argument("run")
    choose.add_argument("stage", choices=("reimagine",))
    choose.add_argument("candidate", type=int)
    choose.set_defaults(func=cmd_choose)

    edges = sub.add_parser("preview-edges", help="write the canny edge map of a run's sheet (no model)")
    edges.add_argument("preset")
    edges.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    edges.add_argument("--out", help="where to write the PNG (default: the run's artifacts)")
    edges.set_defaults(func=cmd_preview_edges)

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
