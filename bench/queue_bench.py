"""Benchmark: a queue of small objects against running them one after another, in one run.

Objects: the generated sample turn-around and a small real capture (default `.data/apple.mp4`,
a copy of ../shared/data/apple-video/apple.mp4), cycled with other sizes for --objects > 2.
Both ways run the same `original-only` preset at the same sizes: frames → SfM (CPU) → 3DGS (GPU).

1. one after another: `gausynth run` per object, each waiting for the last (the baseline);
2. the queue: `gausynth queue add` + `queue start`: CPU stages (SfM) of one object overlap the
   GPU training of another, and GPU stages are pinned (CUDA_VISIBLE_DEVICES = the GPU's UUID)
   and packed by the VRAM peaks the baseline runs recorded in their manifests.

Prints wall times and their ratio, each queued run's stage timeline, how long CPU stages
overlapped GPU stages, per-GPU utilisation over time (the queue journal's GPU samples), and the
placement check: every GPU stage's worker was watched while it ran (its CUDA_VISIBLE_DEVICES
from /proc, the GPUs NVML lists its pid on) against the GPU the queue gave it.  # noqa: E402

    python bench/queue_bench.py [--real .data/apple.mp4] [--objects 2] [--iterations 2000]
                          [--size 512] [--frames 40] [--max-runs N] [--out .data/bench-queue] [--cpu]

--cpu: tiny sizes, up to sfm, for a CPU machine (a check that it works, not a measurement).
"""

from __future__ import annotations

import os
import sys

# This file is named like the standard library's `queue`: never let it shadow that module.
_HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gausynth_engine._journal import RunView, read_journal  # noqa: E402
from gausynth_engine._layout import RunLayout  # noqa: E402
from gausynth_engine._sample import SampleSpec, make_sample  # noqa: E402
from gausynth_engine.queue._gpus import list_gpus  # noqa: E402
from gausynth_engine.queue._journal import JobAdded, QueueJournal, StagePlaced  # noqa: E402
from gausynth_engine.stages import STAGES  # noqa: E402

GPU_STAGES = tuple(s.id for s in STAGES if s.gpu)


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                ORT_DISABLE_TELEMETRY="1")


def gausynth(*args: str, log: Path | None = None) -> int:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.run([sys.executable, "-m", "gausynth_engine", *args], env=env(), stdout=out,
                              stderr=subprocess.STDOUT, cwd=REPO).returncode
    finally:
        if log:
            out.close()


def objects(args: argparse.Namespace, folder: Path) -> list[Path]:
    """Gives the inputs: the sample and the real set, then other sizes of them, --objects in all."""
    made: list[Path] = []
    real = Path(args.real)
    for i in range(args.objects):
        if i % 2 == 0:
            frames = args.sample_frames + 16 * (i // 2)
            path = make_sample(folder / f"sample-{frames}", SampleSpec(frames=frames, width=640, height=480))
            made.append(path.rename(path.with_name(f"sample{frames}.mp4")))
        else:
            if not real.exists():
                raise SystemExit(f"{real}: no such file; copy it first: mkdir -p .data && cp "
                                 "../shared/data/apple-video/apple.mp4 .data/")
            copy = folder / f"real{i // 2}{real.suffix}"
            shutil.copy(real, copy)
            made.append(copy)
    return made


def sets(args: argparse.Namespace, frames: int) -> list[str]:
    s = {"preprocess.num_frames": frames, "preprocess.colmap_size": args.size, "preprocess.sd_size": 64,
         "splat.iterations": args.iterations, "splat.downscale": args.downscale,
         "sfm.allow_low_registration": "true", "run.device": "auto"}
    return [f"{k}={v!r}" if isinstance(v, str) and v not in ("true",) else f"{k}={v}" for k, v in s.items()]


def warm_gsplat() -> str:
    """Compiles gsplat's kernels before any timing (the first use costs ~1 min)."""
    code = "import torch; from gsplat.cuda._backend import _C; print(torch.cuda.get_device_name(0))"
    out = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True)
    return out.stdout.strip() or f"gsplat warm-up failed: {out.stderr.strip().splitlines()[-1:]}"


