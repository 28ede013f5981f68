"""Compares SfM camera centres with known ones after the best similarity (Umeyama)."""

from __future__ import annotations

import numpy as np


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Gives (scale, R [3, 3], t [3]) minimising |dst − (scale · R · src + t)|² over points [N, 3]."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1
    R = U @ D @ Vt
    scale = float(np.trace(np.diag(S) @ D) / (a**2).sum(1).mean())
    return scale, R, mu_d - scale * R @ mu_s


def centre_error(estimated: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Gives the RMS and max distance of aligned centres [N, 3] to the true ones, also as a
    fraction of the true cameras' mean distance from their centroid (scale-free)."""
    scale, R, t = umeyama(estimated, true)
    aligned = estimated @ R.T * scale + t
    dist = np.linalg.norm(aligned - true, axis=1)
    spread = float(np.linalg.norm(true - true.mean(0), axis=1).mean())
    rms = float(np.sqrt((dist**2).mean()))
    return {"rms": rms, "max": float(dist.max()), "rms_relative": rms / spread,
            "max_relative": float(dist.max()) / spread}


def true_centres(world_to_camera: np.ndarray) -> np.ndarray:
    """Gives camera centres [N, 3] of world-to-camera matrices [N, 4, 4]."""
    R, t = world_to_camera[:, :3, :3], world_to_camera[:, :3, 3]
    return -np.einsum("nji,nj->ni", R, t)


def rotation_error(estimated: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Gives the mean and max angle (degrees) between estimated and true world-to-camera
    rotations [N, 3, 3] after the one world rotation that fits them best (chordal mean)."""
    # R_true ≈ R_est · A for one A; each camera votes A_n = R_est_nᵀ R_true_n.
    votes = np.einsum("nji,njk->nik", estimated, true)
    U, _, Vt = np.linalg.svd(votes.sum(0))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    A = U @ D @ Vt
    residual = np.einsum("ji,njk->nik", A, votes)  # Aᵀ A_n: identity when the camera agrees
    cos = np.clip((np.trace(residual, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)
    angles = np.degrees(np.arccos(cos))
    return {"mean_deg": float(angles.mean()), "max_deg": float(angles.max())}
