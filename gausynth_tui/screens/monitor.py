"""Training monitor: loss and PSNR curves, Gaussians, it/s, ETA, evaluations, checkpoints.

It reads the metrics a stage reports (`Metric` events): "loss", "psnr", "num_gaussians",
"its_per_s" by step; evaluation metrics are any name starting with "eval_" ("eval_psnr",
"eval_ssim", …); checkpoints are `Artifact` events of kind "checkpoint" or "ply", or log lines
that mention a checkpoint.
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Header, Static
from textual_plotext import PlotextPlot

from gausynth_engine import StageView, human_seconds

from ..store import STAGE_IDS
from .base import ViewScreen

CURVES = (("loss", "loss"), ("psnr", "PSNR (dB)"))
MAX_POINTS = 400  # points per curve drawn (evenly thinned); plotext is slow with thousands


def thin(points: list[tuple[int | None, float]], limit: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    """Gives (steps, values) with at most `limit` points, always keeping the last."""
    pts = [(float(s if s is not None else i), v) for i, (s, v) in enumerate(points)]
    if len(pts) > limit:
        stride = len(pts) / limit
        pts = [pts[int(i * stride)] for i in range(limit - 1)] + [pts[-1]]
    return [p[0] for p in pts], [p[1] for p in pts]


def ema(values: list[float], alpha: float = 0.1) -> float | None:
    out = None
    for v in values:
        out = v if out is None else alpha * v + (1 - alpha) * out
    return out


class MonitorScreen(ViewScreen):
    HELP = ("Training of a splatting stage (or any stage that reports metrics): loss and PSNR by step, "
            "the number of Gaussians, iterations per second, the ETA, evaluations and checkpoints. "
            "s switches to the next stage with metrics; v opens the browser viewer of the splat (live "
            "while it trains; it prints the ssh -L line to reach it).")
    BINDINGS = [
        Binding("escape", "back", "Board", id="monitor.back"),
        Binding("s", "next_stage", "Next stage", id="monitor.next_stage"),
        Binding("v", "view", "Viewer", id="monitor.view", show=False),
    ]

    def __init__(self, run_key: str, stage: str | None = None) -> None:
        super().__init__()
        self.run_key = run_key
        self.stage_id = stage
        self._drawn: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static(id="train-stats")
        with Horizontal(id="curves"):
            for name, _ in CURVES:
                yield PlotextPlot(id=f"plot-{name}", classes="curve")
        with Horizontal(id="train-bottom"):
            yield DataTable(id="evals", cursor_type="none", show_cursor=False)
            yield Static(id="checkpoints")
        yield Footer(compact=True, show_command_palette=False)

    def action_view(self) -> None:
        self.notify("starting the viewer …", title="viewer", timeout=3)
        self._launch_viewer()

    @work(thread=True, group="commands")
    def _launch_viewer(self) -> None:
        from gausynth_engine.viewer.server import launch

        text = launch(self.gapp.store.runs[self.run_key].layout)
        self.app.call_from_thread(self.notify, text, title="viewer", timeout=30)

    def on_mount(self) -> None:
        self.stage_id = self._pick(self.stage_id)
        self.refresh_view(None)

    def _with_metrics(self) -> list[str]:
        stages = self.gapp.store.runs[self.run_key].view.stages
        return [sid for sid in STAGE_IDS if sid in stages and stages[sid].metrics]

    def _pick(self, wanted: str | None) -> str | None:
        have = self._with_metrics()
        if wanted in have:
            return wanted
        splat = [s for s in have if s.startswith("splat")]
        return (splat or have or [None])[0]

    def refresh_view(self, keys: frozenset[str] | None = None) -> None:
        if keys is not None and self.run_key not in keys:
            return
        entry = self.gapp.store.runs[self.run_key]
        if self.stage_id is None:
            self.stage_id = self._pick(None)
        self.sub_title = f"{entry.name} · training"
        s = entry.view.stages.get(self.stage_id or "")
        self.query_one("#train-stats", Static).update(self._stats(s))
        for name, title in CURVES:
            self._draw_curve(s, name, title)
        self._draw_evals(s)
        self._draw_checkpoints(s)

    def _stats(self, s: StageView | None) -> Text:
        if s is None:
            return Text("No stage of this run has reported training metrics yet (they appear once a "
                        "splatting stage runs).", style="dim")
        m = s.metrics

        def last(name: str) -> float | None:
            return m[name][-1][1] if m.get(name) else None

        step = s.value if s.total else (m["loss"][-1][0] if m.get("loss") else None)
        parts = [(s.id, "bold cyan"), ("  ", ""), (s.state, "yellow" if s.state == "running" else "")]
        if s.total:
            parts += [("  step ", "dim"), (f"{s.value:g}/{s.total:g}", "bold")]
        elif step is not None:
            parts += [("  step ", "dim"), (f"{step}", "bold")]
        its = last("its_per_s") or s.rate
        parts += [("  it/s ", "dim"), (f"{its:.1f}" if its else "–", "")]
        parts += [("  ETA ", "dim"), (human_seconds(s.eta), "")]
        gauss = last("num_gaussians")
        parts += [("  Gaussians ", "dim"), (f"{gauss:,.0f}" if gauss is not None else "–", "bold")]
        loss = ema([v for _, v in m.get("loss", [])[-200:]])
        parts += [("  loss(EMA) ", "dim"), (f"{loss:.4f}" if loss is not None else "–", "")]
        psnr = last("psnr")
        parts += [("  PSNR ", "dim"), (f"{psnr:.2f}" if psnr is not None else "–", "")]
        return Text.assemble(*parts)

    def _draw_curve(self, s: StageView | None, name: str, title: str) -> None:
        plot = self.query_one(f"#plot-{name}", PlotextPlot)
        points = s.metrics.get(name, []) if s else []
        key = f"{s.id if s else ''}:{len(points)}:{plot.size}"
        if self._drawn.get(name) == key:
            return  # nothing new: plotext redraws are the costly part of this screen
        self._drawn[name] = key  # type: ignore[assignment]
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        if points:
            xs, ys = thin(points)
            plt.plot(xs, ys, marker="braille")
            evals = s.metrics.get(f"eval_{name}", []) if s else []
            if evals:
                ex, ey = thin(evals)
                plt.scatter(ex, ey, marker="dot", label="eval")
        else:
            plt.text("no data yet", 0.5, 0.5)
        plot.refresh()

    def _draw_evals(self, s: StageView | None) -> None:
        table = self.query_one("#evals", DataTable)
        names = sorted(n for n in (s.metrics if s else {}) if n.startswith("eval_"))
        table.clear(columns=True)
        table.add_column("eval step")
        for n in names:
            table.add_column(n.removeprefix("eval_"))
        rows: dict[int | None, dict[str, float]] = {}
        for n in names:
            for step, v in s.metrics[n]:  # type: ignore[union-attr]
                rows.setdefault(step, {})[n] = v
        for step in sorted(rows, key=lambda x: -1 if x is None else x):
            table.add_row(str(step) if step is not None else "–",
                          *(f"{rows[step][n]:.4g}" if n in rows[step] else "" for n in names))
        if not names:
            table.add_row(Text("none yet", style="dim"))

    def _draw_checkpoints(self, s: StageView | None) -> None:
        lines = [Text("checkpoints", style="bold underline")]
        if s is not None:
            for a in s.artifacts:
                if a.kind in ("checkpoint", "ply"):
                    lines.append(Text(f"{a.kind}  {a.path}", overflow="ellipsis", no_wrap=True))
            for log in s.logs:
                if "checkpoint" in log.message.lower():
                    lines.append(Text(log.message, style="dim", overflow="ellipsis", no_wrap=True))
        if len(lines) == 1:
            lines.append(Text("none yet", style="dim"))
        text = Text("\n").join(lines[:1] + lines[1:][-8:])
        self.query_one("#checkpoints", Static).update(text)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_next_stage(self) -> None:
        have = self._with_metrics()
        if not have:
            self.notify("no stage has metrics yet", timeout=3)
            return
        i = have.index(self.stage_id) + 1 if self.stage_id in have else 0
        self.stage_id = have[i % len(have)]
        self._drawn.clear()
        self.refresh_view(None)
