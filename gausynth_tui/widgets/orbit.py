"""The orbit of a trained splat, turning in the terminal.

The frames are rendered by the engine from the trained model (`viewer.orbit.orbit_frames`:
gsplat on a GPU, the pure-PyTorch rasterizer on the CPU; small, and kept beside the run so they
are rendered once) in a worker thread, then cycled a few times a second: with half blocks, or
with the Kitty/sixel protocol when the terminal speaks one (`graphics.detect`).
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.containers import Vertical
from textual.widgets import Static

from .image import HalfBlocks

FPS = 6
FRAMES = 24
SIZE = 96  # px, the long side: the CPU rasterizer renders 24 such frames in seconds


class OrbitView(Vertical):
    """Shows the orbit of one model of a run; `show(layout, model)` starts rendering it."""

    DEFAULT_CSS = "OrbitView { height: 1fr; width: 1fr; } OrbitView > Static { height: 1fr; }"

    def __init__(self, protocol: str = "halfblocks", **kwargs) -> None:
        super().__init__(**kwargs)
        self.protocol = protocol
        self.frames: list = []  # PIL images
        self.index = 0
        self.model = None
        self._picture = None
        self._timer = None

    def compose(self):
        yield Static(Text("", style="dim"), id="orbit-text")

    def show(self, layout, model) -> None:
        """Renders (or reads back) the model's orbit in a worker, then turns it."""
        if model == self.model:
            return  # already shown, or being rendered
        self.model, self.frames, self.index = model, [], 0
        self.query_one("#orbit-text", Static).update(
            Text(f"rendering the orbit of {model.path.name} …", style="dim"))
        self.render_frames(layout, model)

    @work(thread=True, exclusive=True, group="orbit")
    def render_frames(self, layout, model) -> None:
        from PIL import Image

        from gausynth_engine.viewer.orbit import orbit_frames

        try:
            files = orbit_frames(layout, model, FRAMES, SIZE)
            frames = [Image.open(f).convert("RGB") for f in files]
        except Exception as e:  # noqa: BLE001 - said in the pane, the app goes on
            self.app.call_from_thread(self._failed, model, f"{type(e).__name__}: {e}")
            return
        self.app.call_from_thread(self._ready, model, frames)

    def _failed(self, model, why: str) -> None:
        if model == self.model:
            self.query_one("#orbit-text", Static).update(Text(f"no orbit: {why}", style="red"))

    def _ready(self, model, frames: list) -> None:
        if model != self.model:
            return  # another model was chosen meanwhile
        self.frames, self.index = frames, 0
        if self.protocol in ("kitty", "sixel") and self._picture is None:
            from .graphics import image_widget

            self._picture = image_widget(self.protocol, frames[0], id="orbit-picture")
            self.query_one("#orbit-text", Static).display = False
            self.mount(self._picture)
        if self._timer is None:  # timers only once there is something to turn
            self._timer = self.set_interval(1 / FPS, self.advance)
        self.advance()

    def advance(self) -> None:
        """Draws the next frame."""
        if not self.frames:
            return
        frame = self.frames[self.index % len(self.frames)]
        self.index += 1
        if self._picture is not None:
            self._picture.image = frame
        else:
            self.query_one("#orbit-text", Static).update(HalfBlocks(frame))
