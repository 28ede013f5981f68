"""Recorded journals for the app's tests and bench, generated deterministically (fixed clock).

Three runs as the engine would leave them: one finished, one training right now, one failed in
SfM. Timestamps start at T0; no randomness, so screens drawn from them are the same every time.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

from gausynth_engine._events import (
    Artifact,
    Event,
    Log,
    Metric,
    Progress,
    RunFinished,
    RunStarted,
    StageDone,
    StageFailed,
    StagePlanned,
    StageStarted,
    Telemetry,
)
from gausynth_engine._layout import RunLayout
from gausynth_engine._preset import parse_preset
from gausynth_engine.stages import STAGES

T0 = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC
NOW = T0 + 600.0  # the clock the snapshot apps read
GIB = 1 << 30
ORIG_ONLY = ("sheet", "reimagine", "propagate", "blend", "upscale", "transfer", "splat_reim")


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def tick(self, dt: float) -> float:
        self.t += dt
        return self.t


def write_journal(layout: RunLayout, events: list[Event]) -> None:
    layout.meta.mkdir(parents=True, exist_ok=True)
    with open(layout.journal, "w", encoding="utf-8") as f:
        for e in events:
            f.write(e.to_json() + "\n")


def write_snapshot(layout: RunLayout, overrides: list[str]) -> None:
    preset = parse_preset("", "test", overrides)
    layout.meta.mkdir(parents=True, exist_ok=True)
    layout.preset_snapshot.write_text(preset.to_toml(), encoding="utf-8")


def write_manifests(layout: RunLayout, done: tuple[str, ...]) -> None:
    """Leaves the manifests the engine would have left for `done` stages (so plans say "unchanged")."""
    from gausynth_engine._manifest import write_json_atomic
    from gausynth_engine._plan import make_plan
    from gausynth_engine._preset import load_preset
    from gausynth_engine.cli import resolve_paths

    preset = resolve_paths(load_preset(layout.preset_snapshot))
    for step in make_plan(preset, layout).steps:
        if step.stage.id in done:
            write_json_atomic(layout.manifest(step.stage.id), {
                "stage": step.stage.id, "version": step.stage.version, "fingerprint": step.fingerprint,
                "params": step.params, "inputs": step.inputs, "outputs": [], "record": {}})


def sheet_png(path: Path, size: int = 96) -> None:
    """A 2×2 model sheet of coloured discs on white: a stand-in picture, the same every time."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size]
    img = np.full((size, size, 3), 255, np.uint8)
    half = size // 2
    colours = [(200, 60, 40), (40, 140, 200), (60, 170, 80), (220, 180, 40)]
    for k, c in enumerate(colours):
        cy, cx = half * (k // 2) + half // 2, half * (k % 2) + half // 2
        disc = (y - cy) ** 2 + (x - cx) ** 2 < (half * 0.35 + 3 * k) ** 2
        img[disc] = c
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def _plan(clock: Clock, actions: dict[str, tuple[str, str]]) -> list[Event]:
    from gausynth_engine._preset import Preset

    # Stages the default (2D) route leaves out are planned "off" unless a run says otherwise.
    default = {s.id: ("off", off) for s in STAGES if (off := s.off_reason(Preset()))}
    return [StagePlanned(stage=s.id, action=actions.get(s.id, default.get(s.id, ("run", "not run yet")))[0],
                         reason=actions.get(s.id, default.get(s.id, ("run", "not run yet")))[1],
                         t=clock.tick(0.001))
            for s in STAGES]


def _stage(clock: Clock, layout: RunLayout, sid: str, n: int, unit: str, seconds: float,
           logs: tuple[str, ...] = ()) -> list[Event]:
    out: list[Event] = [StageStarted(stage=sid, pid=4_000_001, fingerprint="0" * 20,
                                     log=str(layout.log_file(sid)), t=clock.tick(0.01))]
    for m in logs:
        out.append(Log(stage=sid, message=m, t=clock.tick(0.05)))
    for k in range(1, n + 1):
        out.append(Progress(stage=sid, value=k, total=n, unit=unit, t=clock.tick(seconds / n)))
    out.append(StageDone(stage=sid, seconds=seconds, peak_rss=300 << 20, t=clock.tick(0.01)))
    return out


def training(clock: Clock, sid: str, steps: int, total: int, every: int = 50,
             telemetry: bool = True) -> list[Event]:
    """Gives the events of a splat training up to `steps` of `total` (loss, PSNR, evals, VRAM)."""
    out: list[Event] = []
    for step in range(every, steps + 1, every):
        t = clock.tick(every / 40.0)  # 40 it/s
        loss = 0.02 + 0.25 * math.exp(-step / 900.0) + 0.004 * math.sin(step / 37.0)
        psnr = 31.0 - 14.0 * math.exp(-step / 1100.0) + 0.3 * math.sin(step / 53.0)
        out += [Progress(stage=sid, value=step, total=total, unit="it", t=t),
                Metric(stage=sid, name="loss", value=round(loss, 5), step=step, t=t),
                Metric(stage=sid, name="psnr", value=round(psnr, 3), step=step, t=t),
                Metric(stage=sid, name="num_gaussians", value=float(20_000 + 95 * step), step=step, t=t),
                Metric(stage=sid, name="its_per_s", value=40.0, step=step, t=t)]
        if telemetry:
            out.append(Telemetry(device="NVIDIA H200", vram_used=int((9 + 6 * step / total) * GIB),
                                 vram_total=141 * GIB, utilization=87.0, t=t))
        if step % 1000 == 0:
            out += [Metric(stage=sid, name="eval_psnr", value=round(psnr - 1.2, 3), step=step, t=t),
                    Metric(stage=sid, name="eval_ssim", value=round(0.80 + step / 40_000, 4), step=step, t=t),
                    Log(stage=sid, message=f"checkpoint saved at step {step}", t=t)]
    return out


def done_run(root: Path) -> RunLayout:
    """chair-quick: the whole reimagine pipeline, finished (a sheet image among its artifacts)."""
    layout = RunLayout(root / "chair-quick")
    clock = Clock(T0)
    write_snapshot(layout, ["run.input=clips/chair.mp4", "run.directory=chair-quick",
                            "run.outputs_root=runs"])
    sheet_png(layout.orig_sheets / "sheet.png")
    events: list[Event] = [RunStarted(pid=4_000_000, preset="presets/quick.toml", command="run quick",
                                      t=clock.t)]
    events += _plan(clock, {"splat_orig": ("skip", "unchanged")})
    events += _stage(clock, layout, "preprocess", 24, "frames", 2.5, ("video 640×480, 96 frames at 30 fps; sampling 24",))
    events += _stage(clock, layout, "sheet", 4, "tiles", 0.8, ("key frames 0, 6, 12, 18",))
    events.append(Artifact(stage="sheet", kind="image", path=str(layout.orig_sheets / "sheet.png"), t=clock.tick(0.01)))
    events += _stage(clock, layout, "reimagine", 30, "steps", 41.0, ("seed 1234",))
    for sid in ("propagate", "blend", "upscale", "sfm"):
        events += _stage(clock, layout, sid, 24, "frames", 12.0)
    events += _stage(clock, layout, "splat_reim", 2000, "it", 50.0)
    events.append(RunFinished(status="done", seconds=round(clock.tick(0.1) - T0, 3), t=clock.t))
    write_journal(layout, events)
    write_manifests(layout, tuple(s.id for s in STAGES if s.id != "splat_orig"))
    return layout


def running_run(root: Path, steps: int = 4200) -> RunLayout:
    """plush-dog: the original pipeline, training splat_orig right now (step `steps` of 10000)."""
    layout = RunLayout(root / "plush-dog")
    clock = Clock(T0 + 200)
    write_snapshot(layout, ["run.input=clips/plush-dog.mp4", "run.directory=plush-dog",
                            "run.outputs_root=runs", "run.pipeline=original", "mask.method=off"])
    events: list[Event] = [RunStarted(pid=4_000_100, preset="presets/original-only.toml",
                                      command="run original-only", t=clock.t)]
    events += _plan(clock, {**{s: ("off", "run.pipeline = 'original' (no diffusion)") for s in ORIG_ONLY},
                            "mask": ("off", "mask.method = 'off'"),
                            "preprocess": ("skip", "unchanged")})
    events += _stage(clock, layout, "sfm", 102, "frames registered", 35.0,
                     ("features: 6.8 s", "matching (sequential): 3.9 s", "mapping (incremental): 6.4 s"))
    events.append(StageStarted(stage="splat_orig", pid=4_000_101, fingerprint="1" * 20,
                               log=str(layout.log_file("splat_orig")), t=clock.tick(0.1)))
    events.append(Log(stage="splat_orig", message="102 cameras, 18,734 SfM points, white background",
                      t=clock.tick(0.5)))
    events += training(clock, "splat_orig", steps, 10_000)
    write_journal(layout, events)
    write_manifests(layout, ("preprocess", "sfm"))
    return layout


def failed_run(root: Path) -> RunLayout:
    """mug: SfM could not register enough frames; splat_orig never ran."""
    layout = RunLayout(root / "mug")
    clock = Clock(T0 - 3600)
    write_snapshot(layout, ["run.input=clips/mug.mp4", "run.directory=mug", "run.outputs_root=runs",
                            "run.pipeline=original", "mask.method=off"])
    events: list[Event] = [RunStarted(pid=4_000_200, preset="presets/original-only.toml",
                                      command="run original-only", t=clock.t)]
    events += _plan(clock, {**{s: ("off", "run.pipeline = 'original' (no diffusion)") for s in ORIG_ONLY},
                            "mask": ("off", "mask.method = 'off'")})
    events += _stage(clock, layout, "preprocess", 12, "frames", 1.2)
    events.append(StageStarted(stage="sfm", pid=4_000_201, fingerprint="2" * 20,
                               log=str(layout.log_file("sfm")), t=clock.tick(0.01)))
    events.append(Telemetry(device="N/A (no NVIDIA driver)", t=clock.tick(0.01)))
    events.append(Log(stage="sfm", message="features: 0.4 s", t=clock.tick(0.4)))
    events.append(Log(stage="sfm", message="only 4/12 frames registered; retrying with denser features",
                      level="warning", t=clock.tick(0.3)))
    events.append(StageFailed(stage="sfm", error="sfm registered 4/12 frames (33%), below sfm.min_registered "
                              "= 0.9; try sfm.matcher = 'exhaustive'",
                              detail="Traceback (most recent call last):\n  File \"sfm.py\", line 80, in run\n"
                              "StageError: sfm registered 4/12 frames (33%)", t=clock.tick(0.2)))
    events.append(StageFailed(stage="splat_orig", error="not run: upstream sfm failed", t=clock.tick(0.001)))
    events.append(RunFinished(status="failed", seconds=3.1, t=clock.tick(0.001)))
    write_journal(layout, events)
    write_manifests(layout, ("preprocess",))
    return layout


def make_runs(root: Path) -> dict[str, RunLayout]:
    """Writes the three recorded runs under `root`; gives them by name."""
    root.mkdir(parents=True, exist_ok=True)
    clips = root.parent / "clips"  # the inputs, as the snapshots name them (relative to root's parent)
    clips.mkdir(exist_ok=True)
    for name in ("chair", "plush-dog", "mug"):
        (clips / f"{name}.mp4").write_bytes(name.encode() * 64)
    with contextlib.chdir(root.parent):  # the snapshots name paths relative to it
        return {layout.root.name: layout for layout in (done_run(root), running_run(root), failed_run(root))}
