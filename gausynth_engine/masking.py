"""Model-free object masks: the SfM points that turn with the object, a static backdrop, GrabCut.

Used where no background-removal weights exist. Three cues, each honest about what it knows:
- the SfM points (what was matched across views, i.e. what moved like a rigid object under the
  cameras) projected into each frame give a rough silhouette: disks around the projections,
  closed and hole-filled;
- a static backdrop: on a turntable (or an object turned in hand) the backdrop stays put in
  image space while the object turns, so pixels that match the clip's per-pixel median in a
  frame are backdrop there;
- OpenCV's GrabCut refines the rough silhouette to the frame's colour edges, with the static
  pixels and what lies far from the points as sure background.

All images are RGB uint8 [H, W, 3]; masks float32 [H, W] in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WORK_SIDE = 320  # longest side at which masks are computed, px (then upsampled)
STATIC_SIDE = 160  # longest side of the static-backdrop analysis, px


@dataclass(frozen=True)
class Backdrop:
    """The clip's static backdrop at low resolution.

    median: float32 [h, w, 3] per-pixel temporal median (0–255); spread: float32 [h, w]
    per-pixel median absolute deviation over time; static_share: the fraction of frame pixels
    that stay within tolerance of the median in at least 70 % of the frames.
    """

    median: np.ndarray
    spread: np.ndarray
    static_share: float
    tolerance: float

    def static_in(self, frame: np.ndarray) -> np.ndarray:
        """Gives bool [H, W] (the frame's size): pixels where this frame shows the backdrop."""
        import cv2

        small = _small(frame, self.median.shape[1], self.median.shape[0])
        diff = np.abs(small - self.median).max(axis=2)
        static = (diff < self.tolerance) & (self.spread < self.tolerance)
        static = cv2.morphologyEx(static.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        return cv2.resize(static, (frame.shape[1], frame.shape[0]),
                          interpolation=cv2.INTER_NEAREST).astype(bool)


def _small(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    small = cv2.resize(frame[..., :3], (width, height), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small.astype(np.float32), (3, 3), 0)


def find_backdrop(frames: list[np.ndarray], tolerance: float = 14.0) -> Backdrop:
    """Gives the static backdrop of a clip of same-sized RGB frames (at least 3)."""
    h, w = frames[0].shape[:2]
    scale = STATIC_SIDE / max(h, w)
    sw, sh = max(8, round(w * scale)), max(8, round(h * scale))
    stack = np.stack([_small(f, sw, sh) for f in frames])  # [F, h, w, 3]
    median = np.median(stack, axis=0)
    diff = np.abs(stack - median).max(axis=3)  # [F, h, w]
    spread = np.median(diff, axis=0)
    static_share = float(((diff < tolerance).mean(axis=0) >= 0.7).mean())
    return Backdrop(median.astype(np.float32), spread.astype(np.float32), static_share, tolerance)


def points_silhouette(points2d: np.ndarray, width: int, height: int, radius: float) -> np.ndarray:
    """Gives bool [H, W]: disks of `radius` px around the points [P, 2] (px), closed and filled.

    Components holding fewer than 2 % of the points are dropped (stray matches).
    """
    import cv2

    canvas = np.zeros((height, width), np.uint8)
    inside = (points2d[:, 0] >= 0) & (points2d[:, 0] < width) & (points2d[:, 1] >= 0) \
        & (points2d[:, 1] < height)
    pts = np.round(points2d[inside]).astype(np.int32)
    pts = np.clip(pts, 0, [width - 1, height - 1])  # 239.6 rounds to 240 in a 240-px frame
    r = max(1, round(radius))
    for x, y in pts:
        cv2.circle(canvas, (int(x), int(y)), r, 1, -1)
    k = 2 * r + 1
    canvas = cv2.morphologyEx(canvas, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    canvas = fill_holes(canvas)
    count, labels = cv2.connectedComponents(canvas)
    if count > 2 and len(pts):
        votes = np.bincount(labels[pts[:, 1], pts[:, 0]], minlength=count)
        keep = votes >= max(1, 0.02 * len(pts))
        keep[0] = False
        canvas = keep[labels].astype(np.uint8)
    return canvas.astype(bool)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Gives the uint8 mask with every hole (background not connected to the border) filled."""
    import cv2

    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = mask > 0
    flood = padded.copy()
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    holes = flood == 0
    padded[holes] = 1
    return padded[1:-1, 1:-1]


def point_spacing(points2d: np.ndarray, width: int, height: int) -> float:
    """Gives the typical distance between neighbouring projected points, px (median NN distance)."""
    from scipy.spatial import cKDTree

    inside = (points2d[:, 0] >= 0) & (points2d[:, 0] < width) & (points2d[:, 1] >= 0) \
        & (points2d[:, 1] < height)
    pts = points2d[inside]
    if len(pts) < 4:
        return 0.05 * max(width, height)
    d, _ = cKDTree(pts).query(pts, k=2)
    return float(np.median(d[:, 1]))


def object_mask(frame: np.ndarray, points2d: np.ndarray, backdrop: Backdrop | None = None,
                grabcut: bool = True, iterations: int = 4) -> np.ndarray:
    """Gives the object's alpha float32 [H, W] in a frame from its projected SfM points [P, 2] (px)."""
    import cv2

    h, w = frame.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    sw, sh = max(8, round(w * scale)), max(8, round(h * scale))
    small = cv2.resize(frame[..., :3], (sw, sh), interpolation=cv2.INTER_AREA)
    pts = points2d * scale
    spacing = point_spacing(pts, sw, sh)
    radius = float(np.clip(2.5 * spacing, 2.0, 0.08 * max(sw, sh)))
    rough = points_silhouette(pts, sw, sh, radius)
    if not rough.any():
        return np.zeros((h, w), np.float32)
    static = backdrop.static_in(small) if backdrop is not None else np.zeros((sh, sw), bool)
    if grabcut:
        near = cv2.dilate(rough.astype(np.uint8), np.ones((3, 3), np.uint8),
                          iterations=max(2, round(radius))).astype(bool)
        core = cv2.erode(rough.astype(np.uint8), np.ones((3, 3), np.uint8),
                         iterations=max(1, round(radius))).astype(bool)
        gc = np.full((sh, sw), cv2.GC_BGD, np.uint8)
        gc[near] = cv2.GC_PR_BGD
        gc[rough] = cv2.GC_PR_FGD
        gc[core & ~static] = cv2.GC_FGD
        gc[static & ~core] = cv2.GC_BGD
        if (gc == cv2.GC_FGD).any() or (gc == cv2.GC_PR_FGD).any():
            bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
            try:
                # GrabCut's k-means start draws from this thread's RNG: seeded per frame, the
                # mask is the same on every run whichever pool thread makes it.
                cv2.setRNGSeed(0)
                cv2.grabCut(np.ascontiguousarray(small), gc, None, bgd, fgd, iterations,
                            cv2.GC_INIT_WITH_MASK)
                refined = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
            except cv2.error:  # a degenerate colour model (e.g. one flat colour): keep the rough one
                refined = rough & ~static
        else:
            refined = rough & ~static
    else:
        refined = rough & ~static
    refined = fill_holes(largest_parts(refined.astype(np.uint8)))
    alpha = cv2.resize(refined.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    sigma = max(0.5, 0.5 / scale)
    alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)
    return np.clip(alpha, 0.0, 1.0).astype(np.float32)


def largest_parts(mask: np.ndarray, share: float = 0.05) -> np.ndarray:
    """Gives the uint8 mask keeping only components with at least `share` of the largest's area."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    if count <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(count, bool)
    keep[1:] = areas >= share * areas.max()
    return keep[labels].astype(np.uint8)


def object_points(xyz: np.ndarray, track_lengths: np.ndarray | None = None,
                  min_track: int = 3, outlier_quantile: float = 0.98) -> np.ndarray:
    """Gives bool [P]: the SfM points trusted for masks (long tracks, not far-flung outliers)."""
    keep = np.ones(len(xyz), bool)
    if track_lengths is not None and (track_lengths >= min_track).sum() >= 20:
        keep &= track_lengths >= min_track
    if keep.sum() >= 20:
        centre = np.median(xyz[keep], axis=0)
        dist = np.linalg.norm(xyz - centre, axis=1)
        keep &= dist <= np.quantile(dist[keep], outlier_quantile)
    return keep


def orbit_degrees(viewmats: np.ndarray) -> float:
    """Gives the largest angle (degrees) between two cameras' viewing directions [V, 4, 4] w2c."""
    dirs = viewmats[:, 2, :3]  # each camera's +z axis in world coordinates
    cos = np.clip(dirs @ dirs.T, -1.0, 1.0)
    return float(np.degrees(np.arccos(cos.min())))
