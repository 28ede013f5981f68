"""The 3D-route bench's surface restyle is a truth that the views agree on, unlike the image
filters: where two cameras 30° apart see the same point of the sample, the restyled views show
(nearly) the same colour there, while the cartoon filter's ink and posterising, drawn from each
image's own edges, differ — which is why the filters cap what a consistent transfer can score."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[2])]

from bench.reimagine3d import cartoon_hue, surface_texture  # noqa: E402
from gausynth_engine._sample import SampleSpec, _intersect, orbit_cameras, render_view  # noqa: E402


def project(K: np.ndarray, w2c: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cam = p @ w2c[:3, :3].T + w2c[:3, 3]
    uv = (cam @ K.T)[:, :2] / cam[:, 2:]
    return uv[:, 1].astype(int), uv[:, 0].astype(int)


def test_the_surface_restyle_agrees_between_views_where_the_cartoon_filter_does_not() -> None:
    spec = SampleSpec(width=96, height=72)
    K, poses = orbit_cameras(spec)
    a, b = poses[0], poses[len(poses) // 12]  # 30° apart on the orbit
    # Surface points at view a's pixel centres that view b sees too (not hidden).
    ys, xs = np.mgrid[4:spec.height - 4:3, 4:spec.width - 4:3]
    rays = np.stack([(xs + 0.5 - K[0, 2]) / K[0, 0], (ys + 0.5 - K[1, 2]) / K[1, 1], np.ones_like(xs)],
                    -1).reshape(-1, 3).astype(float) @ a[:3, :3]
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    eye_a, eye_b = (-w[:3, :3].T @ w[:3, 3] for w in (a, b))
    t, hit, _ = _intersect(np.broadcast_to(eye_a, rays.shape), rays)
    points = eye_a + t[hit, None] * rays[hit]
    to_b = points - eye_b
    t_b, _, _ = _intersect(np.broadcast_to(eye_b, to_b.shape),
                           to_b / np.linalg.norm(to_b, axis=1, keepdims=True))
    points = points[np.abs(t_b - np.linalg.norm(to_b, axis=1)) < 1e-6]
    assert len(points) > 150

    def disagreement(view: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:  # per point: the largest channel difference
        at_a, at_b = view(a)[project(K, a, points)], view(b)[project(K, b, points)]
        return np.abs(at_a.astype(int) - at_b.astype(int)).max(1)

    surface = disagreement(lambda w: render_view(K, w, spec.width, spec.height, surface_texture))
    cartoon = disagreement(lambda w: cartoon_hue(render_view(K, w, spec.width, spec.height)))
    assert np.median(surface) <= 4 and np.median(cartoon) >= 30, (np.median(surface), np.median(cartoon))
    assert (surface <= 12).mean() > 2 * (cartoon <= 12).mean()
    # …and it is a restyle, not the original: palette and stripes change most of the object.
    original = render_view(K, a, spec.width, spec.height)
    restyled = render_view(K, a, spec.width, spec.height, surface_texture)
    assert np.abs(original.astype(int) - restyled.astype(int)).max(2)[project(K, a, points)].mean() > 40
