"""What every GauSynth screen shares: redraw from the store when told that runs changed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.screen import Screen

from ..messages import RunsChanged

if TYPE_CHECKING:
    from ..app import GauSynthApp


class ViewScreen(Screen):
    """A screen drawn from the app's `RunStore`; it redraws on `RunsChanged` and on resume."""

    HELP = ""  # a paragraph for the help screen

    @property
    def gapp(self) -> GauSynthApp:
        return self.app  # type: ignore[return-value]

    def refresh_view(self, keys: frozenset[str] | None = None) -> None:
        """Redraws what `keys` (None: everything) changed."""

    def tick_clock(self, seconds: float) -> None:
        """Redraws every `seconds` while shown, so "2m ago" and elapsed times move (live apps only)."""
        if self.gapp.live:
            self.set_interval(seconds, lambda: self.is_current and self.refresh_view(None))

    def on_runs_changed(self, message: RunsChanged) -> None:
        self.refresh_view(message.keys)

    def on_screen_resume(self) -> None:
        self.refresh_view(None)
