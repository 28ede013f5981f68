"""sfm: structure from motion on the original frames with pycolmap, into the colmap/ layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._params import param
from .._stage import Stage, StageContext, StageError

if TYPE_CHECKING:
    from ..sfm.bridges import InBetween
    from ..sfm.reconstruct import SfmOptions

PREVIEW = "colmap"
PHASE_UNITS = {"features": "frames (features)", "mapping": "frames registered",
               "mapping with borrowed": "frames registered (with borrowed ones)"}


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
    max_image_size: int = param(0, "Longest side SIFT sees, px; 0 = the frames' own size (larger "
                                "frames are shrunk for features only).", min=0, max=8192)
    max_features: int = param(4096, "SIFT features per frame at most (CPU matching time grows "
                              "with its square).", min=256, max=65536)
    peak_threshold: float = param(0.0, "SIFT contrast threshold; lower finds more features on "
                                  "soft, low-texture objects. 0 = chosen per clip: COLMAP's "
                                  "0.0067 where three probe frames hold enough features, else 0.004.",
                                  min=0.0, max=0.05)
    guided_matching: str = param("retry", "Match again along verified geometry (more matches on "
                                 "soft textures, slower): only in the retry, for weak pairs and "
                                 "frames left out; for every pair; or never.",
                                 choices=("retry", "always", "never"))
    camera_model: str = param("SIMPLE_RADIAL", "COLMAP camera model of the frames.",
                              choices=("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV"))
    single_camera: bool = param(True, "One camera shared by all frames (a video, one lens and "
                                "zoom); false = a camera per frame.")
    focal_length_px: float = param(0.0, "Known focal length in pixels of the input as given (a "
                                   "calibration); 0 = from the photos' EXIF where it says enough, "
                                   "else estimated.", min=0.0, max=1e6)
    sensor_width_mm: float = param(0.0, "Sensor width, mm: turns an EXIF focal length in mm into "
                                   "pixels when the photos lack a 35 mm equivalent; 0 = unknown.",
                                   min=0.0, max=100.0)
    fix_focal_length: bool = param(False, "Keep a known focal length as given (a trusted "
                                   "calibration) instead of refining it from there.")
    refine_principal_point: bool = param(False, "Let bundle adjustment move the principal point "
                                         "off the frame's centre.")
    mask_folder: str = param("", "Folder of feature masks named like the frames (white or alpha = "
                             "object): features stay off the rest; empty = none.")
    backdrop_mask: bool = param(False, "Keep features off pixels that never change over the "
                                "frames (the fixed backdrop of a turntable capture).")
    retry: bool = param(True, "When frames are left out: match them against frames all around "
                        "the object and map again, from a strict then a relaxed start.")
    bridge_frames: int = param(100, "When frames are left out: how many of the input's frames "
                               "between the sampled ones may join SfM to link them (they help "
                               "posing only and leave the model); 0 = none.", min=0, max=5000)


def options(p: Params, focal_length_px: float = 0.0, masks: Path | None = None,
            device: str = "auto") -> SfmOptions:
    """Gives the reconstruction options of a preset section (the focal length already in the
    frames' pixels)."""
    from ..sfm.reconstruct import SfmOptions

    return SfmOptions(matcher=p.matcher, mapper=p.mapper, overlap=p.overlap,
                      max_image_size=p.max_image_size, max_features=p.max_features,
                      peak_threshold=p.peak_threshold, guided=p.guided_matching,
                      camera_model=p.camera_model, single_camera=p.single_camera,
                      focal_length_px=focal_length_px, fix_focal_length=p.fix_focal_length,
                      refine_principal_point=p.refine_principal_point, masks=masks,
                      device=device, retry=p.retry)


def known_focal(ctx: StageContext, frame_size: tuple[int, int]) -> tuple[float, str]:
    """Gives (focal length in the SfM frames' pixels, where it came from), (0, "") if unknown."""
    from .._media import list_images
    from ..sfm.intrinsics import exif_focal_px, scale_to_frames

    p: Params = ctx.params
    pre = ctx.upstream("preprocess").record
    square = getattr(ctx.preset.preprocess, "square", "crop")
    input_size = tuple(pre.get("input_size") or frame_size)
    if p.focal_length_px > 0:
        scale = scale_to_frames(input_size, frame_size, square)
        return p.focal_length_px * scale, f"sfm.focal_length_px = {p.focal_length_px:g} (input px)"
    source = ctx.preset.input_path
    if pre.get("input_kind") != "images" or not Path(source).is_dir():
        return 0.0, ""
    photos = list_images(source)
    index = (pre.get("source_indices") or [0])[0]
    if not photos or index >= len(photos):
        return 0.0, ""
    found = exif_focal_px(photos[index], p.sensor_width_mm)
    if found is None:
        return 0.0, ""
    focal, why = found
    return focal * scale_to_frames(input_size, frame_size, square), why


def in_between(ctx: StageContext, frame_size: tuple[int, int]) -> InBetween | None:
    """Gives the input's frames that preprocess did not sample, read at the SfM frames' size,
    or None when it sampled every frame (or the preset lends none)."""
    from .._media import probe_input, read_frames
    from ..framing import resize
    from ..sfm.bridges import InBetween

    p: Params = ctx.params
    pre = ctx.upstream("preprocess").record
    positions, count = pre.get("source_indices") or [], int(pre.get("input_frames") or 0)
    if p.bridge_frames == 0 or not positions or count <= len(positions):
        return None
    source = ctx.preset.input_path

    def read(indices: list[int]) -> list:
        info = probe_input(source)
        frames = {i: resize(image[..., :3], *frame_size) for i, image in read_frames(info, indices)}
        return [frames[i] for i in indices]

    return InBetween(tuple(positions), count, read, budget=p.bridge_frames)


def run(ctx: StageContext) -> None:
    import shutil
    import time

    from ..sfm.features import static_backdrop_masks, user_masks
    from ..sfm.layout import write_layout_and_preview
    from ..sfm.reconstruct import check_frames, reconstruct

    p: Params = ctx.params
    frames = ctx.layout.filtered_frames_colmap

    def progress(phase: str, value: int, total: int) -> None:
        ctx.progress(value, total, PHASE_UNITS.get(phase, phase), force=phase.startswith("mapping"))

    names, size = check_frames(frames, p.single_camera)
    focal, focal_from = known_focal(ctx, size)
    if focal:
        ctx.log(f"focal length {focal:.1f} px ({focal_from}), "
                f"{'fixed' if p.fix_focal_length else 'a prior, refined'}")
    masks = None
    work_masks = ctx.out.colmap_distorted / "masks"
    if p.mask_folder:
        masks = user_masks(Path(p.mask_folder).expanduser(), frames, names, work_masks)
    elif p.backdrop_mask:
        masks, masked = static_backdrop_masks(frames, names, work_masks)
        ctx.log(f"static backdrop: {masked:.0%} of each frame kept free of features")
    result = reconstruct(frames, ctx.out.colmap_distorted,
                         options(p, focal, masks, ctx.preset.run.device), progress=progress,
                         log=ctx.log, in_between=in_between(ctx, size))
    shutil.rmtree(work_masks, ignore_errors=True)
    stats = result.stats()
    registered = {im.name for im in result.reconstruction.images.values() if im.has_pose}
    missing = [n for n in result.image_names if n not in registered]
    camera = next(iter(result.reconstruction.cameras.values()))
    ctx.record(**stats, attempts=result.attempts, unregistered=missing,
               camera_model=p.camera_model, mapper_used=result.mapper, sift_device=result.device,
               peak_threshold=result.peak_threshold,
               focal_length_px=round(float(camera.mean_focal_length()), 3),
               bridge_frames=max((a.get("bridge_frames", 0) for a in result.attempts), default=0),
               focal_prior_px=round(focal, 3) if focal else None, focal_prior_from=focal_from or None)
    for name in ("registered", "registered_fraction", "points3d", "mean_reprojection_error_px", "mean_track_length"):
        ctx.metric(name, stats[name])
    if result.fraction < p.min_registered:
        message = (f"sfm registered {stats['registered']}/{stats['total']} frames "
                   f"({result.fraction:.0%}), below sfm.min_registered = {p.min_registered:g}; "
                   f"unregistered: {', '.join(missing[:8])}{' …' if len(missing) > 8 else ''}")
        if not p.allow_low_registration:
            raise StageError(message + "; try sfm.matcher = 'exhaustive', sfm.peak_threshold = "
                             "0.003 (more features), or set sfm.allow_low_registration = true")
        ctx.log(message, "warning")
    ctx.log(f"registered {stats['registered']}/{stats['total']} ({result.mapper}), "
            f"{stats['points3d']} points, reprojection {stats['mean_reprojection_error_px']:.3f} px, "
            f"track length {stats['mean_track_length']:.2f}")
    started = time.monotonic()
    write_layout_and_preview(result.reconstruction, frames, result.image_names,
                             ctx.out.colmap_database, ctx.out, ctx.out.video(PREVIEW))
    ctx.log(f"undistorted layout and preview: {time.monotonic() - started:.1f} s")
    ctx.artifact(ctx.out.video(PREVIEW), "video")


STAGE = Stage(
    id="sfm",
    title="Structure from motion",
    section="sfm",
    params=Params,
    after=("preprocess",),
    outputs=("colmap", "new_videos/colmap.mp4"),
    version=3,
    run=run,
)
