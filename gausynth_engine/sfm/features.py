"""Gives SIFT features to COLMAP: camera set-up (known intrinsics as a prior), feature masks, device.

Masks follow COLMAP's convention: `<mask folder>/<frame name>.png`, black where no feature may be.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._stage import StageError

if TYPE_CHECKING:
    from .reconstruct import SfmOptions

# Parameters after the focal length(s) and the principal point, per camera model (zeros: no
# distortion to start from).
_EXTRA = {"SIMPLE_PINHOLE": 0, "PINHOLE": 0, "SIMPLE_RADIAL": 1, "RADIAL": 2, "OPENCV": 4}
_TWO_FOCALS = {"PINHOLE", "OPENCV"}


def sift_device(requested: str, log: Any = None) -> Any:
    """Gives the pycolmap Device for SIFT: CUDA when this pycolmap build has it and a GPU is
    asked for or `auto`; the CPU otherwise (a CPU build asked for CUDA says so once)."""
    import pycolmap

    if requested == "cpu":
        return pycolmap.Device.cpu
    if not getattr(pycolmap, "has_cuda", False):
        if requested == "cuda" and log is not None:
            log("run.device = 'cuda' but this pycolmap is the CPU build: SIFT runs on the CPU "
                "(pip uninstall pycolmap && pip install pycolmap-cuda12 for CUDA SIFT)", "warning")
        return pycolmap.Device.cpu
    if not _visible_cuda_devices():
        # A CUDA build with no GPU in sight (none in the box, or CUDA_VISIBLE_DEVICES empty, as
        # the queue gives CPU stages): COLMAP's `auto` would still ask CUDA and stop.
        if requested == "cuda" and log is not None:
            log("run.device = 'cuda' but no CUDA device is visible here: SIFT runs on the CPU", "warning")
        return pycolmap.Device.cpu
    return pycolmap.Device.cuda if requested == "cuda" else pycolmap.Device.auto


def _visible_cuda_devices() -> int:
    """Gives the CUDA devices this process may use (CUDA_VISIBLE_DEVICES applied)."""
    import torch

    return torch.cuda.device_count()


def camera_params(model: str, width: int, height: int, focal: float) -> str:
    """Gives COLMAP's camera_params string for a known focal length (px) with the principal
    point at the frame's centre and no distortion to start from."""
    if model not in _EXTRA:
        raise StageError(f"sfm.camera_model = {model!r}: accepted {', '.join(_EXTRA)}")
    focals = [focal, focal] if model in _TWO_FOCALS else [focal]
    values = focals + [width / 2, height / 2] + [0.0] * _EXTRA[model]
    return ",".join(f"{v:.6g}" for v in values)


def extract(database: Path, images: Path, names: list[str], opts: SfmOptions,
            size: tuple[int, int], masks: Path | None, device: Any) -> None:
    """Writes SIFT keypoints and descriptors of `names` into `database` (frames of `size` (w, h))."""
    import pycolmap

    extraction = pycolmap.FeatureExtractionOptions()
    # 0 = the frames' own size: preprocess already chose it, shrinking again only loses features.
    extraction.max_image_size = opts.max_image_size or max(size)
    extraction.sift.max_num_features = opts.max_features
    extraction.sift.peak_threshold = opts.peak_threshold  # > 0: reconstruct resolves 0 (probe) first
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = opts.camera_model
    reader.default_focal_length_factor = opts.focal_factor
    if opts.focal_length_px > 0:
        # A given focal length becomes the camera's start and is flagged as a prior, so the
        # mapper trusts it when it picks and checks the first pair.
        reader.camera_params = camera_params(opts.camera_model, *size, opts.focal_length_px)
    if masks is not None:
        reader.mask_path = str(masks)
    mode = pycolmap.CameraMode.SINGLE if opts.single_camera else pycolmap.CameraMode.PER_IMAGE
    pycolmap.extract_features(database, images, image_names=names, camera_mode=mode,
                              reader_options=reader, extraction_options=extraction, device=device)


COLMAP_PEAK_THRESHOLD = 0.0067  # COLMAP's default SIFT contrast threshold
SOFT_PEAK_THRESHOLD = 0.004  # for soft, low-texture frames (a plush toy: ~3× the features)


