"""A COLMAP scene of the generated sample from its TRUE cameras: a fixture for tests and benches.

It stands in for the SfM stage's output (`colmap/sparse/0` + `colmap/images`), so the 3DGS code
can be checked on its own: views rendered by `_sample.render_view`, one PINHOLE camera, and
surface points (with their colours) ray-cast from a few views, like a sparse SfM cloud.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from gausynth_engine._layout import RunLayout

from gausynth_engine._sample import SampleSpec, _intersect, albedo, orbit_cameras, render_view


def surface_points(K: np.ndarray, poses: np.ndarray, width: int, height: int, count: int,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gives (points [P, 3], colours [P, 3] in [0, 1]) on the object, seen by random pixels."""
    rng = np.random.default_rng(seed)
    pts, cols = [], []
    per_view = max(1, 4 * count // len(poses))
    for w2c in poses:
        R, t = w2c[:3, :3], w2c[:3, 3]
        eye = -R.T @ t
        xs, ys = rng.uniform(0, width, per_view), rng.uniform(0, height, per_view)
        pix = np.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], np.ones(per_view)], 1)
        dirs = pix @ R
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        origins = np.broadcast_to(eye, dirs.shape)
        tt, hit, _ = _intersect(origins, dirs)
        p = origins[hit] + tt[hit, None] * dirs[hit]
        pts.append(p)
        cols.append(albedo(p) * 0.8)
    points, colours = np.concatenate(pts), np.concatenate(cols)
    keep = rng.permutation(len(points))[:count]
    return points[keep], np.clip(colours[keep], 0, 1)


def true_cameras(cameras_json: Path | None, views: int, width: int, height: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Gives (K [3, 3] at width × height, world_to_camera [views, 4, 4]): `views` cameras spread
    evenly over a sample's `turnaround.cameras.json`, or over the default sample's orbit."""
    if cameras_json is None:
        return orbit_cameras(SampleSpec(frames=views, width=width, height=height))
    data = json.loads(Path(cameras_json).read_text(encoding="utf-8"))
    K = np.array(data["K"], dtype=np.float64)
    K[0] *= width / data["width"]
    K[1] *= height / data["height"]
    frames = data["frames"]
    picks = [frames[i * len(frames) // views] for i in range(views)]
    return K, np.array([f["world_to_camera"] for f in picks], dtype=np.float64)


def make_true_scene(folder: Path, views: int = 24, width: int = 64, height: int = 64,
                    points: int = 2000, workers: int = 1, cameras_json: Path | None = None
                    ) -> tuple[Path, Path]:
    """Writes `folder/sparse/0` (COLMAP binary) and `folder/images/NNNN.png`; gives both paths.

    The cameras are a sample's true ones (`cameras_json`, else `_sample.orbit_cameras`),
    scaled to width × height.
    """
    import pycolmap

    from gausynth_engine._media import frame_name, write_image

    folder = Path(folder)
    K, poses = true_cameras(cameras_json, views, width, height)
    sparse, images = folder / "sparse" / "0", folder / "images"
    sparse.mkdir(parents=True, exist_ok=True)
    images.mkdir(parents=True, exist_ok=True)
    args = [(K, p, width, height) for p in poses]
    if workers > 1:
        from multiprocessing import Pool

        pool = Pool(workers)
        try:
            rendered = pool.starmap(render_view, args)
        finally:  # close, not terminate: workers that get SIGTERM print stack traces
            pool.close()
            pool.join()
    else:
        rendered = [render_view(*a) for a in args]
    rec = pycolmap.Reconstruction()
    cam = pycolmap.Camera(model="PINHOLE", width=width, height=height, camera_id=1,
                          params=[K[0, 0], K[1, 1], K[0, 2], K[1, 2]])
    rec.add_camera_with_trivial_rig(cam)
    for i, (w2c, image) in enumerate(zip(poses, rendered, strict=True)):
        name = frame_name(i, views)
        write_image(images / name, image)
        rec.add_image_with_trivial_frame(pycolmap.Image(name=name, camera_id=1, image_id=i + 1),
                                         pycolmap.Rigid3d(w2c[:3, :]))
    xyz, rgb = surface_points(K, poses, width, height, points)
    for p, c in zip(xyz, rgb, strict=True):
        rec.add_point3D(p, pycolmap.Track(), (c * 255 + 0.5).astype(np.uint8))
    rec.write(str(sparse))
    return sparse, images


def run_with_true_sfm(scene: tuple[Path, Path], root: Path) -> RunLayout:
    """Gives a run folder laid out as if preprocess and sfm had run, from a true scene.

    The true COLMAP model goes where the sfm stage writes its undistorted and distorted models,
    the views where preprocess writes the SfM frames (the cameras have no distortion).
    """
    import shutil

    from gausynth_engine._layout import RunLayout
    from gausynth_engine.sfm.layout import distorted_sparse

    sparse, images = scene
    layout = RunLayout(Path(root))
    for model in (layout.colmap_sparse, distorted_sparse(layout)):
        shutil.copytree(sparse, model)
    shutil.copytree(images, layout.filtered_frames_colmap)
    return layout
