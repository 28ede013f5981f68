"""Plain-text rendering of run events and run state, for the CLI (`run`, `watch`, `status`)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ._events import (
    Event,
    Log,
    Progress,
    RunFinished,
    StageCancelled,
    StageDone,
    StageFailed,
    StagePlanned,
    StageStarted,
)
from ._journal import RunView


def human_bytes(n: int | None) -> str:
    if n is None:
        return "N/A"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def human_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class ConsolePrinter:
    """Prints a run as it happens; progress redraws one line on a terminal, sparsely elsewhere."""

    def __init__(self, stream: TextIO | None = None, verbose: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.view = RunView()
        self.verbose = verbose
        self._progress_shown = 0.0
        self._line_open = False

    def __call__(self, e: Event) -> None:
        self.view.apply(e)
        if isinstance(e, StagePlanned):
            self._line(f"  {e.stage:<11} {e.action:<4} {e.reason}")
        elif isinstance(e, StageStarted):
            self._line(f"▶ {e.stage}  (log: {e.log})")
        elif isinstance(e, Progress):
            self._progress(e)
        elif isinstance(e, Log) and (self.verbose or e.level != "info"):
            self._line(f"  {e.stage}: {e.level}: {e.message}")
        elif isinstance(e, StageDone):
            vram = f", peak VRAM {human_bytes(e.peak_vram)}" if e.peak_vram else ""
            self._line(f"✔ {e.stage}  {human_seconds(e.seconds)}{vram}")
        elif isinstance(e, StageFailed):
            self._line(f"✘ {e.stage}: {e.error}")
        elif isinstance(e, StageCancelled):
            self._line(f"■ {e.stage}: cancelled")
        elif isinstance(e, RunFinished):
            self._line(f"run {e.status} in {human_seconds(e.seconds)}")

    def _progress(self, e: Progress) -> None:
        now = time.monotonic()
        done = e.value >= e.total
        if not self.tty and not done and now - self._progress_shown < 5.0:
            return
        self._progress_shown = now
        s = self.view.stage(e.stage)
        width = 24
        filled = int(width * s.fraction)
        text = (f"  {e.stage} [{'#' * filled}{'.' * (width - filled)}] {e.value:g}/{e.total:g} "
                f"{e.unit}  ETA {human_seconds(s.eta)}")
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
            self._line_open = not done
            if done:
                self.stream.write("\n")
            self.stream.flush()
        else:
            self._line(text)

    def _line(self, text: str) -> None:
        if self._line_open:
            self.stream.write("\n")
            self._line_open = False
        self.stream.write(text + "\n")
        self.stream.flush()


def render_status(view: RunView, order: list[str]) -> str:
    """Gives a run's state as a small table: one line per stage, then errors in full."""
    lines = [f"status: {view.status}" + (f"  (orchestrator pid {view.pid})" if view.pid else "")]
    if view.preset:
        lines.append(f"preset: {view.preset}")
    for sid in order:
        s = view.stages.get(sid)
        if s is None:
            continue
        detail = s.reason
        if s.state == "running" and view.status == "running":
            detail = f"{s.value:g}/{s.total:g} {s.unit}  ETA {human_seconds(s.eta)}"
        elif s.state == "failed":
            detail = s.error
        lines.append(f"  {sid:<11} {s.state:<9} {detail}")
    if view.telemetry:
        t = view.telemetry[-1]
        lines.append(f"GPU: {t.device}  VRAM {human_bytes(t.vram_used)} / {human_bytes(t.vram_total)}")
    if view.last_event:
        lines.append(f"last activity: {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(view.last_event))}")
    return "\n".join(lines)
