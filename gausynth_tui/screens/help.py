"""The `?` help screen: what the screen below is for, and every key it and the app answer to."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


def bindings_table(screen: Screen, app_bindings: list) -> Table:
    table = Table(box=None, pad_edge=False, expand=True)
    table.add_column("key", style="bold cyan", no_wrap=True)
    table.add_column("does")
    for b in [*getattr(type(screen), "BINDINGS", []), *app_bindings]:
        if isinstance(b, Binding) and b.description:
            table.add_row(b.key_display or b.key, b.tooltip or b.description)
    table.add_row("ctrl+p", "Command palette: every action, run and preset by name")
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", id="help.close")]

    def __init__(self, below: Screen) -> None:
        super().__init__()
        self.below = below

    def compose(self) -> ComposeResult:
        name = type(self.below).__name__.removesuffix("Screen")
        with Vertical(classes="dialog", id="help"):
            yield Static(Text.assemble(("Help — ", "bold"), (name, "bold cyan")), classes="dialog-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(Text(getattr(self.below, "HELP", "") or ""), id="help-text")
                yield Static(bindings_table(self.below, self.app.BINDINGS), id="help-keys")
                yield Static(Text("Runs are engine processes of their own: quit the app (q) or lose the "
                                  "terminal and they go on; `gausynth attach RUN` opens one again with its "
                                  "whole history.", style="dim"))

            yield Static(Text("↑↓ pgup pgdn scroll · esc closes", style="dim"), id="help-hint")

    def on_mount(self) -> None:
        self.query_one("#help-scroll", VerticalScroll).focus()  # the keys scroll it to its last line

    def action_close(self) -> None:
        self.dismiss(None)