def choose_peak_threshold(images: Path, names: list[str], opts: SfmOptions, size: tuple[int, int],
                          masks: Path | None, device: Any, work: Path) -> tuple[float, list[int]]:
    """Gives (the SIFT contrast threshold for these frames, the probe frames' feature counts at
    COLMAP's default): the default where it already finds enough features on three frames spread
    over the clip (median ≥ min(1500, max_features / 2)), else the soft threshold. Measured: a
    plush toy 723–897 features at the default (2,254–2,592 at 0.004), kermit's felt 1,891–2,061,
    apple-video's video frames ≥ 3,808; the lower threshold costs kermit a quarter more CPU time
    in matching for no pose gained."""
    import pycolmap

    probe = sorted({names[0], names[len(names) // 2], names[-1]}, key=names.index)
    database = Path(work) / "probe.db"
    database.unlink(missing_ok=True)
    extract(database, images, probe, replace(opts, peak_threshold=COLMAP_PEAK_THRESHOLD),
            size, masks, device)
    with pycolmap.Database.open(database) as db:
        counts = [int(db.read_keypoints(im.image_id).shape[0]) for im in db.read_all_images()]
    database.unlink(missing_ok=True)
    enough = min(1500, opts.max_features // 2)
    chosen = COLMAP_PEAK_THRESHOLD if float(np.median(counts)) >= enough else SOFT_PEAK_THRESHOLD
    return chosen, counts


def user_masks(source: Path, images: Path, names: list[str], dest: Path) -> Path:
    """Writes COLMAP masks from a folder of masks named like the frames (any image type; the
    alpha channel of an RGBA cut-out, else grey > 127 = object), grown a little so features on
    the object's rim survive; gives `dest`."""
    import cv2

    from .._media import IMAGE_SUFFIXES

    source = Path(source)
    if not source.is_dir():
        raise StageError(f"{source}: no such folder of masks (sfm.mask_folder)")
    by_stem = {p.stem: p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = by_stem.get(Path(name).stem)
        if path is None:
            raise StageError(f"{source}: no mask for frame {name} (sfm.mask_folder needs one "
                             "mask per frame, named like the frame)")
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise StageError(f"{path}: not a readable image (sfm.mask_folder)")
        alpha = raw[..., 3] if raw.ndim == 3 and raw.shape[2] == 4 else (
            cv2.cvtColor(raw, cv2.COLOR_BGR2GRAY) if raw.ndim == 3 else raw)
        frame = cv2.imread(str(Path(images) / name), cv2.IMREAD_GRAYSCALE)
        h, w = frame.shape[:2]
        keep = cv2.resize((alpha > 127).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        _write_mask(dest / f"{name}.png", keep)
    return dest


def static_backdrop_masks(images: Path, names: list[str], dest: Path, threshold: float = 12.0
                          ) -> tuple[Path, float]:
    """Writes COLMAP masks that keep features off pixels that (nearly) never change over the
    frames (the fixed backdrop of a turntable capture, which moves with the camera in the
    object's frame); gives (dest, fraction of the frame masked out). Each frame's exposure is
    matched first, and "never" allows one frame in ten to differ (noise, a passing shadow). A
    moving camera changes every pixel, so there the mask keeps everything."""
    import cv2

    first = cv2.imread(str(Path(images) / names[0]), cv2.IMREAD_GRAYSCALE)
    h, w = first.shape[:2]
    scale = min(1.0, 256 / max(h, w))  # small is enough: the backdrop is large and plain
    small = (max(1, round(w * scale)), max(1, round(h * scale)))
    stack = np.stack([cv2.resize(cv2.imread(str(Path(images) / n), cv2.IMREAD_GRAYSCALE), small,
                                 interpolation=cv2.INTER_AREA).astype(np.float32) for n in names])
    median = np.median(stack, axis=0)
    gain = np.median(median) / np.maximum(np.median(stack.reshape(len(stack), -1), axis=1), 1.0)
    stack *= gain[:, None, None]
    change = np.percentile(np.abs(stack - np.median(stack, axis=0)), 90, axis=0)
    moving = (change > threshold).astype(np.uint8)
    # Grow what moves so that features at the object's rim keep their whole SIFT window.
    grow = max(3, round(0.03 * max(small)))
    moving = cv2.dilate(moving, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2))
    keep = cv2.resize(moving, (w, h), interpolation=cv2.INTER_NEAREST)
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        _write_mask(dest / f"{name}.png", keep)
    return dest, float(1.0 - keep.mean())


def _write_mask(path: Path, keep: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), keep.astype(np.uint8) * 255):
        raise StageError(f"{path}: could not write the feature mask")
