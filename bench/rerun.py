"""Time to plan an unchanged 1,000-frame run, and the whole `gausynth run` that decides it.

Prints ours against a baseline measured in the same run: the baseline re-hashes the input video
(what a planner without the hash cache would do) before planning.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gausynth_engine import Orchestrator, RunLayout, make_plan, parse_preset
from gausynth_engine._media import write_video
from gausynth_engine._plan import input_fingerprint


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="gausynth-rerun-"))
    os.chdir(work)
    # A 1,000-frame 640×360 clip of noise: large on disk (as real footage is), quick to make.
    rng = np.random.default_rng(0)
    video = work / "clip.mp4"
    write_video(video, (rng.integers(0, 256, (360, 640, 3), dtype=np.uint8) for _ in range(1000)), 30)
    sets = [f"run.input={video}", "run.directory=rerun", "preprocess.num_frames=1000",
            "preprocess.sd_size=64", "preprocess.colmap_size=64", "sheet.grid=4"]
    preset = parse_preset("", overrides=sets)
    layout = RunLayout.for_run(work / "demo_outputs_dir", "rerun")
    t = time.perf_counter()
    Orchestrator(preset, layout).run(make_plan(preset, layout, until="sheet"))
    first = time.perf_counter() - t

    def timed(fn, n: int = 20) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return sorted(times)[n // 2]

    plan_s = timed(lambda: make_plan(preset, layout, until="sheet"))
    baseline_s = timed(lambda: (input_fingerprint(video), make_plan(preset, layout, until="sheet")))
    cli = [sys.executable, "-m", "gausynth_engine", "run", "default", "--until", "sheet"]
    cli += [a for s in sets for a in ("--set", s)]
    cli_s = timed(lambda: subprocess.run(cli, check=True, capture_output=True), n=5)
    print(f"input: {video.stat().st_size / 2**20:.0f} MiB, 1,000 frames")
    print(f"first run of preprocess+sheet on 1,000 frames: {first:.1f} s")
    print(f"plan an unchanged 1,000-frame run (median):   {plan_s * 1000:.1f} ms")
    print(f"baseline, re-hashing the input every time:    {baseline_s * 1000:.1f} ms")
    print(f"ratio baseline / ours:                        {baseline_s / plan_s:.1f}×")
    print(f"whole `gausynth run` process, nothing to do:  {cli_s * 1000:.0f} ms (no worker started)")


if __name__ == "__main__":
    main()
