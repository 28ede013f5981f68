"""Preview-video timing: the one rule for the frame rate of every preview video.

A preview of N frames plays at the rate that makes it last as long as the input clip did
(input frames / input fps), kept between 1 and 60 fps. Where the clip's timing is unknown (a
run folder from before preprocess recorded it), each caller names its own fallback rate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._layout import RunLayout

MIN_FPS, MAX_FPS = 1.0, 60.0


def clip_fps(frames: int, input_frames: Any, input_fps: Any, fallback: float) -> float:
    """Gives the rate at which `frames` frames last as long as the input clip; `fallback` if unknown."""
    if not input_fps or not input_frames:
        return fallback
    return min(MAX_FPS, max(MIN_FPS, frames / (input_frames / input_fps)))


def record_fps(record: dict[str, Any] | None, frames: int, fallback: float) -> float:
    """Gives `clip_fps` from preprocess's recorded timing (`input_frames`, `fps`)."""
    record = record or {}
    return clip_fps(frames, record.get("input_frames"), record.get("fps"), fallback)


def preview_fps(layout: RunLayout, frames: int, fallback: float = 30.0) -> float:
    """Gives the preview rate of `frames` frames from the preprocess record of a run folder."""
    from ._manifest import read_manifest

    return record_fps((read_manifest(layout, "preprocess") or {}).get("record"), frames, fallback)
