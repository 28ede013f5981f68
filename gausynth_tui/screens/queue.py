"""Queue: the runs waiting, running (with their GPU), done and failed; reorder, cancel, retry.

Drawn from the queue journal (`<outputs_root>/.queue/events.jsonl`) alone, like boards are
from run journals; commands append to it exactly as `gausynth queue …` does.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from gausynth_engine import LayoutError, human_bytes
from gausynth_engine.queue import GpuSample, QueueJournal, QueueView

from .base import ViewScreen

STATE_STYLE = {"waiting": "yellow", "running": "bold yellow", "done": "green", "failed": "bold red",
               "cancelled": "magenta"}
REFRESH = 0.5  # seconds between looks at the queue journal


class QueueScreen(ViewScreen):
    HELP = ("The queue of runs of this outputs root: each job is an ordinary run folder (enter opens "
            "its board). Waiting jobs start in this order as GPUs and cores free up; the GPU column "
            "shows where each running stage is pinned. The runner is a detached process: quitting "
            "the app never stops it.")
    BINDINGS = [
        Binding("enter", "open", "Open run", id="queue.open"),
        Binding("left_square_bracket", "move(-1)", "Move up", key_display="[", id="queue.up"),
        Binding("right_square_bracket", "move(1)", "Move down", key_display="]", id="queue.down"),
        Binding("x", "cancel_job", "Cancel job", id="queue.cancel"),
        Binding("r", "retry", "Retry", id="queue.retry"),
        Binding("s", "start", "Start runner", id="queue.start"),
        Binding("escape", "app.pop_screen", "Back", id="queue.back"),
    ]

    def __init__(self, outputs_root: Path) -> None:
        super().__init__()
        self.journal = QueueJournal(outputs_root)
        self.view = QueueView()
        self._reader = self.journal.reader()

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static(id="queue-runner")
        yield Static(id="queue-gpus")
        yield DataTable(id="queue", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one("#queue", DataTable)
        for key, label in (("pos", "#"), ("job", "job"), ("state", "state"), ("gpu", "gpu"),
                           ("stage", "stage"), ("run", "run folder"), ("preset", "preset")):
            table.add_column(label, key=key)
        self.refresh_view(None)
        if self.gapp.live:
            self.set_interval(REFRESH, lambda: self.is_current and self.refresh_view(None))

    def reload(self) -> None:
        for e in self._reader.read_new():
            self.view.apply(e)

    def refresh_view(self, keys: frozenset[str] | None = None) -> None:
        self.reload()
        from gausynth_engine.queue.cli import runner_alive

        self.sub_title = "queue"
        pid = runner_alive(self.journal)
        where = (self.view.runner.cluster or "this machine") if self.view.runner else "this machine"
        self.query_one("#queue-runner", Static).update(Text.assemble(
            ("queue ", "dim"), str(self.journal.root), ("  ·  ", "dim"),
            (f"runner pid {pid} on {where}", "green") if pid else ("no runner (s starts one)", "yellow")))
        self.query_one("#queue-gpus", Static).update(self._gpus_text())
        table = self.query_one("#queue", DataTable)
        selected = self.selected()
        table.clear()
        waiting = 0
        for job in self.view.in_order():
            pos = ""
            if job.state == "waiting":
                waiting += 1
                pos = str(waiting)
            gpu = ",".join(str(g) for g in job.gpus) if job.placed else ""
            if job.placed and not job.gpus:
                gpu = "cpu"
            state = "cancelling" if job.cancel_asked else job.state
            table.add_row(pos, job.id, Text(state, style=STATE_STYLE.get(job.state, "")), gpu, job.stage,
                          job.directory, job.preset.rsplit("/", 1)[-1].removesuffix(".toml"), key=job.id)
        ids = self.view.order
        if selected in ids:
            table.move_cursor(row=ids.index(selected))

    def _gpus_text(self) -> Text:
        last: dict[int, GpuSample] = {}
        for s in self.view.samples[-64:]:
            last[s.gpu] = s
        if not last:
            return Text("GPUs: no samples yet", style="dim")
        parts: list[str | tuple[str, str]] = [("GPUs ", "dim")]
        for index, s in sorted(last.items()):
            util = "N/A" if s.utilization is None else f"{s.utilization:.0f}%"
            parts.append(f"{index}: {human_bytes(s.vram_used)}/{human_bytes(s.vram_total)} {util}   ")
        return Text.assemble(*parts)

    def selected(self) -> str | None:
        table = self.query_one("#queue", DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    # --- commands: the same functions `gausynth queue …` runs ----------------------------------
    def _run_cli(self, func: str, **fields) -> tuple[bool, str]:
        """Runs a `gausynth queue` command function; gives (ok, its last line)."""
        from gausynth_engine.queue import cli

        args = argparse.Namespace(root=str(self.journal.outputs_root), **fields)
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                code = getattr(cli, func)(args)
        except LayoutError as e:
            return False, str(e)
        lines = out.getvalue().strip().splitlines()
        return code == 0, lines[-1] if lines else ""

    def _report(self, ok: bool, message: str) -> None:
        if message:
            self.notify(message, severity="information" if ok else "error", timeout=6 if ok else 10)
        self.refresh_view(None)

    def _command(self, func: str, **fields) -> None:
        self._report(*self._run_cli(func, **fields))

    def action_move(self, step: int) -> None:
        job = self.selected()
        if job is None or self.view.jobs[job].state != "waiting":
            return
        waiting = [j.id for j in self.view.in_order("waiting")]
        to = min(max(waiting.index(job) + 1 + step, 1), len(waiting))
        self._command("cmd_move", job=job, to=to, top=False, bottom=False)

    def action_cancel_job(self) -> None:
        job = self.selected()
        if job is not None:
            self._command("cmd_cancel", jobs=[job], all=False)

    def action_retry(self) -> None:
        job = self.selected()
        if job is not None and self.view.jobs[job].state in ("failed", "cancelled"):
            self._command("cmd_retry", jobs=[job])

    def action_start(self) -> None:
        self.notify("starting the queue runner …", timeout=3)
        self._start()

    @work(thread=True, group="commands")
    def _start(self) -> None:  # waits until the runner's journal shows it: not on the UI thread
        result = self._run_cli("cmd_start", cores=None, max_runs=None, cluster=None, foreground=False)
        self.app.call_from_thread(self._report, *result)

    def action_open(self) -> None:
        job = self.selected()
        if job is not None:
            self.gapp.show_board(str(self.journal.outputs_root / self.view.jobs[job].directory))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()
