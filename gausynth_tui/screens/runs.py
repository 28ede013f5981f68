"""Runs: every run under the outputs root, its status and last activity."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from ..store import STAGE_IDS, RunEntry, ago, clock_text
from .base import ViewScreen
from .style import STATUS_STYLE


class RunsScreen(ViewScreen):
    HELP = ("Every run folder under the outputs root, most recent first. Runs are engine processes of "
            "their own: quitting the app never stops them. Open one to watch it, or start a new one "
            "from a preset.")
    BINDINGS = [
        Binding("enter", "open", "Open", id="runs.open"),
        Binding("n", "new", "New run", id="runs.new"),
        Binding("e", "edit", "Edit preset", id="runs.edit"),
        Binding("c", "cancel", "Cancel run", id="runs.cancel"),
        Binding("p", "path", "Show the run folder path", show=False, id="runs.path"),
        Binding("Q", "queue", "Queue of runs", show=False, id="runs.queue"),
    ]

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static(id="runs-root")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static(id="runs-empty")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        table.add_column("run", key="run")
        table.add_column("status", key="status")
        table.add_column("stages", key="stages")
        table.add_column("now", key="now")
        table.add_column("last activity", key="last")
        self.refresh_view(None)
        self.tick_clock(5.0)

    def refresh_view(self, keys: frozenset[str] | None = None) -> None:
        store = self.gapp.store
        self.sub_title = "runs"
        self.query_one("#runs-root", Static).update(
            Text.assemble(("outputs root ", "dim"), str(store.outputs_root), ("  ·  ", "dim"),
                          f"{len(store.runs)} run(s)"))
        table = self.query_one("#runs", DataTable)
        entries = store.ordered()
        now = self.gapp.clock()
        selected = self._selected_key()
        rows = [e.key for e in entries]
        if [str(r.value) for r in table.rows] != rows:
            table.clear()
            for e in entries:
                table.add_row(*self._cells(e, now), key=e.key)
            if selected in rows:
                table.move_cursor(row=rows.index(selected))
        else:
            for e in entries:
                if keys is None or e.key in keys or e.live:
                    for col, cell in zip(("run", "status", "stages", "now", "last"), self._cells(e, now),
                                         strict=True):
                        table.update_cell(e.key, col, cell, update_width=True)
        empty = self.query_one("#runs-empty", Static)
        empty.display = not entries
        empty.update(f"No runs under {store.outputs_root}/ yet.\nPress n to start one from a preset.")

    def _cells(self, e: RunEntry, now: float) -> tuple:
        v = e.view
        done = sum(1 for s in v.stages.values() if s.state in ("done", "skipped"))
        planned = sum(1 for s in v.stages.values() if s.state not in ("off", "out"))
        running = [s for s in v.stages.values() if s.state == "running"]
        current = ""
        if running:  # stages that run side by side (run.parallel_stages) all show
            current = " · ".join(f"{s.id} {s.fraction:.0%}" if s.total else s.id for s in running)
        elif v.status == "failed":
            failed = [s.id for s in v.stages.values() if s.state == "failed"]
            current = f"✘ {failed[0]}" if failed else ""
        last = f"{ago(v.last_event, now)} ({clock_text(v.last_event)})" if v.last_event else "–"
        return (Text(e.name, style="bold"), Text(v.status, style=STATUS_STYLE.get(v.status, "")),
                f"{done}/{planned or len(STAGE_IDS)}", current, last)

    def _selected_key(self) -> str | None:
        table = self.query_one("#runs", DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.gapp.show_board(str(event.row_key.value))

    def action_open(self) -> None:
        key = self._selected_key()
        if key:
            self.gapp.show_board(key)

    def action_new(self) -> None:
        from .dialogs import PresetPicker

        def picked(path: Path | None) -> None:
            if path is not None:
                self.gapp.open_editor(path, None)

        self.app.push_screen(PresetPicker(), picked)

    def action_edit(self) -> None:
        key = self._selected_key()
        if key:
            entry = self.gapp.store.runs[key]
            self.gapp.open_editor(entry.layout.preset_snapshot, key)

    def action_cancel(self) -> None:
        key = self._selected_key()
        if key:
            from .board import cancel_in_worker

            cancel_in_worker(self.gapp, self.gapp.store.runs[key])

    def action_queue(self) -> None:
        from .queue import QueueScreen

        self.app.push_screen(QueueScreen(self.gapp.store.outputs_root))

    def action_path(self) -> None:
        key = self._selected_key()
        if key:
            self.notify(key, title="run folder", timeout=10)
