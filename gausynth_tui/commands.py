"""The command palette (ctrl+p): open runs, start from presets, and the screen's own actions."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider


class GauSynthCommands(Provider):
    """Every run, every bundled preset, and every binding of the screen below the palette."""

    def _commands(self) -> list[tuple[str, Callable, str]]:
        from gausynth_engine import presets_dir

        app = self.app
        out: list[tuple[str, Callable, str]] = []
        for binding in getattr(type(self.screen), "BINDINGS", []):
            if isinstance(binding, Binding) and binding.description:
                # The tooltip is the descriptive name ("Run everything stale"); the description
                # is the footer's terse label ("Stale").
                out.append((binding.tooltip or binding.description,
                            partial(self.screen.run_action, binding.action),
                            f"key {binding.key_display or binding.key}"))
        out += list(getattr(self.screen, "palette_commands", lambda: [])())
        for entry in app.store.ordered():
            out.append((f"Open run {entry.name}", partial(app.show_board, entry.key),
                        f"{entry.view.status} · {entry.layout.root}"))
        for preset in sorted(presets_dir().glob("*.toml")):
            out.append((f"New run from preset {preset.stem}", partial(app.open_editor, preset, None),
                        str(preset)))
        return out

    async def discover(self) -> Hits:
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
