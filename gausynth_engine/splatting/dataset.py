"""Training views from a COLMAP model (pycolmap) and a folder of images lined up with it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._stage import StageError

BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}


@dataclass
class Scene:
    """Every registered view, in frame (natural name) order, and the SfM points.

    images: uint8 [V, H, W, 3], the views' own colours; alphas: uint8 [V, H, W] object masks
    (None: the views are opaque, the whole frame is the scene); valid: bool [V, H, W] pixels that
    hold real picture (None: all; a padded or partial frame has invalid pixels, which neither
    the loss nor the metrics see); Ks [V, 3, 3] px; viewmats [V, 4, 4] world→camera (OpenCV);
    points [P, 3] world; colors [P, 3] in [0, 1].
    """

    names: list[str]
    images: np.ndarray
    Ks: np.ndarray
    viewmats: np.ndarray
    points: np.ndarray
    colors: np.ndarray
    alphas: np.ndarray | None = None
    valid: np.ndarray | None = None

    def composited(self, background: tuple[float, float, float]) -> np.ndarray:
        """Gives uint8 [V, H, W, 3]: the views over `background` through their masks."""
        if self.alphas is None:
            return self.images
        return np.stack([composite(np.concatenate([im, a[..., None]], 2), background)
                         for im, a in zip(self.images, self.alphas, strict=True)])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of every view, px."""
        return self.images.shape[2], self.images.shape[1]

    def split(self, test_every: int) -> tuple[list[int], list[int]]:
        """Gives (train, test) view indices: every `test_every`-th view is held out (0 = none)."""
        ids = list(range(len(self.names)))
        if test_every <= 0 or len(ids) < 2:
            return ids, []
        test = [i for i in ids if i % test_every == 0]
        return [i for i in ids if i % test_every != 0], test

    def look_at(self) -> np.ndarray:
        """Gives [3]: the point nearest to every camera's optical axis (least squares), where a
        turn-around's object sits; the cameras' mean centre when the axes are near parallel."""
        a, b = optical_axes_system(self.viewmats)
        if np.linalg.cond(a) > 1e6:
            return camera_centres(self.viewmats).mean(0)
        return np.linalg.solve(a, b)

    def scene_scale(self) -> float:
        """Gives 1.1 × the largest camera distance from the cameras' mean centre (as gsplat)."""
        centres = camera_centres(self.viewmats)
        return 1.1 * float(np.linalg.norm(centres - centres.mean(0), axis=1).max() or 1.0)


def camera_centres(viewmats: np.ndarray) -> np.ndarray:
    """Gives the camera centres [V, 3] of world→camera matrices [V, 4, 4]."""
    R, t = viewmats[:, :3, :3], viewmats[:, :3, 3]
    return -np.einsum("vji,vj->vi", R, t)


