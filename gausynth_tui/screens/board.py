"""Run board: every stage's state and why, progress with ETA, VRAM, the live log, the last error."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Sparkline, Static

from gausynth_engine import StageView, human_bytes, human_seconds, read_card

from ..launch import RunRequest, cancel_run, choose_candidate
from ..store import STAGE_IDS, STAGE_TITLES, RunEntry, ago, clock_text, display_path
from .base import ViewScreen
from .style import STATE_LOOK, STATUS_STYLE, bar

if TYPE_CHECKING:
    from ..app import GauSynthApp

BAR_WIDTH = 12
LOG_LINES = 200


class BoardScreen(ViewScreen):
    HELP = ("One run, stage by stage: state (stale, running, done, unchanged = skipped because nothing it "
            "reads changed, failed, cancelled, off) and why, progress with ETA, the GPU's VRAM, the log of "
            "the selected stage and its error in full. Runs started here are detached: leaving the app "
            "leaves them running.")
    BINDINGS = [
        Binding("escape", "back", "Back", id="board.back"),
        Binding("r", "run_stale", "Stale", tooltip="Run everything stale", id="board.run_stale"),
        Binding("f", "run_from", "From", tooltip="Run from the selected stage on", id="board.run_from"),
        Binding("o", "run_only", "Only", tooltip="Run the selected stage only", id="board.run_only"),
        Binding("F", "force", "Force the selected stage", show=False, id="board.force"),
        Binding("c", "cancel", "Cancel", tooltip="Cancel the run (asks first)", id="board.cancel"),
        Binding("e", "edit", "Preset", tooltip="Edit this run's preset", id="board.edit"),
        Binding("t", "monitor", "Train", tooltip="Training monitor", id="board.monitor"),
        Binding("i", "previews", "Images", tooltip="Previews: sheets, frames, renders", id="board.previews"),
        Binding("s", "result", "Result card: metrics, PLY, videos, next step", show=False,
                id="board.result"),
        Binding("x", "error", "Show the last error in full", show=False, id="board.error"),
        Binding("k", "choose", "Choose another reimagination candidate", show=False, id="board.choose"),
        Binding("p", "path", "Show the output folder path", show=False, id="board.path"),
        Binding("v", "view", "Browser viewer of the splat (live)", show=False, id="board.view"),
    ]

    def __init__(self, run_key: str) -> None:
        super().__init__()
        self.run_key = run_key
        self.selected: str | None = None

    @property
    def entry(self) -> RunEntry:
        return self.gapp.store.runs[self.run_key]

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with Horizontal(id="board-top"):
            yield Static(id="run-info")
            with Vertical(id="gpu"):
                yield Static(id="gpu-text")
                yield Sparkline([], id="vram-spark")
        yield DataTable(id="stages", cursor_type="row")
        yield Static(id="detail-title")
        with VerticalScroll(id="detail"):
            yield Static(id="detail-body")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one("#stages", DataTable)
        for label, key in ((" ", "glyph"), ("stage", "stage"), ("state", "state"),
                           ("progress", "progress"), ("ETA", "eta"), ("why / detail", "detail")):
            table.add_column(label, key=key)
        for sid in STAGE_IDS:
            table.add_row(*self._cells(sid), key=sid)
        self.selected = self._default_selection()
        table.move_cursor(row=STAGE_IDS.index(self.selected))
        self.refresh_view(None)
        self.tick_clock(2.0)

    def _default_selection(self) -> str:
        stages = self.entry.view.stages
        for state in ("running", "failed"):
            found = [sid for sid in STAGE_IDS if sid in stages and stages[sid].state == state]
            if found:
                return found[0]
        return STAGE_IDS[0]

    # --- drawing ---------------------------------------------------------------------------------
    def refresh_view(self, keys: frozenset[str] | None = None) -> None:
        if keys is not None and self.run_key not in keys:
            return
        if self.run_key not in self.gapp.store.runs:
            return
        entry = self.entry
        self.sub_title = entry.name
        table = self.query_one("#stages", DataTable)
        for sid in STAGE_IDS:
            for col, cell in zip(("glyph", "stage", "state", "progress", "eta", "detail"), self._cells(sid),
                                 strict=True):
                table.update_cell(sid, col, cell, update_width=True)
        self.query_one("#run-info", Static).update(self._run_info())
        self._draw_gpu()
        self._draw_detail()

    def _stage(self, sid: str) -> StageView | None:
        return self.entry.view.stages.get(sid)

    def _cells(self, sid: str) -> tuple:
        s = self._stage(sid)
        state = s.state if s else "unknown"
        glyph, word, style = STATE_LOOK.get(state, STATE_LOOK["unknown"])
        progress, eta, detail = "", "", ""
        if s is not None:
            if s.total and state in ("running", "done", "failed", "cancelled"):
                progress = f"{bar(s.fraction, BAR_WIDTH)} {s.fraction:4.0%}"
            if state == "running":
                eta = human_seconds(s.eta)
                detail = f"{s.value:g}/{s.total:g} {s.unit}".strip() if s.total else "starting"
                if s.rate:
                    detail += f" · {s.rate:.3g}/s"
            elif state == "failed":
                detail = s.error
            elif state == "done" and s.started and s.ended:
                detail = f"{s.reason}" + (f" · peak VRAM {human_bytes(s.peak_vram)}" if s.peak_vram else "")
            elif state == "cancelled":
                detail = f"cancelled at {s.value:g}/{s.total:g} {s.unit}".strip() if s.total else "cancelled"
            elif state == "skipped" and s.reason == "unchanged":
                detail = "nothing it reads changed"
            else:
                detail = s.reason
        room = max(12, (self.size.width or 80) - 52)
        if len(detail) > room:
            detail = detail[: room - 1] + "…"
        return (Text(glyph, style=style), Text(sid, style="bold" if state == "running" else ""),
                Text(word, style=style), progress, eta, Text(detail, style="red" if state == "failed" else ""))

    def _run_info(self) -> Group:
        v = self.entry.view
        now = self.gapp.clock()
        if v.started:
            end = v.last_event if v.status not in ("running",) else now
            took = human_seconds((end or now) - v.started)
        else:
            took = "–"
        line1 = Text.assemble(("● ", STATUS_STYLE.get(v.status, "")), (v.status, STATUS_STYLE.get(v.status, "")),
                              ("  started ", "dim"), clock_text(v.started), ("  for ", "dim"), took,
                              ("  last activity ", "dim"), ago(v.last_event, now))
        line2 = Text.assemble(("preset ", "dim"), display_path(v.preset) if v.preset else "–",
                              overflow="ellipsis", no_wrap=True)
        sets = overrides_of(v.command)
        if sets:
            line2.append(f"  + {len(sets)} override(s): ", style="dim")
            line2.append(", ".join(sets))
        last = last_error(v)
        if last is not None:
            line3 = Text.assemble(("last error ", "dim"), (f"{last.id}: {last.error}", "red"),
                                  overflow="ellipsis", no_wrap=True)
        else:
            line3 = Text("no errors", style="dim")
        for line in (line1, line2, line3):
            line.no_wrap, line.overflow = True, "ellipsis"
        return Group(line1, line2, line3)

    def _draw_gpu(self) -> None:
        tel = self.entry.view.telemetry
        text = self.query_one("#gpu-text", Static)
        spark = self.query_one("#vram-spark", Sparkline)
        last = tel[-1] if tel else None
        if last is None:
            text.update(Text("GPU  no samples yet", style="dim"))
            spark.display = False
            return
        if last.vram_used is None or last.vram_total is None:
            text.update(Text.assemble(("VRAM N/A", "bold"), "\n", (last.device, "dim")))
            spark.display = False
            return
        frac = last.vram_used / last.vram_total if last.vram_total else 0.0
        style = "red" if frac > 0.9 else "yellow" if frac > 0.7 else "green"
        util = f" {last.utilization:.0f}%" if last.utilization is not None else ""
        used, total = human_bytes(last.vram_used).split(), human_bytes(last.vram_total).split()
        amount = f"{used[0]}/{total[0]} {total[1]}" if used[1] == total[1] else f"{used[0]} {used[1]}/{total[0]} {total[1]}"
        text.update(Text.assemble(("VRAM ", "bold"), (bar(frac, 6), style), f" {amount}{util}",
                                  no_wrap=True, overflow="ellipsis"))
        spark.display = True
        spark.data = [float(t.vram_used) for t in list(tel)[-60:] if t.vram_used is not None]

    def _draw_detail(self) -> None:
        sid = self.selected or STAGE_IDS[0]
        s = self._stage(sid)
        glyph, word, style = STATE_LOOK.get(s.state if s else "unknown", STATE_LOOK["unknown"])
        title = Text.assemble((f"{glyph} {sid}", style), (f" — {STAGE_TITLES.get(sid, '')}", "bold"))
        if s is not None and s.log_file:
            title.append(f"  log file {self._relative(s.log_file)}", style="dim")
        self.query_one("#detail-title", Static).update(title)
        parts: list = []
        if s is None:
            parts.append(Text("not planned in this run yet", style="dim"))
        else:
            if s.reason and s.state in ("skipped", "off", "out", "pending"):
                parts.append(Text(f"{word}: {s.reason}", style=style))
            logs = list(s.logs)[-LOG_LINES:]
            for log in logs:
                level_style = {"warning": "yellow", "error": "red"}.get(log.level, "")
                parts.append(Text.assemble((time.strftime("%H:%M:%S ", time.localtime(log.t)), "dim"),
                                           (log.message, level_style)))
            if not logs and s.state not in ("failed",):
                parts.append(Text("no log lines yet", style="dim"))
            if self.entry.view.status == "done":  # what the run made, where the pane scrolls to
                parts += [Text(""), *(Text(line, style="green" if i == 0 else "") for i, line in
                                      enumerate(read_card(self.entry.layout, self.entry.view).lines(display_path)))]
            if s.state == "failed":  # last, so that the end of the pane (where it scrolls) shows it
                parts.append(Text(f"error: {s.error}", style="bold red"))
                if s.detail:
                    parts.append(Text(s.detail.rstrip(), style="red"))
        self.query_one("#detail-body", Static).update(Group(*parts))
        if self.gapp.live:
            self.query_one("#detail", VerticalScroll).scroll_end(animate=False)

    def _relative(self, path: str) -> str:
        root = str(self.entry.layout.root)
        return path[len(root) + 1:] if path.startswith(root + "/") else path

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value != self.selected:
            self.selected = str(event.row_key.value)
            self._draw_detail()

    # --- actions ---------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def _plan(self, **range_options) -> None:
        from .dialogs import PlanDialog

        entry = self.entry
        snapshot = entry.layout.preset_snapshot
        if not snapshot.exists():
            self.notify(f"{snapshot} is missing: this run never started; start it from a preset (n on "
                        "the runs screen)", severity="error", timeout=10)
            return
        self.app.push_screen(PlanDialog(RunRequest(snapshot, **range_options)))

    def action_run_stale(self) -> None:
        self._plan()

    def action_run_from(self) -> None:
        self._plan(start=self.selected)

    def action_run_only(self) -> None:
        self._plan(only=self.selected)

    def action_force(self) -> None:
        self._plan(only=self.selected, force=True)

    def action_cancel(self) -> None:
        cancel_in_worker(self.gapp, self.entry)

    def action_result(self) -> None:
        from .dialogs import TextDialog

        lines = read_card(self.entry.layout, self.entry.view).lines(display_path)
        self.app.push_screen(TextDialog(lines[0].strip("─ "), Text("\n".join(lines[1:]))))

    def action_edit(self) -> None:
        self.gapp.open_editor(self.entry.layout.preset_snapshot, self.run_key)

    def action_monitor(self) -> None:
        from .monitor import MonitorScreen

        self.app.push_screen(MonitorScreen(self.run_key, self.selected))

    def action_previews(self) -> None:
        from .previews import PreviewScreen

        self.app.push_screen(PreviewScreen(self.run_key))

    def action_view(self) -> None:
        self.notify("starting the viewer …", title="viewer", timeout=3)
        self._launch_viewer()

    @work(thread=True, group="commands")
    def _launch_viewer(self) -> None:  # the training monitor's call: one viewer per run
        from gausynth_engine.viewer.server import launch

        text = launch(self.entry.layout)
        self.app.call_from_thread(self.notify, text, title="viewer", timeout=30)

    def action_error(self) -> None:
        from .dialogs import TextDialog

        s = self._stage(self.selected or "")
        if s is None or s.state != "failed":
            s = last_error(self.entry.view)
        if s is None:
            self.notify("no stage of this run has failed", timeout=4)
            return
        self.app.push_screen(TextDialog(f"✘ {s.id} failed", Group(
            Text(s.error, style="bold red"), Text(""), Text(s.detail or "(no traceback)"),
            Text(""), Text(f"log file: {s.log_file}", style="dim"))))

    def action_choose(self) -> None:
        from .dialogs import AskDialog

        def chosen(answer: str | None) -> None:
            if answer is None:
                return
            if not answer.strip().isdigit() or int(answer) < 1:
                self.notify(f"{answer!r}: a candidate is a number from 1", severity="error")
                return
            self._choose(int(answer))

        self.app.push_screen(AskDialog("Reimagination candidate to carry on with (1, 2, …):", "2"), chosen)

    @work(thread=True, group="commands")
    def _choose(self, k: int) -> None:
        result = choose_candidate(self.entry.layout.root, k)
        self.app.call_from_thread(
            self.notify, result.message, title=f"candidate {k}" if result.ok else "choose failed",
            severity="information" if result.ok else "error", timeout=12)

    def action_path(self) -> None:
        root = self.entry.layout.root
        outputs = [o for o in _stage_outputs(self.selected) if (root / o).exists()]
        text = str(root) + ("".join(f"\n  {o}" for o in outputs) if outputs else "")
        self.notify(text, title="output folder", timeout=12)


def last_error(view) -> StageView | None:
    """Gives the failed stage whose error says most: the latest that failed on its own."""
    failed = [s for s in view.stages.values() if s.state == "failed" and s.error]
    own = [s for s in failed if not s.error.startswith("not run: upstream")]
    pool = own or failed
    return max(pool, key=lambda s: s.ended or 0.0) if pool else None


def _stage_outputs(sid: str | None) -> tuple[str, ...]:
    from gausynth_engine import BY_ID

    return BY_ID[sid].outputs if sid in BY_ID else ()


def overrides_of(command: str) -> list[str]:
    """Gives the `--set` overrides of a recorded run command line, as typed."""
    import shlex

    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--set"]


def what_cancel_loses(entry: RunEntry) -> str:
    """Says what cancelling a run throws away: each running stage's work since its last checkpoint."""
    running = [s for s in entry.view.stages.values() if s.state == "running"]
    if not running:
        return "No stage is running right now; the run stops before its next stage."
    later = sum(1 for t in entry.view.stages.values() if t.state == "pending")
    return (" ".join(_what_stage_loses(s) for s in running)
            + (f" {later} later stage(s) will not run." if later else "")
            + " Finished stages keep their results.")


