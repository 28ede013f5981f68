"""Images in any colour terminal: two pixels per cell with the upper-half block "▀".

Over SSH there is rarely a graphics protocol (sixel, kitty), but colour is nearly universal, so
this is the default; where an image cannot be read, or colours are off, the preview says what
the file is instead (path, size, dimensions).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from gausynth_engine import human_bytes

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi"}


@dataclass
class HalfBlocks:
    """A Rich renderable of an RGB PIL image fitted into `width` × `height` cells."""

    image: object  # PIL.Image.Image, RGB

    def fitted(self, width: int, height: int):
        img = self.image
        w, h = img.size  # type: ignore[attr-defined]
        scale = min(width / w, (height * 2) / h)
        size = (max(1, int(w * scale)), max(2, int(h * scale) // 2 * 2))
        return img.resize(size)  # type: ignore[attr-defined]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = options.height or options.max_width // 2
        img = self.fitted(options.max_width, height)
        w, h = img.size
        px = img.load()
        for y in range(0, h - 1, 2):
            for x in range(w):
                top, bottom = px[x, y], px[x, y + 1]
                yield Segment("▀", Style(color=f"rgb({top[0]},{top[1]},{top[2]})",
                                          bgcolor=f"rgb({bottom[0]},{bottom[1]},{bottom[2]})"))
            yield Segment.line()


def load_preview(path: Path):
    """Gives an RGB PIL image of an image file or a video's first frame; raises when it cannot."""
    from PIL import Image

    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        import av

        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            img = frame.to_image()
    else:
        with Image.open(path) as opened:
            opened.draft("RGB", (512, 512))  # JPEG: decode small
            img = opened.copy()
    if img.mode in ("RGBA", "LA", "P"):
        rgba = img.convert("RGBA")
        img = Image.new("RGB", rgba.size, (255, 255, 255))  # transparent shows white, like the renders
        img.paste(rgba, mask=rgba.split()[3])
    img = img.convert("RGB")
    img.thumbnail((256, 256))
    return img


def describe(path: Path, kind: str, why: str) -> Text:
    """Gives the fallback: what the file is, where, how big, and why it is not drawn."""
    try:
        size = human_bytes(path.stat().st_size)
    except OSError:
        size = "missing"
    dims = ""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        try:
            from PIL import Image

            with Image.open(path) as img:
                dims = f" · {img.size[0]}×{img.size[1]}"
        except Exception:  # noqa: BLE001 - only a detail of the description
            dims = ""
    from ..store import display_path

    return Text.assemble((f"{kind}\n", "bold"), (display_path(path), "underline"), f"\n{size}{dims}\n\n",
                         (why, "dim"))


class ImagePreview(Widget):
    """Shows one file: drawn with half blocks when possible, described otherwise."""

    DEFAULT_CSS = "ImagePreview { height: 1fr; width: 1fr; }"

    def __init__(self, draw: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.draw = draw
        self.path: Path | None = None
        self.kind = ""
        self._image = None
        self._why = ""

    def show(self, path: Path | None, kind: str = "image") -> None:
        self.path, self.kind, self._image, self._why = path, kind, None, ""
        if path is not None:
            if not path.exists():
                self._why = "the file is not there (yet)"
            elif not self.draw:
                self._why = "images are described, not drawn (--no-images)"
            elif path.suffix.lower() not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                self._why = f"{path.suffix or 'this file'} has no picture to draw; open it with its viewer"
            else:
                try:
                    self._image = load_preview(path)
                except Exception as e:  # noqa: BLE001 - any unreadable file falls back to text
                    self._why = f"cannot be drawn here ({type(e).__name__}: {e})"
        self.refresh()

    def render(self):
        if self.path is None:
            return Text("nothing to preview yet", style="dim")
        if self._image is None:
            return describe(self.path, self.kind, self._why)
        return HalfBlocks(self._image)
