"""Benchmark: what a browser following the training costs the trainer, as an it/s ratio in one run.

One real training (`splatting.train.train`, the stage's loop with its live hook) of the
generated sample seen by its true cameras (no data files needed); densification off, so the
number of Gaussians, hence the speed, stays put. `gausynth view` runs in its own process for
the whole run and a browser stand-in in another (it connects like viser's web client, reports
a camera, and counts the splats it receives), so that neither the viewer's start-up nor a
client's work lands in the trainer's process. The run alternates phases of --phase seconds:

    A  alone     the viewer runs, no browser connected (the trainer takes no snapshots)
    B  viewed    the browser connected: snapshots every --every s (ours)
    C  legacy    the same, with the previous snapshot (a synchronising copy of each attribute
                 to pageable memory in the training thread, np.savez in a thread of the
                 trainer) — the baseline that cost 4.5 % on the H200 (--no-legacy drops it)

in the order A B C A B C … A. It/s is counted per phase from the trainer's own progress calls,
skipping the first --settle s (the trainer reads the watch files once a second). Each B (C)
phase is compared with the mean of the A phases on either side of it, so slow drifts (clocks,
heat) cancel; the mean of those ratios over --repeats is the result (median and min–max beside). The
A phases compared with their own neighbours the same way give the noise floor. Goal: B's
slowdown ≤ 3 %. The verdict comes from a 95 % confidence interval of the mean B/A ratio
(bootstrap over the phases, seeded): PASS when even its low end is a slowdown ≤ 3 %, FAIL when
even its high end is worse, inconclusive when the interval straddles the goal.

    python bench/viewer.py                      # H200: 300k Gaussians at 512², 4 × (A B C) + A of 7 s
    python bench/viewer.py --cpu --tiny         # a functional check on a CPU machine (~1 min)
    python bench/viewer.py --score viewer.log   # the verdict again from a run's printed JSON
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

from gausynth_engine.viewer import live  # noqa: E402

GOAL = 0.03


# --- the browser stand-in (its own process) ---------------------------------------------------
def client_main(port: int) -> None:
    """Reads "on" / "off" / "quit" lines; while on, stays connected like a browser and prints
    `splat <monotonic time>` for every splat it receives."""
    import msgspec
    import viser
    import zstandard
    from viser._messages import ViewerCameraMessage
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    camera = msgspec.msgpack.encode(ViewerCameraMessage(
        wxyz=(1.0, 0.0, 0.0, 0.0), position=(0.0, 0.0, -3.0), fov=1.0, near=0.01, far=100.0,
        image_height=720, image_width=1280, look_at=(0.0, 0.0, 0.0),
        up_direction=(0.0, -1.0, 0.0)).as_serializable_dict())
    unzip = zstandard.ZstdDecompressor()
    on = threading.Event()
    quit_ = threading.Event()

    def receive() -> None:
        while not quit_.is_set():
            if not on.wait(0.2):
                continue
            with connect(f"ws://127.0.0.1:{port}", subprotocols=[f"viser-v{viser.__version__}"],
                         open_timeout=60, max_size=None) as ws:
                ws.send(camera)  # viser counts a client once it reports its camera
                print("connected", flush=True)
                while on.is_set():
                    try:
                        raw = ws.recv(timeout=0.2)
                    except TimeoutError:
                        continue
                    except ConnectionClosed:
                        break
                    size, packed = int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:16], "little")
                    inner = msgspec.msgpack.decode(unzip.decompress(raw[16:16 + packed], max_output_size=size))
                    for m in inner["messages"]:
                        if m.get("type") == "GaussianSplatsMessage":
                            print(f"splat {time.monotonic():.4f}", flush=True)
            print("disconnected", flush=True)

    worker = threading.Thread(target=receive, daemon=True)
    worker.start()
    for line in sys.stdin:
        word = line.strip()
        if word == "on":
            on.set()
        elif word == "off":
            on.clear()
        elif word == "quit":
            break
    quit_.set()
    on.clear()
    worker.join(timeout=10)


class Browser:
    """The trainer's handle on the browser stand-in process."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--client", str(port)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.received: list[float] = []
        self.state = threading.Condition()
        self.connected = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            word, *rest = line.split()
            with self.state:
                if word == "splat":
                    self.received.append(float(rest[0]))
                else:
                    self.connected = word == "connected"
                    self.state.notify_all()

    def switch(self, on: bool, timeout: float = 60.0) -> None:
        self.proc.stdin.write("on\n" if on else "off\n")
        self.proc.stdin.flush()
        with self.state:
            if not self.state.wait_for(lambda: self.connected == on, timeout):
                raise RuntimeError(f"the browser stand-in did not {'connect' if on else 'leave'}")

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


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


