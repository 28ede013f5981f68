"""A turntable-style capture for tests: the generated object seen from its true orbit cameras, in
front of a textured backdrop that stays fixed in image space (as when the object turns and the
camera does not). With the true silhouettes, so masks and 3DGS renders can be scored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from synthetic_scene import make_true_scene, run_with_true_sfm, true_cameras

from gausynth_engine._layout import RunLayout
from gausynth_engine._media import read_image, write_image
from gausynth_engine._sample import _intersect, pixel_rays


def silhouette(K: np.ndarray, w2c: np.ndarray, width: int, height: int) -> np.ndarray:
    """Gives bool [H, W]: the pixels whose ray hits the object (sphere on a box)."""
    _, hit, _ = _intersect(*pixel_rays(K, w2c, width, height))
    return hit.reshape(height, width)


def backdrop(width: int, height: int, seed: int = 3) -> np.ndarray:
    """Gives RGB uint8 [H, W, 3]: a busy fixed backdrop (stripes and blobs in strong colours)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.stack([0.5 + 0.5 * np.sin(xs / (3.0 + c) + ys / (5.0 + 2 * c) + c) for c in range(3)], -1)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(3, width / 5)
        img[(xs - cx) ** 2 + (ys - cy) ** 2 < r * r] = rng.uniform(0, 1, 3)
    return (img * 255 + 0.5).astype(np.uint8)


def make_turntable_run(folder: Path, views: int = 12, size: int = 40, points: int = 500,
                       still_scene: bool = False) -> tuple[RunLayout, np.ndarray]:
    """Lays out a run folder as if preprocess and sfm had run on a turntable capture; gives
    (layout, true silhouettes bool [V, H, W]). The clean object-over-white views stay in
    `folder/clean/` (the truth a masked 3DGS should render). `still_scene`: the backdrop slides
    across the frame from view to view instead, as a still room does past a moving camera."""
    scene = make_true_scene(folder / "scene", views=views, width=size, height=size, points=points)
    K, poses = true_cameras(None, views, size, size)
    back = backdrop(size, size)
    clean = folder / "clean"
    masks = []
    for i, path in enumerate(sorted(scene[1].iterdir())):
        image = read_image(path)
        inside = silhouette(K, poses[i], size, size)
        masks.append(inside)
        white = image.copy()
        white[~inside] = 255
        write_image(clean / path.name, white)
        seen = np.roll(back, (size * i) // views, axis=1) if still_scene else back
        image[~inside] = seen[~inside]
        write_image(path, image)
    return run_with_true_sfm(scene, folder / "run"), np.stack(masks)
