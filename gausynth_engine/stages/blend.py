"""blend: cut out the object (rembg) and fill the reimagined frames into its silhouette."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._params import param
from .._stage import Stage

if TYPE_CHECKING:
    from .._preset import Preset


@dataclass(frozen=True)
class Params:
    remove_background: bool = param(
        True, "Cut the object out of the original frames (always on when reimagining).")
    model: str = param("u2net", "Background-removal model: a rembg model name or a local .onnx file.",
                       choices=("u2net", "isnet-general-use", "birefnet-general",
                                "birefnet-general-lite", "bria-rmbg"), open_choices=True)


def _off(preset: Preset) -> str | None:
    if preset.run.pipeline == "original" and not preset.blend.remove_background:
        return "blend.remove_background = false"
    return None


STAGE = Stage(
    id="blend",
    title="Cut out and blend",
    section="blend",
    after=("preprocess", "propagate"),
    outputs=("orig_transparent", "ebsynth_transparent", "blend_transparent"),
    version=1,
    run=None,
    off_when=_off,
    pending_issue="issue 5",
)