# --- the trainer's side --------------------------------------------------------------------------
class Done(Exception):
    """Raised from the progress callback once every phase is measured."""


class Clock:
    """The trainer's reporter: records (time, step) of every step; stops the training at the end."""

    def __init__(self) -> None:
        self.ticks: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def progress(self, value: float, total: float, unit: str = "") -> None:
        self.ticks.append((time.monotonic(), value))
        if self.stop.is_set():
            raise Done

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        pass

    def log(self, message: str, level: str = "info") -> None:
        pass


class BenchHook(live.LiveHook):
    """The stage's hook, with the previous snapshot as a switchable baseline ("legacy")."""

    mode = "ours"
    made: list[BenchHook] = []

    def __init__(self, meta: Path | None, variant: str) -> None:
        super().__init__(meta, variant)
        self.cost = {"ours": [0.0, 0], "legacy": [0.0, 0]}  # training-thread seconds, snapshots
        BenchHook.made.append(self)

    def tick(self, trainer) -> None:
        if self.meta is None:
            return
        mode = BenchHook.mode
        before, t0 = self.serial, time.perf_counter()
        if mode == "ours":
            super().tick(trainer)
        else:
            self._legacy_tick(trainer)
        if self.serial != before:
            self.cost[mode][0] += time.perf_counter() - t0
            self.cost[mode][1] += 1

    def _legacy_tick(self, trainer) -> None:
        now = time.monotonic()
        if not self._due(now):
            return
        serial = self._begin(now)
        # What the hook did before: each attribute copied off the GPU in the loop (synchronising).
        arrays = {k: trainer.params[k].detach().to("cpu", copy=True).numpy() for k in live.KEYS}
        threading.Thread(target=self._legacy_write, args=(arrays, int(trainer.step_done), serial),
                         daemon=True).start()

    def _legacy_write(self, arrays: dict[str, np.ndarray], step: int, serial: int) -> None:
        try:
            path = live.snapshot_path(self.meta, self.variant)
            np.savez(path.with_name(f".{path.stem}.legacy.npz"), step=np.int64(step), **arrays)
            n = len(arrays["means"])
            live.write_snapshot(path, np.concatenate([a.reshape(n, -1) for a in arrays.values()], 1),
                                step, serial)
        finally:
            self._idle.set()


def its(ticks: np.ndarray, start: float, end: float) -> float:
    sel = ticks[(ticks[:, 0] >= start) & (ticks[:, 0] <= end)]
    return (sel[-1, 1] - sel[0, 1]) / (sel[-1, 0] - sel[0, 0]) if len(sel) > 1 else float("nan")


def compare(rows: list[dict], kind: str) -> list[float]:
    """Gives, per phase of `kind`, its it/s over the mean of the nearest A phases before and after."""
    out = []
    alone = [i for i, r in enumerate(rows) if r["phase"] == "A"]
    for i, r in enumerate(rows):
        if r["phase"] != kind:
            continue
        before = [j for j in alone if j < i]
        after = [j for j in alone if j > i]
        if before and after:
            out.append(r["its"] / np.mean([rows[before[-1]]["its"], rows[after[0]]["its"]]))
    return out


def summary(ratios: list[float]) -> dict:
    if not ratios:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {"median": float(np.median(ratios)), "min": float(np.min(ratios)),
            "max": float(np.max(ratios)), "n": len(ratios)}


