"""sfm: structure from motion on the original frames with pycolmap, into the colmap/ layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._params import param
from .._stage import Stage, StageContext, StageError

if TYPE_CHECKING:
    from ..sfm.reconstruct import SfmOptions

PREVIEW = "colmap"
PHASE_UNITS = {"features": "frames (features)", "mapping": "frames registered"}


@dataclass(frozen=True)
class Params:
    matcher: str = param("sequential", "Feature matching: in video order (with loop closure) or all pairs.",
                         choices=("sequential", "exhaustive"))
    mapper: str = param("incremental", "Mapping: incremental (COLMAP) or global (GLOMAP).",
                        choices=("incremental", "global"))
    min_registered: float = param(0.9, "Fraction of frames that must get a pose, or the stage fails.",
                                  min=0.0, max=1.0)
    allow_low_registration: bool = param(False, "Keep a model that registered fewer than "
                                         "min_registered of the frames (a warning instead of a failure).")
    overlap: int = param(10, "Sequential matching: each frame meets its next N frames (and those "
                         "2^k ahead), wrapping around the turn-around.", min=1, max=100)
    max_image_size: int = param(1600, "Longest side SIFT sees, px (larger frames are shrunk for "
                                "features only).", min=128, max=8192)
    max_features: int = param(4096, "SIFT features per frame at most (CPU matching time grows "
                              "with its square).", min=256, max=65536)
    peak_threshold: float = param(0.004, "SIFT contrast threshold; lower finds more features on "
                                  "soft, low-texture objects (COLMAP's default: 0.0067).",
                                  min=0.0005, max=0.05)
    guided_matching: bool = param(True, "Match again along each pair's verified geometry: more "
                                  "matches on soft, low-texture objects, several times slower.")
    camera_model: str = param("SIMPLE_RADIAL", "COLMAP camera model shared by all frames.",
                              choices=("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV"))
    retry: bool = param(True, "When frames are left out: match them against frames all around "
                        "the object and map again, from a strict then a relaxed start.")


def options(p: Params) -> SfmOptions:
    """Gives the reconstruction options of a preset section."""
    from ..sfm.reconstruct import SfmOptions

    return SfmOptions(matcher=p.matcher, mapper=p.mapper, overlap=p.overlap,
                      max_image_size=p.max_image_size, max_features=p.max_features,
                      peak_threshold=p.peak_threshold, guided=p.guided_matching,
                      camera_model=p.camera_model,
                      retry=p.retry)


def run(ctx: StageContext) -> None:
    from .._media import write_video
    from ..sfm.layout import write_colmap_layout
    from ..sfm.preview import render_orbit
    from ..sfm.reconstruct import reconstruct

    p: Params = ctx.params
    frames = ctx.layout.filtered_frames_colmap

    def progress(phase: str, value: int, total: int) -> None:
        ctx.progress(value, total, PHASE_UNITS.get(phase, phase), force=phase == "mapping")

    result = reconstruct(frames, ctx.out.colmap_distorted, options(p), progress=progress,
                         log=ctx.log)
    stats = result.stats()
    registered = {im.name for im in result.reconstruction.images.values() if im.has_pose}
    missing = [n for n in result.image_names if n not in registered]
    ctx.record(**stats, attempts=result.attempts, unregistered=missing,
               camera_model=p.camera_model)
    for name in ("registered", "registered_fraction", "points3d", "mean_reprojection_error_px", "mean_track_length"):
        ctx.metric(name, stats[name])
    if result.fraction < p.min_registered:
        message = (f"sfm registered {stats['registered']}/{stats['total']} frames "
                   f"({result.fraction:.0%}), below sfm.min_registered = {p.min_registered:g}; "
                   f"unregistered: {', '.join(missing[:8])}{' …' if len(missing) > 8 else ''}")
        if not p.allow_low_registration:
            raise StageError(message + "; try sfm.matcher = 'exhaustive', a lower "
                             "sfm.peak_threshold, or set sfm.allow_low_registration = true")
        ctx.log(message, "warning")
    ctx.log(f"registered {stats['registered']}/{stats['total']}, {stats['points3d']} points, "
            f"reprojection {stats['mean_reprojection_error_px']:.3f} px, "
            f"track length {stats['mean_track_length']:.2f}")
    write_colmap_layout(result.reconstruction, frames, result.image_names,
                        ctx.out.colmap_database, ctx.out)
    write_video(ctx.out.video(PREVIEW), render_orbit(result.reconstruction), fps=24)
    ctx.artifact(ctx.out.video(PREVIEW), "video")


STAGE = Stage(
    id="sfm",
    title="Structure from motion",
    section="sfm",
    after=("preprocess",),
    outputs=("colmap", "new_videos/colmap.mp4"),
    version=1,
    run=run,
)