def optical_axes_system(viewmats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gives (A [3, 3], b [3]): the normal equations A x = b of the point nearest, in least
    squares, to every camera's optical axis (world→camera matrices [V, 4, 4])."""
    a, b = np.zeros((3, 3)), np.zeros(3)
    for c, d in zip(camera_centres(viewmats), viewmats[:, 2, :3], strict=True):
        m = np.eye(3) - np.outer(d, d)  # projects onto the plane across the axis
        a += m
        b += m @ c
    return a, b


def composite(image: np.ndarray, background: tuple[float, float, float]) -> np.ndarray:
    """Gives RGB uint8 [H, W, 3]: an RGBA image blended over the background, RGB unchanged."""
    from ..compositing import flatten

    return flatten(image, background)


def load_scene(sparse: Path, images: Path, background: str = "white", downscale: int = 1,
               valid: Path | None = None, masks: bool = True) -> Scene:
    """Gives the views of the COLMAP model `sparse` whose images lie in `images`, by name.

    RGBA images give the scene's object masks (`masks=False` composites them on `background`
    instead); `valid`, a folder of same-named images, marks with white the pixels that hold real
    picture. Only PINHOLE / SIMPLE_PINHOLE cameras are accepted (the SfM stage undistorts);
    `downscale` shrinks images and intrinsics by an integer factor.
    """
    import cv2
    import pycolmap

    from .._media import frame_workers, in_order, natural_key, read_image

    sparse, images = Path(sparse), Path(images)
    if not (sparse / "images.bin").exists() and not (sparse / "images.txt").exists():
        raise StageError(f"{sparse}: no COLMAP model (images.bin); run the sfm stage first")
    rec = pycolmap.Reconstruction(str(sparse))
    regs = sorted((rec.images[i] for i in rec.reg_image_ids()), key=lambda im: natural_key(im.name))
    if not regs:
        raise StageError(f"{sparse}: the COLMAP model has no registered images")

    def read(name: str) -> tuple[np.ndarray, np.ndarray | None]:
        path = images / name
        if not path.exists():
            raise StageError(f"{path}: missing; the COLMAP model names it but {images} lacks it")
        if valid is None:
            return read_image(path), None
        vpath = Path(valid) / name
        if not vpath.is_file():
            raise StageError(f"{vpath}: missing; every view needs its validity mask")
        return read_image(path), read_image(vpath)[..., 0]

    for im in regs:
        cam = im.camera
        if cam.model.name not in ("PINHOLE", "SIMPLE_PINHOLE"):
            raise StageError(f"{sparse}: camera {cam.camera_id} is {cam.model.name}; accepted: "
                             "PINHOLE or SIMPLE_PINHOLE (undistorted) cameras")
    names, pixels, alphas, valids, Ks, viewmats = [], [], [], [], [], []
    size = None
    kinds: set[int] = set()
    # The PNG decodes run in threads (they release the GIL), the checks below in view order.
    decoded = in_order((lambda n=im.name: read(n) for im in regs), frame_workers())
    for im, (image, ok) in zip(regs, decoded, strict=True):
        cam = im.camera
        path = images / im.name
        kinds.add(image.shape[2])
        if len(kinds) > 1:
            raise StageError(f"{path}: {'RGBA' if image.shape[2] == 4 else 'RGB'}, unlike the other "
                             f"views; accepted: every view with a mask (RGBA) or none")
        if image.shape[2] == 4 and not masks:
            image = composite(image, BACKGROUNDS[background])
        if image.shape[:2] != (cam.height, cam.width):
            raise StageError(f"{path}: {image.shape[1]}×{image.shape[0]} px but the COLMAP camera "
                             f"is {cam.width}×{cam.height}; the views must line up with the model")
        if ok is not None:
            vpath = Path(valid) / im.name
            if ok.shape != image.shape[:2]:
                raise StageError(f"{vpath}: {ok.shape[1]}×{ok.shape[0]} px, unlike its view "
                                 f"{path} ({image.shape[1]}×{image.shape[0]})")
        K = np.array(cam.calibration_matrix(), dtype=np.float64)
        if downscale > 1:
            w, h = cam.width // downscale, cam.height // downscale
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
            if ok is not None:
                ok = cv2.resize(ok, (w, h), interpolation=cv2.INTER_AREA)
            K[0, :] *= w / cam.width
            K[1, :] *= h / cam.height
        if size is not None and image.shape != size:
            raise StageError(f"{path}: {image.shape[1]}×{image.shape[0]} px, unlike the other "
                             f"views ({size[1]}×{size[0]}); accepted: views of one size")
        size = image.shape
        w2c = np.eye(4)
        w2c[:3, :] = im.cam_from_world().matrix()
        names.append(im.name)
        pixels.append(image[..., :3])
        if image.shape[2] == 4:
            alphas.append(image[..., 3])
        if ok is not None:
            valids.append(ok > 127)
        Ks.append(K)
        viewmats.append(w2c)
    pts = list(rec.points3D.values())
    points = np.array([p.xyz for p in pts], dtype=np.float64).reshape(-1, 3)
    colors = np.array([p.color for p in pts], dtype=np.float64).reshape(-1, 3) / 255.0
    scene = Scene(names, np.stack(pixels), np.stack(Ks), np.stack(viewmats), points, colors,
                  np.stack(alphas) if alphas else None, np.stack(valids) if valids else None)
    if scene.alphas is not None:
        coverage = scene.alphas.reshape(len(names), -1).mean(1) / 255.0
        bad = int(np.argmin(np.minimum(coverage, 1.0 - coverage)))
        if coverage[bad] < 0.001 or coverage[bad] > 0.999:
            what = "covers nothing" if coverage[bad] < 0.001 else "covers the whole view"
            raise StageError(f"{images / names[bad]}: its mask (alpha) {what}; accepted: a mask "
                             "of the object (rerun the mask stage or set mask.method = 'off')")
    return scene
