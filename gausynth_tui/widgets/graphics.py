"""Which image protocol this terminal speaks: Kitty's graphics protocol, sixel, or none.

Asked once, before the app starts (the terminal's answers would reach Textual's input reader
afterwards), through `textual-image`, which queries the terminal (sixel: the device
attributes; Kitty: a graphics query). `GAUSYNTH_IMAGES=kitty|sixel|halfblocks` overrides the
answer (terminals that lie, tmux). Without a TTY, without the library, or on any failure it is
"halfblocks": coloured half blocks work in any colour terminal and over SSH.
"""

from __future__ import annotations

import os
import sys

PROTOCOLS = ("kitty", "sixel", "halfblocks")


def detect() -> str:
    """Gives "kitty", "sixel" or "halfblocks" for the terminal on stdout (see the module doc)."""
    wanted = os.environ.get("GAUSYNTH_IMAGES", "").strip().lower()
    if wanted in PROTOCOLS:
        return wanted
    if not (sys.__stdout__ and sys.__stdout__.isatty() and sys.__stdin__ and sys.__stdin__.isatty()):
        return "halfblocks"
    try:
        from textual_image import renderable  # importing it asks the terminal
        from textual_image.renderable import sixel, tgp
    except Exception:  # noqa: BLE001 - no library, or a terminal that answered nonsense
        return "halfblocks"
    if renderable.Image is tgp.Image:
        return "kitty"
    if renderable.Image is sixel.Image:
        return "sixel"
    return "halfblocks"


def image_widget(protocol: str, image, **kwargs):
    """Gives a textual-image widget drawing a PIL image with `protocol` ("kitty" or "sixel")."""
    from textual_image.widget import SixelImage, TGPImage

    return (TGPImage if protocol == "kitty" else SixelImage)(image, **kwargs)
