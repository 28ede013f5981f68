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
    table.add_column("id", style="dim", no_wrap=True)
    for b in [*getattr(type(screen), "BINDINGS", []), *app_bindings]:
        if isinstance(b, Binding) and b.description:
            table.add_row(b.key_display or b.key, b.tooltip or b.description, b.id or "")
    table.add_row("ctrl+p", "Command palette: every action, run and preset by name", "app.commands")
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
            with VerticalScroll():
                yield Static(Text(getattr(self.below, "HELP", "") or ""), id="help-text")
                yield Static(bindings_table(self.below, self.app.BINDINGS), id="help-keys")
                yield Static(Text("Runs are engine processes of their own: quit the app (q) or lose the "
                                  "terminal and they go on; `gausynth attach RUN` opens one again with its "
                                  "whole history.", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)
