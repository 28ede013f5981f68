"""mask: separate the object from what does not move with it, as alpha on the SfM frames.

Writes `orig_transparent/<frame>.png`: each SfM frame (`filtered_frames_colmap`, same size and
name) as RGBA whose alpha is the object's mask. The 3DGS of the original trains on these (a
random background each step, so nothing learns the backdrop's colour); the blend stage reads
them for the reimagined frames. Masks come from the rembg model of `blend.model` where its
weights are on this machine (`mask.method = "auto"` or `"model"`), else from the SfM points,
the clip's static backdrop and GrabCut (`masking`, no weights needed). A turntable-like capture
(the backdrop fixed in image space while the cameras orbit) is detected and said so; for a still
scene `auto` records `train_on_masks = false`, and the 3DGS trains on whole frames (rough
model-free masks that differ from view to view cost the object more than a still backdrop does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._params import param
from .._stage import Stage, StageContext, StageError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import numpy as np

    from .._preset import Preset

PREVIEW = "orig_transparent"
EMPTY, FULL = 0.002, 0.998  # mask coverage below / above which a frame's mask is refused


@dataclass(frozen=True)
class Params:
    method: str = param("auto", "Object masks: auto = the rembg model (blend.model) when its weights "
                        "are on this machine, else model-free, which the 3DGS then trains on only "
                        "for a turntable-like capture (a still scene trains on whole frames); "
                        "model = always rembg; sfm = model-free (SfM points + static backdrop + "
                        "GrabCut), always trained on; off = no masks.",
                        choices=("auto", "model", "sfm", "off"))
    grabcut: bool = param(True, "Model-free masks: refine the SfM points' silhouette to the frame's "
                          "colour edges with GrabCut.")
    static_backdrop: bool = param(True, "Model-free masks: pixels that match the clip's per-pixel "
                                  "median (a backdrop fixed in image space, as on a turntable) are "
                                  "background.")


def _off(preset: Preset) -> str | None:
    return "mask.method = 'off'" if preset.mask.method == "off" else None


def choose_method(p: Params, model_ref: str) -> tuple[str, str]:
    """Gives ("model" | "sfm", why) for the preset's mask.method."""
    if p.method in ("model", "sfm"):
        return p.method, f"mask.method = {p.method!r}"
    try:
        from ..cutout import resolve_model

        found = resolve_model(model_ref).path is not None
    except (ImportError, StageError) as e:
        return "sfm", f"the rembg model {model_ref!r} is unusable here ({e}); model-free masks"
    if found:
        return "model", f"the rembg model {model_ref!r} is on this machine"
    return "sfm", (f"the rembg model {model_ref!r} is not on this machine: model-free masks from "
                   "the SfM points, the static backdrop and GrabCut")


def projected_points(ctx: StageContext) -> tuple[dict[str, np.ndarray], Any]:
    """Gives ({frame name: the trusted SfM points projected into it [P, 2] px}, reconstruction)."""
    import numpy as np
    import pycolmap

    from ..masking import object_points
    from ..sfm.layout import distorted_sparse

    sparse = distorted_sparse(ctx.layout)
    if not (sparse / "images.bin").is_file() and not (sparse / "images.txt").is_file():
        raise StageError(f"{sparse}: no COLMAP model there; run the sfm stage first")
    rec = pycolmap.Reconstruction(str(sparse))
    pts = list(rec.points3D.values())
    xyz = np.array([p.xyz for p in pts], dtype=np.float64).reshape(-1, 3)
    tracks = np.array([p.track.length() for p in pts])
    xyz = xyz[object_points(xyz, tracks)]
    out = {}
    for im in rec.images.values():
        if not im.has_pose:
            continue
        cam = rec.cameras[im.camera_id]
        m = im.cam_from_world().matrix()
        in_cam = xyz @ m[:, :3].T + m[:, 3]
        in_cam = in_cam[in_cam[:, 2] > 1e-6]
        out[im.name] = np.asarray(cam.img_from_cam(in_cam), dtype=np.float64).reshape(-1, 2)
    return out, rec