class Watcher(threading.Thread):
    """Samples, every 0.5 s, which GPU each running stage worker is pinned to and where NVML sees it."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.seen: dict[tuple[str, str], dict[str, set[str]]] = {}  # (run, stage) -> facts
        self.stop = threading.Event()
        self.nvml_pids = False

    def run(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            handles = [(pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(i)),
                        pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:  # noqa: BLE001
            pynvml, handles = None, []
        while not self.stop.wait(0.5):
            on_gpu: dict[int, set[str]] = {}
            for uuid, h in handles:
                try:
                    for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h):
                        on_gpu.setdefault(int(p.pid), set()).add(_text(uuid))
                        self.nvml_pids = True
                except Exception:  # noqa: BLE001
                    pass
            for folder in self.root.iterdir():
                journal = RunLayout(folder).journal
                if not journal.exists():
                    continue
                for s in RunView.from_journal(journal).stages.values():
                    if s.state != "running" or not s.pid:
                        continue
                    facts = self.seen.setdefault((folder.name, s.id), {"visible": set(), "nvml": set()})
                    try:
                        environ = Path(f"/proc/{s.pid}/environ").read_bytes().split(b"\0")
                        visible = [e.split(b"=", 1)[1].decode() for e in environ
                                   if e.startswith(b"CUDA_VISIBLE_DEVICES=")]
                        facts["visible"].update(visible or ["(unset)"])
                    except OSError:
                        pass
                    facts["nvml"].update(on_gpu.get(s.pid, set()))


def _text(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def stage_intervals(layout: RunLayout) -> dict[str, tuple[float, float]]:
    started: dict[str, float] = {}
    out: dict[str, tuple[float, float]] = {}
    for e in read_journal(layout.journal):
        if e.type == "stage_started":
            started[e.stage] = e.t
        elif e.type in ("stage_done", "stage_failed", "stage_cancelled") and e.stage in started:
            out[e.stage] = (started[e.stage], e.t)
    return out


def overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """Gives the seconds during which some interval of `a` and some interval of `b` both ran."""
    events = sorted([(t0, 1, 0) for t0, _ in a] + [(t1, -1, 0) for _, t1 in a] +
                    [(t0, 1, 1) for t0, _ in b] + [(t1, -1, 1) for _, t1 in b])
    live, total, last = [0, 0], 0.0, None
    for t, step, side in events:
        if last is not None and live[0] and live[1]:
            total += t - last
        live[side] += step
        last = t
    return total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--real", default=str(REPO / ".data" / "apple.mp4"))
    p.add_argument("--objects", type=int, default=2)
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--size", type=int, default=512, help="preprocess.colmap_size")
    p.add_argument("--frames", type=int, default=40, help="frames per object")
    p.add_argument("--sample-frames", type=int, default=48, help="frames of the rendered sample video")
    p.add_argument("--downscale", type=int, default=1)
    p.add_argument("--out", default=str(REPO / ".data" / "bench-queue"))
    p.add_argument("--until", help="stop each run after this stage (e.g. sfm)")
    p.add_argument("--max-runs", type=int, help="runs at once in the queue (default: GPUs + 1)")
    p.add_argument("--cpu", action="store_true", help="tiny sizes and --until sfm, for a CPU machine")
    args = p.parse_args()
    if args.cpu:
        args.iterations, args.size, args.frames, args.downscale = 1000, 240, 24, 8
        args.sample_frames, args.until = 24, args.until or "sfm"
    out = Path(args.out).absolute()
    shutil.rmtree(out, ignore_errors=True)
    (out / "inputs").mkdir(parents=True)
    root = out / "outputs"
    inputs = objects(args, out / "inputs")
    gpus, why = list_gpus()
    print(f"GPUs: {', '.join(f'{g.index}: {g.name}' for g in gpus) or why}; cores: {os.cpu_count()}")
    if gpus:
        print(f"gsplat warm-up (not timed): {warm_gsplat()}")
    print(f"objects: {', '.join(i.name for i in inputs)}; {args.frames} frames at ≤{args.size} px, "
          f"{args.iterations} 3DGS iterations (downscale {args.downscale})")

    # 1. One after another (records the VRAM peaks the queue then packs by).
    until = ["--until", args.until] if args.until else []
    t0 = time.time()
    for path in inputs:
        code = gausynth("run", "original-only", *[a for s in sets(args, args.frames) for a in ("--set", s)],
                        "--set", f"run.input={str(path)!r}", "--set", f"run.outputs_root={str(root)!r}",
                        "--set", f"run.directory='seq-{path.stem}'", *until, log=out / "sequential.log")
        print(f"  one after another: {path.stem} exit {code} at {time.time() - t0:.1f} s", flush=True)
    sequential = time.time() - t0

    # 2. The queue.
    argv = ["queue", "--root", str(root), "add", "original-only", "--name", "q", *until]
    for path in inputs:
        argv += ["--input", str(path)]
    for s in sets(args, args.frames):
        argv += ["--set", s]
    assert gausynth(*argv, log=out / "queue.log") == 0, (out / "queue.log").read_text()
    watcher = Watcher(root)
    watcher.start()
    t0 = time.time()
    start = ["--max-runs", str(args.max_runs)] if args.max_runs else []
    assert gausynth("queue", "--root", str(root), "start", *start, log=out / "queue.log") == 0
    journal = QueueJournal(root)
    while not any(e.type == "runner_stopped" for e in journal.reader().read_new()):
        time.sleep(0.2)
    queued = time.time() - t0
    watcher.stop.set()
    watcher.join()
    view = journal.read()
    events = journal.reader().read_new()

    # --- report ---------------------------------------------------------------------------------
    print(f"\nwall time: one after another {sequential:.1f} s, queued {queued:.1f} s → "
          f"ratio {sequential / queued:.2f}× (higher is better)")
    cpu_iv: dict[str, list[tuple[float, float]]] = {}
    gpu_iv: dict[str, list[tuple[float, float]]] = {}
    print("\nqueued runs (seconds from the queue's start):")
    for job in view.in_order():
        layout = RunLayout(root / job.directory)
        iv = stage_intervals(layout)
        status = RunView.from_journal(layout.journal).status
        line = "  ".join(f"{s} {a - t0:5.1f}–{b - t0:5.1f}" for s, (a, b) in iv.items())
        print(f"  {job.id} {job.directory:<16} {status:<7} {line}")
        for s, span in iv.items():
            (gpu_iv if s in GPU_STAGES else cpu_iv).setdefault(job.id, []).append(span)
    cross = sum(overlap(cpu_iv.get(a, []), gpu_iv.get(b, [])) for a in cpu_iv for b in gpu_iv if a != b)
    print(f"CPU stages of one run overlapped GPU stages of another for {cross:.1f} s")

    placed = [e for e in events if isinstance(e, StagePlaced)]
    print("\nplacements:")
    for e in placed:
        if e.stage in GPU_STAGES:
            print(f"  {e.job} {e.stage:<11} GPU {','.join(map(str, e.gpus)) or '-'}  reserved "
                  f"{e.vram / 2**30:.1f} GiB{' (whole GPU: no recorded peak)' if e.exclusive else ''}")
    for job in view.in_order():
        for stage in GPU_STAGES:
            m = RunLayout(root / job.directory).manifest(stage)
            if m.exists():
                peak = json.loads(m.read_text()).get("peak_vram")
                print(f"  {job.id} {stage} peak VRAM {peak / 2**30 if peak else 0:.2f} GiB")

    samples = [e for e in events if e.type == "gpu_sample"]
    if samples:
        print("\nper-GPU utilisation over time (queue journal samples, mean % per 10 s):")
        start = samples[0].t
        buckets: dict[int, dict[int, list[float]]] = {}
        for s in samples:
            if s.utilization is not None:
                buckets.setdefault(s.gpu, {}).setdefault(int((s.t - start) // 10), []).append(s.utilization)
        for gpu, series in sorted(buckets.items()):
            row = " ".join(f"{sum(v) / len(v):3.0f}" for _, v in sorted(series.items()))
            busy = sum(1 for s in samples if s.gpu == gpu and (s.utilization or 0) > 0)
            total = sum(1 for s in samples if s.gpu == gpu)
            print(f"  GPU {gpu}: {row}   (busy in {busy}/{total} samples)")

    jobs_by_dir = {e.directory: e.job for e in events if isinstance(e, JobAdded)}
    given = {(e.job, e.stage): set(e.uuids) for e in placed}
    wrong, checked = [], 0
    for (run, stage), facts in sorted(watcher.seen.items()):
        if stage not in GPU_STAGES or run not in jobs_by_dir:
            continue
        checked += 1
        mine = given.get((jobs_by_dir[run], stage), set())
        if facts["visible"] - {",".join(sorted(mine))} - ({""} if not mine else set()):
            wrong.append(f"{run}/{stage}: CUDA_VISIBLE_DEVICES {facts['visible']} but given {mine}")
        if facts["nvml"] - mine:
            wrong.append(f"{run}/{stage}: NVML saw it on {facts['nvml'] - mine}, given {mine}")
    nvml = "NVML per-process lists checked too" if watcher.nvml_pids else \
        "NVML listed no processes here (containers often hide them): checked by environment only"
    print(f"\nplacement check: {checked} GPU stage(s) watched; {len(wrong)} ran outside their GPU ({nvml})")
    for w in wrong:
        print(f"  ✘ {w}")
    result = {"sequential_s": sequential, "queued_s": queued, "ratio": sequential / queued,
              "overlap_s": cross, "violations": wrong, "gpus": [g.name for g in gpus]}
    (out / "result.json").write_text(json.dumps(result, indent=1))
    failed = [j.id for j in view.in_order() if j.state != "done"]
    if failed:
        print(f"\nnot done: {failed}; see {root}/<run>/.gausynth/logs/")
    if gpus and not checked and not args.until:
        print("✘ no GPU stage was seen running: the placement check proved nothing")
        return 1
    return 1 if wrong or failed else 0


if __name__ == "__main__":
    sys.exit(main())
