"""How states look: one glyph and one colour each, the same on every screen."""

from __future__ import annotations

STATUS_STYLE = {"running": "bold yellow", "done": "green", "failed": "bold red", "cancelled": "magenta",
                "died": "bold red", "new": "dim"}

STATE_LOOK: dict[str, tuple[str, str, str]] = {
    # engine state: (glyph, word shown, style)
    "pending": ("○", "stale", "yellow"),
    "running": ("▶", "running", "bold yellow"),
    "done": ("✔", "done", "green"),
    "skipped": ("≡", "unchanged", "cyan"),
    "failed": ("✘", "failed", "bold red"),
    "cancelled": ("■", "cancelled", "magenta"),
    "off": ("·", "off", "dim"),
    "out": ("·", "not asked", "dim"),
    "unknown": (" ", "–", "dim"),
}


def bar(fraction: float, width: int) -> str:
    """Gives a text progress bar of `width` cells (eighth blocks for the partial cell)."""
    fraction = min(1.0, max(0.0, fraction))
    eighths = int(round(fraction * width * 8))
    full, part = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[part] if part and full < width else ""
    return ("█" * full + partial).ljust(width, "░")