def interval(ratios: list[float], resamples: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean ratio and its 95 % bootstrap interval (percentiles 2.5, 97.5)."""
    r = np.asarray(ratios, dtype=float)
    if len(r) < 2:
        return (float(r.mean()) if len(r) else float("nan"), float("nan"), float("nan"))
    means = np.random.default_rng(seed).choice(r, size=(resamples, len(r))).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(r.mean()), float(low), float(high)


def verdict(ratios: list[float]) -> str:
    """PASS / FAIL / inconclusive for viewed/alone ratios against GOAL (see the docstring)."""
    _, low, high = interval(ratios)
    if not np.isfinite(low):
        return "inconclusive (fewer than 2 viewed phases)"
    if 1 - low <= GOAL:
        return "PASS"
    if 1 - high > GOAL:
        return "FAIL"
    return f"inconclusive (the 95 % interval {low:.3f}–{high:.3f} straddles {1 - GOAL:.2f})"


def report(result: dict, kinds: list[str]) -> None:
    """Prints the ratios and the verdict of a measured (or saved) result, and adds them to it."""
    rows, names = result["phases"], {"B": "viewed", "C": "legacy"}
    noise = result["noise"] = summary(compare(rows, "A"))
    print(f"noise floor (A against its A neighbours): median {noise['median']:.3f}, "
          f"{noise['min']:.3f}–{noise['max']:.3f}")
    for kind in kinds:
        ratios = compare(rows, kind)
        s = result[names[kind]] = {**result.get(names[kind], {}), **summary(ratios)}
        s["mean"], s["low"], s["high"] = interval(ratios)
        print(f"{names[kind]:<7} / alone: median {s['median']:.3f} (slowdown {100 * (1 - s['median']):.1f} %), "
              f"mean {s['mean']:.3f}, 95 % interval {s['low']:.3f}–{s['high']:.3f}, over {s['n']} phases "
              f"{s['min']:.3f}–{s['max']:.3f}; the training thread spent "
              f"{s.get('thread_ms_per_snapshot', float('nan')):.2f} ms per snapshot")
    ours = result["viewed"]
    result["verdict"] = verdict(compare(rows, "B"))
    print(f"viewer cost: {100 * (1 - ours['mean']):.1f} % (goal ≤ {100 * GOAL:.0f} %, at most "
          f"{100 * (1 - ours['low']):.1f} % at 95 %): {result['verdict']}; snapshot "
          f"{result.get('snapshot_bytes', 0) / 2**20:.1f} MiB every ≥ {result['every_s']:g} s")


def score(path: Path) -> None:
    """The verdict again from a finished run's output (its printed log, or a file holding only
    that one-line JSON): the last line that starts with "{"."""
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.startswith("{")]
    if not lines:
        raise SystemExit(f"{path}: no JSON result line (the bench prints one at its end)")
    result = json.loads(lines[-1])
    kinds = [k for k, name in (("B", "viewed"), ("C", "legacy")) if any(r["phase"] == k for r in result["phases"])]
    print(f"{path}: {result['gaussians']:,} Gaussians at {result['size']}² on {result['device']}, "
          f"phases of {result['phase_s']:g} s")
    report(result, kinds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--client", type=int, help=argparse.SUPPRESS)  # the browser stand-in's process
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--views", type=int, default=48)
    ap.add_argument("--points", type=int, default=300_000, help="Gaussians (the scene's surface points)")
    ap.add_argument("--phase", type=float, default=7.0, help="seconds per phase")
    ap.add_argument("--settle", type=float, default=1.5, help="seconds skipped at each phase's start")
    ap.add_argument("--repeats", type=int, default=4, help="rounds of (B, C) phases, each between As")
    ap.add_argument("--every", type=float, default=2.0, help="viewer refresh = snapshot interval, s")
    ap.add_argument("--no-legacy", action="store_true", help="leave out the previous snapshot (C)")
    ap.add_argument("--cpu", action="store_true")
    ap.add_argument("--tiny", action="store_true", help="24², 500 Gaussians, 2 rounds of 4 s phases")
    ap.add_argument("--score", type=Path, metavar="LOG", help="only the verdict again, from a run's output")
    args = ap.parse_args()
    if args.score:
        score(args.score)
        return
    if args.client is not None:
        client_main(args.client)
        return
    if args.tiny:
        args.size, args.views, args.points, args.phase, args.repeats = 24, 8, 500, 4.0, 2
    from gausynth_engine.splatting.dataset import load_scene
    from gausynth_engine.splatting.train import TrainConfig, train

    device = "cpu" if args.cpu or not torch.cuda.is_available() else "cuda"
    if device == "cpu":
        torch.set_num_threads(1)  # tiny tensors: one thread beats two on a shared machine
    kinds = ["B"] if args.no_legacy else ["B", "C"]
    order = [*[k for _ in range(args.repeats) for k in ["A", *kinds]], "A"]
    tmp = Path(tempfile.mkdtemp(prefix="bench-viewer-"))
    t0 = time.perf_counter()
    sparse, images = make_true_scene(tmp / "scene", views=args.views, width=args.size, height=args.size,
                                     points=args.points, workers=min(8, os.cpu_count() or 1))
    scene = load_scene(sparse, images)
    print(f"scene: {len(scene.names)} views at {args.size}², {len(scene.points)} Gaussians, {device} "
          f"({time.perf_counter() - t0:.0f} s to build); phases {' '.join(order)} of {args.phase:g} s",
          flush=True)
    run = tmp / "run"
    (run / ".gausynth").mkdir(parents=True)  # a run folder the viewer can open
    config = TrainConfig(iterations=10_000_000, eval_at=(10_000_000,), test_every=8,
                         refine_start=10_000_000, checkpoint_every=10_000_000, report_every=5.0)
    clock = Clock()
    phases: list[tuple[str, float, float]] = []  # (kind, start, end)
    errors: list[BaseException] = []
    handles: dict[str, object] = {}

    def conduct() -> None:
        try:
            viewer, port = start_viewer(run, args.every)  # while the first steps (and gsplat's JIT) run
            handles["viewer"] = viewer
            browser = handles["browser"] = Browser(port)
            while len(clock.ticks) < 20:  # the first steps are not timed
                time.sleep(0.2)
            time.sleep(2.0)
            for kind in order:
                BenchHook.mode = "legacy" if kind == "C" else "ours"
                browser.switch(kind != "A")
                start = time.monotonic()
                time.sleep(args.phase)
                phases.append((kind, start, time.monotonic()))
        except BaseException as e:  # noqa: BLE001 - reported after the training stops
            errors.append(e)
        finally:
            clock.stop.set()

    live_hook = live.LiveHook
    live.LiveHook = BenchHook  # the training loop makes its hook from this module
    threading.Thread(target=conduct, daemon=True).start()
    try:
        train(scene, config, run / "out", run / ".gausynth" / "checkpoints" / "orig", clock, device)
    except Done:
        pass
    finally:
        live.LiveHook = live_hook
        if "browser" in handles:
            handles["browser"].close()
        if "viewer" in handles:
            handles["viewer"].terminate()
            handles["viewer"].wait(timeout=30)
    if errors:
        raise errors[0]
    ticks = np.array(clock.ticks)
    received = handles["browser"].received
    rows = []
    names = {"A": "alone", "B": "viewed", "C": "legacy"}
    for kind, start, end in phases:
        got = sum(start <= t <= end for t in received)
        rows.append({"phase": kind, "its": its(ticks, start + args.settle, end), "splats": got})
        print(f"  {kind} {names[kind]:<7} {rows[-1]['its']:9.1f} it/s"
              + (f"   {got} splats reached the browser" if kind != "A" else ""))
    hook = BenchHook.made[-1] if BenchHook.made else None
    result = {"device": device, "gaussians": len(scene.points), "size": args.size, "every_s": args.every,
              "phase_s": args.phase, "phases": rows}
    for kind in kinds:
        seconds, count = hook.cost["ours" if kind == "B" else "legacy"] if hook else (0.0, 0)
        result[names[kind]] = {"thread_ms_per_snapshot": 1000 * seconds / count if count else float("nan"),
                               "snapshots": count}
    snapshot = live.snapshot_path(run / ".gausynth", "orig")
    result["snapshot_bytes"] = snapshot.stat().st_size if snapshot.exists() else 0
    report(result, kinds)
    print(f"{len(received)} splats received in all")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
