"""Writes a reconstruction the way 3DGS loaders expect it: `colmap/{input,distorted,images,sparse/0,stereo}`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from .._layout import RunLayout
from .._stage import StageError


def distorted_sparse(layout: RunLayout) -> Path:
    """Gives `colmap/distorted/sparse/0`: the model on the frames as COLMAP saw them."""
    return layout.colmap_distorted / "sparse" / "0"


def write_colmap_layout(reconstruction: Any, frames: Path, names: list[str], database: Path,
                        out: RunLayout) -> None:
    """Copies the frames into colmap/input, writes the distorted model beside database.db, and
    undistorts the registered frames into colmap/images with their model in colmap/sparse/0."""
    import pycolmap

    out.colmap_input.mkdir(parents=True, exist_ok=True)
    for name in names:
        _link_or_copy(Path(frames) / name, out.colmap_input / name)
    if Path(database).resolve() != out.colmap_database.resolve():
        out.colmap_distorted.mkdir(parents=True, exist_ok=True)
        shutil.copy2(database, out.colmap_database)
    sparse = distorted_sparse(out)
    sparse.mkdir(parents=True, exist_ok=True)
    reconstruction.write(sparse)
    pycolmap.undistort_images(out.colmap, sparse, out.colmap_input, output_type="COLMAP")
    # COLMAP leaves the undistorted model directly in sparse/; loaders look in sparse/0.
    flat = out.colmap / "sparse"
    out.colmap_sparse.mkdir(parents=True, exist_ok=True)
    for entry in flat.iterdir():
        if entry.is_file():
            entry.replace(out.colmap_sparse / entry.name)
    registered = {img.name for img in reconstruction.images.values() if img.has_pose}
    missing = sorted(n for n in registered if not (out.colmap_images / n).is_file())
    if missing:
        raise StageError(f"{out.colmap_images}: undistortion did not write {missing[0]} "
                         f"({len(missing)} registered frames missing)")


def _link_or_copy(source: Path, dest: Path) -> None:
    """Hard-links a finished frame (no bytes copied; frames are never edited in place), or copies
    it where the folders are on different file systems."""
    dest.unlink(missing_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def write_layout_and_preview(reconstruction: Any, frames: Path, names: list[str], database: Path,
                             out: RunLayout, preview: Path) -> None:
    """Writes the colmap/ layout and the orbit preview video at once: the preview only reads the
    model, so it is drawn while COLMAP undistorts the frames."""
    from concurrent.futures import ThreadPoolExecutor

    from .._media import write_video
    from .preview import render_orbit

    with ThreadPoolExecutor(1) as pool:
        video = pool.submit(write_video, preview, render_orbit(reconstruction), fps=24)
        write_colmap_layout(reconstruction, frames, names, database, out)
        video.result()
