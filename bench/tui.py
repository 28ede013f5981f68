"""Replays a recorded training journal into the app, headless, at a fixed event rate.

Reports, for the run board and the training monitor: events per second absorbed (and whether the
app fell behind), frames rendered per second, and CPU seconds per second of monitoring. Baselines
measured in the same run: the same app watching a journal that does not change (idle cost), and
the cost per poll of re-reading the whole journal (a viewer without incremental tailing).

    python bench/tui.py [--rate 5000] [--seconds 6] [--size 120x40]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gausynth_engine._events import Event, RunStarted, StagePlanned, StageStarted  # noqa: E402
from gausynth_engine._journal import RunView  # noqa: E402
from gausynth_engine._layout import RunLayout  # noqa: E402
from gausynth_engine.stages import STAGES  # noqa: E402
from gausynth_tui.app import make_app  # noqa: E402
from tests.tui.journals import Clock, training  # noqa: E402


def recorded_training(n_events: int) -> tuple[list[Event], list[Event]]:
    """Gives (head, body): a run's start, then ~n_events of a splat training (step by step)."""
    clock = Clock(time.time())
    head: list[Event] = [RunStarted(pid=1, preset="bench", command="run", t=clock.t)]
    head += [StagePlanned(stage=s.id, action="run", reason="not run yet", t=clock.t) for s in STAGES]
    head.append(StageStarted(stage="splat_orig", pid=2, fingerprint="b" * 20, log="splat_orig.log", t=clock.t))
    steps = n_events // 6 + 1
    body = training(clock, "splat_orig", steps, max(steps, 30000), every=1)[:n_events]
    return head, body


def writer(path: Path, events: list[Event], rate: float, done: threading.Event, stats: dict) -> None:
    """Appends `events` to the journal at `rate` per second, in 10 ms batches (like a busy run)."""
    t0 = time.perf_counter()
    cpu0 = time.thread_time()
    written = 0
    with open(path, "a", encoding="utf-8") as f:
        while written < len(events):
            due = min(len(events), int((time.perf_counter() - t0) * rate) + 1)
            if due > written:
                f.write("".join(e.to_json() + "\n" for e in events[written:due]))
                f.flush()
                written = due
            time.sleep(0.01)
    stats["write_seconds"] = time.perf_counter() - t0
    stats["writer_cpu"] = time.thread_time() - cpu0
    done.set()


async def measure(screen_key: str | None, rate: float, n_events: int, size: tuple[int, int],
                  idle: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        layout = RunLayout(Path(tmp) / "runs" / "bench")
        layout.meta.mkdir(parents=True)
        head, body = recorded_training(n_events)
        layout.journal.write_text("".join(e.to_json() + "\n" for e in head), encoding="utf-8")
        app = make_app(Path(tmp) / "runs", attach=layout.root, alive=lambda pid: True)
        frames = 0
        original = app._display

        def counting(screen, renderable):
            nonlocal frames
            if renderable is not None:
                frames += 1
            return original(screen, renderable)

        app._display = counting  # type: ignore[method-assign]
        async with app.run_test(size=size) as pilot:
            await pilot.pause(0.5)
            if screen_key:
                await pilot.press(screen_key)
                await pilot.pause(0.5)
            entry = app.store.runs[str(layout.root)]
            done, stats = threading.Event(), {}
            frames = 0
            cpu0, t0 = time.process_time(), time.perf_counter()
            if idle:
                await asyncio.sleep(n_events / rate)
                stats = {"write_seconds": n_events / rate, "writer_cpu": 0.0}
                caught_up_at = time.perf_counter()
                behind = 0
            else:
                thread = threading.Thread(target=writer, args=(layout.journal, body, rate, done, stats))
                thread.start()
                max_behind = 0
                while not done.is_set():
                    await asyncio.sleep(0.05)
                    written = int((time.perf_counter() - t0) * rate)
                    max_behind = max(max_behind, min(written, len(body)) - (entry.view.events - len(head)))
                thread.join()
                end_of_writing = time.perf_counter()
                while entry.view.events < len(head) + len(body) and time.perf_counter() - end_of_writing < 30:
                    await asyncio.sleep(0.01)
                caught_up_at = time.perf_counter()
                behind = caught_up_at - end_of_writing
            elapsed = caught_up_at - t0
            cpu = time.process_time() - cpu0 - stats["writer_cpu"]
            absorbed = entry.view.events - len(head)
        return {"screen": screen_key or "board", "idle": idle, "events": absorbed, "seconds": elapsed,
                "events_per_s": absorbed / elapsed if not idle else 0.0, "frames_per_s": frames / elapsed,
                "cpu_per_s": cpu / elapsed, "catch_up_s": behind,
                "max_behind_events": 0 if idle else max_behind}


def full_reread_cost(n_events: int) -> tuple[float, float]:
    """Gives (seconds to rebuild a RunView from the whole journal, seconds to read only 1/4 s of new events)."""
    from gausynth_engine._journal import JournalReader

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        head, body = recorded_training(n_events)
        path.write_text("".join(e.to_json() + "\n" for e in head + body), encoding="utf-8")
        t = time.perf_counter()
        RunView.from_journal(path)
        full = time.perf_counter() - t
        reader = JournalReader(path)
        reader.read_new()
        with open(path, "a", encoding="utf-8") as f:
            f.write("".join(e.to_json() + "\n" for e in body[:1250]))
        view = RunView()
        t = time.perf_counter()
        for e in reader.read_new():
            view.apply(e)
        incremental = time.perf_counter() - t
        return full, incremental


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5000.0, help="events per second written")
    parser.add_argument("--seconds", type=float, default=6.0, help="how long the replay lasts")
    parser.add_argument("--size", default="120x40")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    n = int(args.rate * args.seconds)
    rows = [asyncio.run(measure(None, args.rate, n, size, idle=True)),
            asyncio.run(measure(None, args.rate, n, size)),
            asyncio.run(measure("t", args.rate, n, size))]
    full, incremental = full_reread_cost(n)
    print(f"replay of {n} events at {args.rate:g} events/s, terminal {args.size}, headless")
    print(f"{'screen':<8} {'mode':<7} {'absorbed/s':>10} {'behind max':>10} {'catch-up':>9} {'frames/s':>9} {'CPU s/s':>8}")
    for r in rows:
        mode = "idle" if r["idle"] else "replay"
        print(f"{r['screen']:<8} {mode:<7} {r['events_per_s']:>10.0f} {r['max_behind_events']:>10d} "
              f"{r['catch_up_s']:>8.2f}s {r['frames_per_s']:>9.1f} {r['cpu_per_s']:>8.3f}")
    print(f"per poll at {n} events: full re-read {full * 1000:.0f} ms (baseline) vs incremental "
          f"{incremental * 1000:.1f} ms for 1/4 s of new events (ours)")


if __name__ == "__main__":
    main()
