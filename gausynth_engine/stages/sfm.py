"""sfm: structure from motion on the original frames with pycolmap, into the colmap/ layout."""

from __future__ import annotations

from dataclasses import dataclass

from .._params import param
from .._stage import Stage


@dataclass(frozen=True)
class Params:
    matcher: str = param("sequential", "Feature matching: in video order (with loop closure) or all pairs.",
                         choices=("sequential", "exhaustive"))
    mapper: str = param("incremental", "Mapping: incremental (COLMAP) or global (GLOMAP).",
                        choices=("incremental", "global"))
    min_registered: float = param(0.9, "Fraction of frames that must get a pose, or the stage fails.",
                                  min=0.0, max=1.0)


STAGE = Stage(
    id="sfm",
    title="Structure from motion",
    section="sfm",
    after=("preprocess",),
    outputs=("colmap", "new_videos/colmap.mp4"),
    version=1,
    run=None,
    pending_issue="issue 8",
)
