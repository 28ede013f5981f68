"""Image previews of stage outputs: sheets, edge maps, key frames, frames, renders."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from gausynth_engine import list_images

from ..widgets.image import ImagePreview
from ..widgets.orbit import OrbitView
from .base import ViewScreen

# Folders of a run worth a look, with how many of their images to list (the rest is counted).
FOLDERS = (("artifacts", 12), ("orig_sheets", 8), ("reimagine_sheets", 8), ("key_frames", 16),
           ("filtered_frames_sd", 3), ("ebsynth_all", 3), ("blend_transparent", 3), ("sr_frames", 3))


def orbit_items(layout) -> list[tuple[str, Path, str]]:
    """Gives an "orbit" item per variant with a finished training (its final PLY)."""
    from gausynth_engine.viewer.models import LABELS, VARIANTS, final_model

    items = []
    for variant in VARIANTS:
        model = final_model(layout, variant)
        if model is not None:
            items.append((f"orbit · {LABELS[variant]} splat ({model.path.parents[2].name})",
                          model.path, "orbit"))
    return items


def preview_items(layout) -> tuple[list[tuple[str, Path, str]], set[Path]]:
    """Gives (label, path, kind) for the run's splat orbits, then its image folders."""
    root = layout.root
    items: list[tuple[str, Path, str]] = orbit_items(layout)
    seen: set[Path] = set()

    def rel(p: Path) -> str:
        try:
            return str(p.relative_to(root))
        except ValueError:
            return str(p)

    for name, limit in FOLDERS:
        folder = getattr(layout, name)
        images = list_images(folder) if folder.is_dir() else []
        for p in images[:limit]:
            seen.add(p)
            items.append((rel(p), p, "image"))
        if len(images) > limit:
            items.append((f"{rel(folder)}/ … {len(images) - limit} more", images[limit], "image"))
    if layout.new_videos.is_dir():
        for p in sorted(layout.new_videos.glob("*.mp4")):
            if p not in seen:
                items.append((rel(p), p, "video"))
    return items, seen


class PreviewScreen(ViewScreen):
    HELP = ("The run's pictures: what stages announced (artifacts) and the images in its folders. They "
            "are drawn with coloured half blocks (two pixels a cell); files without a picture, or when "
            "images are off, are described: path, size, dimensions. A finished splat turns as an orbit "
            "rendered from the trained model (Kitty/sixel graphics where the terminal has them).")
    BINDINGS = [Binding("escape", "back", "Board", id="previews.back"),
                Binding("p", "path", "Path", id="previews.path")]

    def __init__(self, run_key: str) -> None:
        super().__init__()
        self.run_key = run_key
        self.items: list[tuple[str, Path, str]] | None = None

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with Horizontal(id="previews"):
            yield OptionList(id="preview-list")
            with Vertical(id="preview-pane"):
                yield Static(id="preview-title")
                yield ImagePreview(draw=self.gapp.images != "off", id="preview")
                orbit = OrbitView(protocol=self.gapp.images, id="orbit")
                orbit.display = False
                yield orbit
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.refresh_view(None)
        self.query_one("#preview-list", OptionList).focus()

    def _collect(self) -> list[tuple[str, Path, str]]:
        entry = self.gapp.store.runs[self.run_key]
        root = entry.layout.root
        items: list[tuple[str, Path, str]] = []
        seen: set[Path] = set()
        for s in entry.view.stages.values():
            for a in s.artifacts:
                p = Path(a.path)
                if p in seen:
                    continue
                seen.add(p)
                label = str(p.relative_to(root)) if p.is_relative_to(root) else str(p)
                items.append((f"{s.id}: {label}", p, a.kind))
        folder_items, _ = preview_items(entry.layout)
        items += [i for i in folder_items if i[1] not in seen]
        return items

    def refresh_view(self, keys: frozenset[str] | None = None) -> None:
        if keys is not None and self.run_key not in keys:
            return
        self.sub_title = f"{self.gapp.store.runs[self.run_key].name} · images"
        items = self._collect()
        if self.items is not None and [i[1] for i in items] == [i[1] for i in self.items]:
            return
        self.items = items
        options = self.query_one("#preview-list", OptionList)
        highlighted = options.highlighted
        options.clear_options()
        options.add_options([Option(label, id=str(n)) for n, (label, _, _) in enumerate(items)])
        if items:
            options.highlighted = min(highlighted or 0, len(items) - 1)
            self._show(options.highlighted)
        else:
            self.query_one("#preview-title", Static).update(Text("no images in this run yet", style="dim"))
            self.query_one("#preview", ImagePreview).show(None)

    def _show(self, index: int | None) -> None:
        if index is None or index >= len(self.items):
            return
        label, path, kind = self.items[index]
        self.query_one("#preview-title", Static).update(Text.assemble((label, "bold"), (f"  {kind}", "dim")))
        orbit = kind == "orbit" and self.gapp.images != "off"
        self.query_one("#orbit", OrbitView).display = orbit
        self.query_one("#preview", ImagePreview).display = not orbit
        if orbit:
            from gausynth_engine.viewer.models import Model

            variant = path.parents[2].name.split("_", 1)[0]
            self.query_one("#orbit", OrbitView).show(self.gapp.store.runs[self.run_key].layout,
                                                     Model(variant, path, False))
        else:
            self.query_one("#preview", ImagePreview).show(path, kind)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show(event.option_index)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_path(self) -> None:
        options = self.query_one("#preview-list", OptionList)
        if options.highlighted is not None and self.items:
            self.notify(str(self.items[options.highlighted][1]), title="file", timeout=10)
