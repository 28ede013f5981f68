"""propagate: carry the reimagined key frames to every frame along the optical flow."""

from __future__ import annotations

from dataclasses import dataclass

from .._params import param
from .._stage import Stage
from ._common import off_without_reimagine


@dataclass(frozen=True)
class Params:
    flow: str = param("dis", "Dense optical flow between original frames.", choices=("dis", "farneback"))


STAGE = Stage(
    id="propagate",
    title="Propagate key frames",
    section="propagate",
    after=("preprocess", "reimagine"),
    outputs=("ebsynth_all", "new_videos/ebsynth.mp4"),
    version=1,
    run=None,
    off_when=off_without_reimagine,
    pending_issue="issue 4",
)
