"""Maps the SfM poses onto other versions of the frames (reimagined, cut out, or the originals).

COLMAP registered the original frames (`filtered_frames_colmap`) and undistorted them into
`colmap/images`; 3DGS trains on images that must line up pixel for pixel with the cameras of
`colmap/sparse/0`. `prepare_views` warps any same-named, same-sized set of frames exactly the
way COLMAP warped the originals (bilinear, pixel centres at +0.5, black outside), keeping alpha.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import StageError
from ._layout import RunLayout

UNDISTORTED_MODELS = ("SIMPLE_PINHOLE", "PINHOLE")


def load_models(layout: RunLayout) -> tuple[Any, Any]:
    """Gives (distorted, undistorted) pycolmap Reconstructions of a finished sfm stage."""
    import pycolmap

    from .sfm.layout import distorted_sparse

    models = []
    for folder in (distorted_sparse(layout), layout.colmap_sparse):
        if not (folder / "images.bin").is_file() and not (folder / "images.txt").is_file():
            raise StageError(f"{folder}: no COLMAP model there; run the sfm stage first")
        models.append(pycolmap.Reconstruction(folder))
    return models[0], models[1]


def undistortion_map(distorted: Any, undistorted: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Gives cv2.remap maps (x, y) [H', W'] float32 from a distorted camera's image to the
    undistorted camera's image, or None when the two are the same pinhole camera."""
    same = (distorted.model_name in UNDISTORTED_MODELS and distorted.width == undistorted.width
            and distorted.height == undistorted.height
            and np.allclose(distorted.calibration_matrix(), undistorted.calibration_matrix()))
    if same:
        return None
    w, h = undistorted.width, undistorted.height
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    pix = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], axis=1)  # COLMAP: pixel centres at +0.5
    rays = undistorted.cam_from_img(pix)
    src = distorted.img_from_cam(np.hstack([rays, np.ones((len(rays), 1))]))
    map_x = (src[:, 0] - 0.5).reshape(h, w).astype(np.float32)
    map_y = (src[:, 1] - 0.5).reshape(h, w).astype(np.float32)
    return map_x, map_y


def undistort(image: np.ndarray, maps: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """Gives `image` [H, W, C] seen by the undistorted camera, through `undistortion_map`'s maps
    (None: the same camera, the image as it is)."""
    import cv2

    if maps is None:
        return image
    return cv2.remap(image, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=0)


def prepare_views(layout: RunLayout, source_dir: Path, dest_dir: Path) -> list[str]:
    """Writes into dest_dir the frames of source_dir (reimagined, cut-out RGBA, or original
    frames, named like filtered_frames_colmap) undistorted exactly as COLMAP undistorted the
    originals into colmap/images, so they line up with the cameras of colmap/sparse/0; gives
    the image names written. Raises StageError naming the file when a registered image is
    missing from source_dir or its size differs from the frame COLMAP saw."""
    import cv2

    from ._media import read_image, write_image

    distorted, undistorted = load_models(layout)
    source_dir, dest_dir = Path(source_dir), Path(dest_dir)
    names = sorted(im.name for im in undistorted.images.values() if im.has_pose)
    by_name = {im.name: im for im in distorted.images.values()}
    # Check every file before writing any, so a refusal leaves nothing half-made.
    for name in names:
        path = source_dir / name
        if not path.is_file():
            near = sorted(p.name for p in source_dir.glob(f"{Path(name).stem}.*")) if source_dir.is_dir() else []
            hint = f" (found {near[0]}; the names must match exactly)" if near else ""
            raise StageError(f"{path}: missing; SfM registered {name} and 3DGS needs it "
                             f"in {source_dir}{hint}")
        cam = distorted.camera(by_name[name].camera_id)
        h, w = _image_size(path, cv2)
        if (w, h) != (cam.width, cam.height):
            raise StageError(f"{path}: {w}×{h} px, but COLMAP saw this frame at "
                             f"{cam.width}×{cam.height}; accepted: the same size and crop as "
                             f"{layout.filtered_frames_colmap / name}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    maps: dict[int, Any] = {}
    for name in names:
        dist_image = by_name[name]
        und_image = undistorted.find_image_with_name(name)
        key = dist_image.camera_id
        if key not in maps:
            maps[key] = undistortion_map(distorted.camera(key), undistorted.camera(und_image.camera_id))
        if maps[key] is None:
            shutil.copy2(source_dir / name, dest_dir / name)
            continue
        write_image(dest_dir / name, undistort(read_image(source_dir / name), maps[key]))
    return names


def _image_size(path: Path, cv2: Any) -> tuple[int, int]:
    """Gives (height, width) of an image file."""
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise StageError(f"{path}: not a readable image")
    return data.shape[0], data.shape[1]