def _what_stage_loses(s: StageView) -> str:
    done = f"{s.value:g}/{s.total:g} {s.unit}".strip() if s.total else "started"
    checkpoints = [int(v) for _, v in s.metrics.get("checkpoint", [])]
    if not checkpoints:  # older journals only logged them
        checkpoints = [int(m.group(1)) for log in s.logs
                       if (m := re.search(r"checkpoint.*step (\d+)", log.message))]
    if checkpoints:
        kept = (f"Its last checkpoint is at step {checkpoints[-1]}: the steps after it are lost; "
                "running it again resumes there.")
    elif s.id.startswith("splat"):
        kept = "It has no checkpoint yet: all of its training so far is lost."
    else:
        kept = "This stage keeps no checkpoints: it starts over when run again."
    return f"{s.id} is at {done}. {kept}"


def cancel_in_worker(app: GauSynthApp, entry: RunEntry, confirmed: bool = False) -> None:
    """Asks first (saying what will be lost), then asks the engine to cancel, off the UI thread."""
    if entry.view.status != "running":
        app.notify(f"{entry.name} is not running ({entry.view.status})", timeout=4)
        return
    if not confirmed:
        from .dialogs import ConfirmDialog

        def answered(yes: bool | None) -> None:
            if yes:
                cancel_in_worker(app, entry, confirmed=True)

        app.push_screen(ConfirmDialog(f"Cancel the run {entry.name}?", what_cancel_loses(entry),
                                      yes="Cancel the run", no="Keep it running"), answered)
        return
    app.notify(f"cancelling {entry.name} …", timeout=3)

    def work_() -> None:
        result = cancel_run(entry.layout.root)
        app.call_from_thread(app.notify, result.message, title="cancel",
                             severity="information" if result.ok else "error", timeout=8)
        app.call_from_thread(app.poll_now)

    app.run_worker(work_, thread=True, group="commands")
