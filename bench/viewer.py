"""Benchmark: what the live browser viewer costs a training, as an it/s ratio in one run.

One real training (`splatting.train.train`, the stage's loop with its live hook) of the
generated sample seen by its true cameras (no data files needed); densification off so the
number of Gaussians, hence the speed, stays put. The run alternates phases of --phase seconds:
"alone" (nobody watches: the hook only reads the clock) and "viewed" (`gausynth view` running
in its own process, asking for snapshots every --every s, with a WebSocket client connected
like a browser, receiving every refresh). It/s is counted per phase from the trainer's own
progress calls (the first second of each phase skipped), and the ratio viewed / alone of the
phase means is printed, with the snapshots that reached the client. Goal: ratio ≥ 0.97.

    python bench/viewer.py                      # H200: ~300k Gaussians at 512², 6 × 12 s phases
    python bench/viewer.py --cpu --tiny         # a functional check on a CPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/: synthetic_scene

from synthetic_scene import make_true_scene  # noqa: E402

from gausynth_engine.splatting.dataset import load_scene  # noqa: E402
from gausynth_engine.splatting.train import TrainConfig, train  # noqa: E402


class Done(Exception):
    """Raised from the progress callback once every phase is measured."""


class Clock:
    """The trainer's reporter: records (time, step) of every step; stops the training at the end."""

    def __init__(self) -> None:
        self.ticks: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def progress(self, value: float, total: float, unit: str = "") -> None:
        self.ticks.append((time.perf_counter(), value))
        if self.stop.is_set():
            raise Done

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        pass

    def log(self, message: str, level: str = "info") -> None:
        pass


def follow(port: int, received: list[float], stop: threading.Event) -> None:
    """A browser stand-in: connects to the viewer and counts the splat refreshes it receives."""
    import viser
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{port}", subprotocols=[f"viser-v{viser.__version__}"],
                 open_timeout=60, max_size=None) as ws:
        while not stop.is_set():
            try:
                raw = ws.recv(timeout=0.5)
            except TimeoutError:
                continue
            except ConnectionClosed:  # the viewer stopped at the end of its phase
                return
            if b"GaussianSplatsMessage" in _inner(raw):
                received.append(time.perf_counter())


def _inner(raw: bytes) -> bytes:
    import zstandard

    size, packed = int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:16], "little")
    return zstandard.ZstdDecompressor().decompress(raw[16:16 + packed], max_output_size=size)


def start_viewer(run: Path, every: float) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "gausynth_engine", "view", str(run), "--port", "0",
                             "--every", str(every)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    for line in proc.stdout:
        m = re.search(r"on http://localhost:(\d+)", line)
        if m:
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its pipe drained
            return proc, int(m.group(1))
    raise RuntimeError(f"the viewer exited ({proc.wait()}) before serving")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--views", type=int, default=48)
    ap.add_argument("--points", type=int, default=300_000, help="Gaussians (the scene's surface points)")
    ap.add_argument("--phase", type=float, default=12.0, help="seconds per phase")
    ap.add_argument("--phases", type=int, default=6, help="alternating alone/viewed phases")
    ap.add_argument("--every", type=float, default=2.0, help="viewer refresh = snapshot interval, s")
    ap.add_argument("--cpu", action="store_true")
    ap.add_argument("--tiny", action="store_true", help="24², 500 Gaussians, 4 × 8 s phases")
    args = ap.parse_args()
    if args.tiny:
        args.size, args.views, args.points, args.phase, args.phases = 24, 8, 500, 8.0, 4
    device = "cpu" if args.cpu or not torch.cuda.is_available() else "cuda"
    if device == "cpu":
        torch.set_num_threads(1)  # tiny tensors: one thread beats two on a shared machine
    tmp = Path(tempfile.mkdtemp(prefix="bench-viewer-"))
    t0 = time.perf_counter()
    sparse, images = make_true_scene(tmp / "scene", views=args.views, width=args.size, height=args.size,
                                     points=args.points, workers=min(8, os.cpu_count() or 1))
    scene = load_scene(sparse, images)
    print(f"scene: {len(scene.names)} views at {args.size}², {len(scene.points)} Gaussians, "
          f"{device} ({time.perf_counter() - t0:.0f} s to build)")
    run = tmp / "run"
    (run / ".gausynth").mkdir(parents=True)  # a run folder the viewer can open
    config = TrainConfig(iterations=10_000_000, eval_at=(10_000_000,), test_every=8,
                         refine_start=10_000_000, checkpoint_every=10_000_000, report_every=5.0)
    clock = Clock()
    phases: list[tuple[str, float, float]] = []  # (kind, start, end)
    received: list[float] = []
    errors: list[BaseException] = []

    def conduct() -> None:
        try:
            while len(clock.ticks) < 20:  # the first steps (and gsplat's JIT build) are not timed
                time.sleep(0.2)
            time.sleep(2.0)
            for i in range(args.phases):
                kind = "alone" if i % 2 == 0 else "viewed"
                proc = stop = None
                if kind == "viewed":
                    proc, port = start_viewer(run, args.every)
                    stop = threading.Event()
                    threading.Thread(target=follow, args=(port, received, stop), daemon=True).start()
                start = time.perf_counter()
                time.sleep(args.phase)
                phases.append((kind, start, time.perf_counter()))
                if proc is not None:
                    stop.set()
                    proc.terminate()
                    proc.wait(timeout=30)
        except BaseException as e:  # noqa: BLE001 - reported after the training stops
            errors.append(e)
        finally:
            clock.stop.set()

    threading.Thread(target=conduct, daemon=True).start()
    try:
        train(scene, config, run / "out", run / ".gausynth" / "checkpoints" / "orig", clock, device)
    except Done:
        pass
    if errors:
        raise errors[0]
    ticks = np.array(clock.ticks)
    rows = []
    for kind, start, end in phases:
        sel = ticks[(ticks[:, 0] >= start + 1.0) & (ticks[:, 0] <= end)]
        its = (sel[-1, 1] - sel[0, 1]) / (sel[-1, 0] - sel[0, 0]) if len(sel) > 1 else float("nan")
        got = sum(start <= t <= end for t in received)
        rows.append({"phase": kind, "its": its, "refreshes": got})
        print(f"  {kind:<7} {its:9.1f} it/s" + (f"   {got} snapshots reached the client" if kind == "viewed" else ""))
    alone = np.mean([r["its"] for r in rows if r["phase"] == "alone"])
    viewed = np.mean([r["its"] for r in rows if r["phase"] == "viewed"])
    ratio = viewed / alone
    snapshot = run / ".gausynth" / "live" / "orig.npz"
    size = snapshot.stat().st_size if snapshot.exists() else 0
    print(f"alone {alone:.1f} it/s, viewed {viewed:.1f} it/s: ratio {ratio:.3f} "
          f"(slowdown {100 * (1 - ratio):.1f} %, goal ≤ 3 %); snapshot {size / 2**20:.1f} MiB every "
          f"{args.every:g} s; {len(received)} refreshes received in all")
    print(json.dumps({"device": device, "gaussians": len(scene.points), "size": args.size,
                      "alone_its": alone, "viewed_its": viewed, "ratio": ratio, "phases": rows,
                      "snapshot_bytes": size, "every_s": args.every}))


if __name__ == "__main__":
    main()