def run(ctx: StageContext) -> None:
    import os
    from concurrent.futures import ThreadPoolExecutor

    import cv2
    import numpy as np

    from .._media import list_images, read_image, write_image, write_video
    from ..cutout import rgba
    from ..masking import find_backdrop, object_mask, orbit_degrees
    from ..preview_timing import record_fps

    p: Params = ctx.params
    # The pool below gives each frame a thread; OpenCV's own threads inside each call only
    # oversubscribe the cores (102 full-size plush-dog photos on 2 cores: 23 → 21 s).
    cv2.setNumThreads(1)
    frames = list_images(ctx.layout.filtered_frames_colmap)
    if not frames:
        raise StageError(f"{ctx.layout.filtered_frames_colmap}: no frames; rerun preprocess")
    method, why = choose_method(p, ctx.preset.blend.model)
    ctx.log(f"masks: {why}")
    points, rec = projected_points(ctx) if method == "sfm" else ({}, None)
    backdrop = None
    if method == "sfm" and p.static_backdrop and len(frames) >= 3:
        backdrop = find_backdrop([read_image(f)[..., :3] for f in frames])
    session = None
    if method == "model":
        from ..cutout import MaskSession

        session = MaskSession(ctx.preset.blend.model, ctx.device, ctx.log)
    coverage: dict[str, float] = {}
    unposed = [f.name for f in frames if method == "sfm" and f.name not in points]

    def cut(f: Path) -> tuple[np.ndarray, float]:
        """Gives the frame's cut-out RGBA and its mask's coverage, written (in a pool thread)."""
        image = read_image(f)[..., :3]
        if session is not None:
            alpha = session.mask(image)
        elif f.name in points:
            alpha = object_mask(image, points[f.name], backdrop, grabcut=p.grabcut)
        else:  # SfM left this frame out: it trains nothing; keep it whole rather than guess.
            alpha = np.ones(image.shape[:2], np.float32)
        share = float(alpha.mean())
        cutout = rgba(image, alpha)
        if f.name in unposed or EMPTY <= share <= FULL:
            write_image(ctx.out.orig_transparent / f.name, cutout)
        return cutout, share

    def cutouts() -> Iterator[np.ndarray]:
        """Yields the cut-outs in frame order (for the preview) as the pool makes them."""
        for n, (f, (cutout, share)) in enumerate(zip(frames, pool.map(cut, frames), strict=True)):
            if f.name not in unposed and not EMPTY <= share <= FULL:
                what = "covers nothing" if share < EMPTY else "covers the whole frame"
                raise StageError(f"{f}: the object mask {what} ({share:.1%}); try mask.method = "
                                 f"{'sfm' if method == 'model' else 'model'!r} or mask.method = 'off'")
            coverage[f.name] = round(share, 4)
            ctx.progress(n + 1, len(frames), "frames")
            yield cutout

    # OpenCV releases the GIL: model-free masks and the PNG writes run on every core (a rembg
    # session is one); the preview is encoded from the cut-outs as they come, not read back.
    workers = 1 if session is not None else max(1, min(8, os.cpu_count() or 1))
    fps = record_fps(ctx.upstream("preprocess").record, len(frames), fallback=30.0)
    with ThreadPoolExecutor(workers) as pool:
        write_video(ctx.out.video(PREVIEW), cutouts(), fps=fps)
    ctx.artifact(ctx.out.video(PREVIEW), "video")
    facts: dict[str, Any] = {"method": method, "why": why, "unposed": unposed, "train_on_masks": True}
    if unposed:
        ctx.log(f"{len(unposed)} frame(s) without an SfM pose keep no mask (they do not train), "
                f"e.g. {unposed[0]}", "warning")
    if backdrop is not None and rec is not None:
        w2c = np.stack([np.vstack([im.cam_from_world().matrix(), [0, 0, 0, 1]])
                        for im in rec.images.values() if im.has_pose])
        orbit = orbit_degrees(w2c)
        turntable = backdrop.static_share >= 0.2 and orbit >= 45.0
        facts.update(static_backdrop_share=round(backdrop.static_share, 4),
                     orbit_degrees=round(orbit, 1), turntable=turntable)
        if turntable:
            ctx.log(f"turntable-like capture: {backdrop.static_share:.0%} of the frame looks the same "
                    f"in every frame while the cameras orbit {orbit:.0f}° (a turntable, an object "
                    "turned in hand, or a plain backdrop); that backdrop is masked out: no static "
                    "3D scene can hold it", "warning")
        elif p.method == "auto":
            # A still scene seen by a moving camera: its backdrop is 3D too, and rough model-free
            # masks that differ from view to view cost the object (H200: −3.4 dB on apple-video,
            # −6.3 dB on kermit against whole frames); on a turntable they are what makes it clean.
            facts["train_on_masks"] = False
            ctx.log(f"a still scene (only {backdrop.static_share:.0%} of the frame stays the same while "
                    f"the cameras orbit {orbit:.0f}°): the 3DGS trains on whole frames; the model-free "
                    "masks are kept for the blend and the previews (mask.method = 'sfm' trains on them)")
    values = list(coverage.values())
    facts["coverage"] = {"mean": round(float(np.mean(values)), 4), "min": min(values),
                         "max": max(values), "frames": coverage}
    ctx.record(**facts)
    ctx.metric("mask.mean_coverage", facts["coverage"]["mean"])
    ctx.log(f"masks of {len(frames)} frames ({method}): the object covers "
            f"{facts['coverage']['mean']:.0%} of a frame on average")


STAGE = Stage(
    id="mask",
    title="Object masks",
    section="mask",
    params=Params,
    after=("preprocess", "sfm"),
    outputs=("orig_transparent", f"new_videos/{PREVIEW}.mp4"),
    version=2,
    run=run,
    reads=("blend.model",),
    gpu=True,
    off_when=_off,
)
