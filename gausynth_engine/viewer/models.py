"""What a run has to show: each variant's final model, its live snapshot, the SfM cameras."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._layout import RunLayout
from . import live

VARIANTS = ("reim", "orig")
LABELS = {"reim": "reimagined", "orig": "original"}


@dataclass(frozen=True)
class Model:
    """One model file of a run: a final PLY or a training's live snapshot."""

    variant: str  # "reim" or "orig"
    path: Path
    live: bool  # a snapshot of a training in progress

    @property
    def label(self) -> str:
        return LABELS[self.variant] + (" (live)" if self.live else "")


def final_ply(training: Path) -> Path | None:
    """Gives the PLY of a training folder's last iteration (`point_cloud/iteration_N/`)."""
    plys = list(Path(training).glob("point_cloud/iteration_*/point_cloud.ply"))
    return max(plys, key=lambda p: int(p.parent.name.split("_")[1]), default=None)


def final_model(layout: RunLayout, variant: str) -> Model | None:
    """Gives the newest finished training's final PLY of a variant, if any."""
    from ..splatting.compare import latest_run

    training = latest_run(layout.gs, variant)
    ply = final_ply(training) if training is not None else None
    return Model(variant, ply, False) if ply is not None else None


def models(layout: RunLayout, prefer_live: bool = True) -> dict[str, Model]:
    """Gives the model to show per variant: the live snapshot while there is a fresher one than
    the final PLY (a training in progress), else the final PLY."""
    out: dict[str, Model] = {}
    for variant in VARIANTS:
        final = final_model(layout, variant)
        snap = live.snapshot_path(layout.meta, variant)
        if prefer_live and snap.is_file() and (final is None or
                                               snap.stat().st_mtime > final.path.stat().st_mtime):
            out[variant] = Model(variant, snap, True)
        elif final is not None:
            out[variant] = final
    return out


def load(model: Model) -> dict[str, np.ndarray]:
    """Gives the raw Gaussians of a model file (see `splatting.ply`)."""
    if model.live:
        return live.read_snapshot(model.path)
    from ..splatting.ply import read_ply

    return read_ply(model.path)


@dataclass(frozen=True)
class Cameras:
    """The SfM cameras: names, viewmats [C, 4, 4] world→camera (OpenCV), Ks [C, 3, 3] px."""

    names: list[str]
    viewmats: np.ndarray
    Ks: np.ndarray
    width: int
    height: int


def cameras(layout: RunLayout) -> Cameras | None:
    """Gives the registered cameras of `colmap/sparse/0`, in name order (None without a model)."""
    sparse = layout.colmap_sparse
    if not (sparse / "images.bin").exists() and not (sparse / "images.txt").exists():
        return None
    import pycolmap

    from .._media import natural_key

    rec = pycolmap.Reconstruction(str(sparse))
    images = sorted((rec.images[i] for i in rec.reg_image_ids()), key=lambda im: natural_key(im.name))
    if not images:
        return None
    viewmats, Ks = [], []
    for im in images:
        w2c = np.eye(4)
        w2c[:3, :] = im.cam_from_world().matrix()
        viewmats.append(w2c)
        Ks.append(np.array(im.camera.calibration_matrix(), dtype=np.float64))
    cam = images[0].camera
    return Cameras([im.name for im in images], np.stack(viewmats), np.stack(Ks), cam.width, cam.height)
