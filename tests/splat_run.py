"""A tiny run folder with trained-looking splats, for the viewer, export and orbit tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gausynth_engine.splatting.ply import write_ply

SIZE = 40
STAMP = "20260101-000000"


def gaussians_of(layout, sh_degree: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Opaque Gaussians at the true scene's surface points (a stand-in for a trained model)."""
    from gausynth_engine.splatting.dataset import load_scene
    from gausynth_engine.splatting.model import init_params

    scene = load_scene(layout.colmap_sparse, layout.filtered_frames_colmap)
    p = {k: v.detach().numpy() for k, v in init_params(scene.points, scene.colors, sh_degree,
                                                          scene.scene_scale(), seed=seed).items()}
    p["opacities"] = np.full_like(p["opacities"], 2.0)  # sigmoid ≈ 0.88: visible in renders
    if "shN" in p:
        p["shN"] = np.random.default_rng(seed).normal(0, 0.1, p["shN"].shape).astype(np.float32)
    return p


def add_training(layout, variant: str, params: dict[str, np.ndarray], iterations: int = 100) -> Path:
    """Writes a finished training folder `gs/<variant>_<iterations>-<STAMP>/` holding `params`."""
    folder = layout.gs_run(variant, iterations, STAMP)
    write_ply(folder / "point_cloud" / f"iteration_{iterations}" / "point_cloud.ply", params)
    (folder / "results.json").write_text(json.dumps({"evaluations": {
        f"ours_{iterations}": {"step": iterations, "num_gaussians": len(params["means"])}}}))
    return folder


def make_tiny_run(root: Path, scratch: Path, sample_video: Path):
    """Gives the layout of a run at `root`: the sample's true SfM model (12 views at SIZE²), an
    original splat and a reimagined one (the same Gaussians, another colouring)."""
    from synthetic_scene import make_true_scene, run_with_true_sfm

    scene = make_true_scene(scratch, views=12, width=SIZE, height=SIZE, points=400,
                            cameras_json=sample_video.with_suffix(".cameras.json"))
    layout = run_with_true_sfm(scene, root)
    layout.meta.mkdir(parents=True, exist_ok=True)
    orig = gaussians_of(layout)
    add_training(layout, "orig", orig)
    add_training(layout, "reim", dict(orig, sh0=-orig["sh0"]))
    return layout
