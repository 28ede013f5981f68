"""Gives SfM the source's frames between sparsely sampled ones, and takes them out of the model.

A turn-around sampled sparsely (24 or 48 of 102 photos of a soft toy: 40–75° between
neighbours) leaves no SIFT match between neighbouring frames: the view graph falls apart into
chains that no mapper can join (measured on plush-dog: 24 frames at 1024 px had no verified pair
between frames of one ring; 6/24 posed). The photos between them are in the source: matched as
well, they link the chains; they only help posing and leave the model before anyone sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Reader = Callable[[list[int]], Iterable[np.ndarray]]  # source indices → RGB uint8 [H, W, 3] each


@dataclass(frozen=True)
class InBetween:
    """Where the sampled frames sit in their source and how to read the others."""

    positions: tuple[int, ...]  # [frames] each sampled frame's index in the source, increasing
    count: int  # frames in the source
    read: Reader  # gives source frames at the SfM frames' size, in the order asked
    budget: int = 100  # most frames borrowed

    def choose(self) -> list[int]:
        """Gives the source indices to borrow: those between the sampled frames (the whole loop,
        the wrap-around included), spread evenly when there are more than `budget`."""
        taken = set(self.positions)
        free = [i for i in range(self.count) if i not in taken]
        if len(free) <= self.budget:
            return free
        return [free[k * len(free) // self.budget] for k in range(self.budget)]


def bridge_name(index: int) -> str:
    """Gives the file name of the borrowed source frame `index` (never a sampled frame's name)."""
    return f"bridge-{index:06d}.png"


def write_bridges(source: InBetween, indices: list[int], names: list[str], images: Path,
                  folder: Path, masks: Path | None) -> list[str]:
    """Writes the borrowed frames beside links to the sampled ones in `folder` (one image folder
    for COLMAP) and gives their names. Where features are masked, a borrowed frame takes the
    mask of the nearest sampled frame (the same mask for a static backdrop)."""
    import shutil

    from .._media import write_image

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        link = folder / name
        if not link.exists():
            link.symlink_to(Path(images).resolve() / name)
    written = []
    for index, frame in zip(indices, source.read(indices), strict=True):
        name = bridge_name(index)
        write_image(folder / name, frame[..., :3])
        if masks is not None:
            near = int(np.argmin([min(abs(p - index), source.count - abs(p - index))
                                  for p in source.positions]))
            shutil.copyfile(masks / f"{names[near]}.png", masks / f"{name}.png")
        written.append(name)
    return written


def keep_only(model: Any, names: set[str]) -> Any:
    """Gives a copy of the reconstruction with only the frames named (posed as they were) and
    every 3D point that one of them sees, its track cut to them."""
    import pycolmap

    kept = pycolmap.Reconstruction()
    for camera in model.cameras.values():
        kept.add_camera_with_trivial_rig(camera)
    ids = set()
    for image in model.images.values():
        if image.name in names and image.has_pose:
            keypoints = np.array([p.xy for p in image.points2D], dtype=np.float64).reshape(-1, 2)
            copy = pycolmap.Image(name=image.name, keypoints=keypoints, camera_id=image.camera_id,
                                  image_id=image.image_id)
            kept.add_image_with_trivial_frame(copy, image.cam_from_world())
            ids.add(image.image_id)
    for point in model.points3D.values():
        track = pycolmap.Track()
        for element in point.track.elements:
            if element.image_id in ids:
                track.add_element(element.image_id, element.point2D_idx)
        if track.length():
            kept.add_point3D(point.xyz, track, point.color)
    kept.update_point_3d_errors()
    return kept
