"""transfer: carry the reimagined key views to every camera through the original 3DGS.

The 3D routes' answer to `propagate`: the original object's Gaussians (`splat_orig`) give every
camera's depth and silhouette, the key views (cut from the sheet) give the appearance, and
`transfer3d` carries one onto the other (see that package). Writes `reim3d_frames/`: RGBA,
named like filtered_frames_colmap, lined up with the undistorted cameras of colmap/sparse/0
(like colmap/images); alpha is the original's silhouette, which the 3D route keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._params import param
from .._stage import Stage, StageContext, StageError
from .splat import original_ply

if TYPE_CHECKING:
    import numpy as np

    from .._layout import RunLayout

VIDEO = "reim3d"


@dataclass(frozen=True)
class Params:
    method: str = param("flow", "How the key views reach every camera: flow (the keys carried "
                        "along optical flow between neighbouring frames wherever it is trusted — "
                        "short baselines, a handheld arc — and reprojected elsewhere; ahead of the "
                        "2D route on every measured case), reproject (warp each key through the "
                        "original's rendered depth, occlusion-tested; best on wide loops, behind "
                        "flow on short arcs), bake (fit the original Gaussians' colours to the "
                        "keys, render), hybrid (reproject; the bake fills what no key sees).",
                        choices=("flow", "reproject", "bake", "hybrid"))
    depth_tolerance: float = param(0.03, "Reproject: relative depth difference at which a key "
                                   "camera no longer sees the same surface point.", min=0.001, max=0.5)
    angle_power: float = param(8.0, "Reproject: keys blend by cos(angle between the two viewing "
                               "rays) to this power (higher: the nearest key wins).", min=0.0, max=64.0)
    bake_steps: int = param(200, "Bake: Adam steps after the closed-form start (0 = start only).",
                            min=0, max=20000)
    bake_lr: float = param(0.05, "Bake: learning rate of the SH colours.", min=0.0001, max=1.0)
    fill: str = param("map", "Reproject and flow: how what no key view sees is coloured — map (one "
                      "colour look-up learnt from every key against the original at its camera: each "
                      "original colour takes the restyled colour the keys gave it; on plush-dog's "
                      "frames +0.8–0.95 dB with 4 keys, +0.1–0.2 dB with 9) or reinhard (the original "
                      "recoloured like its nearest key by one Lab mean/spread match).",
                      choices=("map", "reinhard"))


def sd_box(record: dict[str, Any], name: str, size: tuple[int, int]) -> tuple[float, float, float]:
    """Gives [x0, y0, side]: the square of frame `name` (W × H `size`) its sd frame was cut from.

    preprocess records `sd_box` once for all frames, or per frame ({name: box}); runs made
    before it existed used the centred square (crop), which is the whole frame when square.
    """
    box = record.get("sd_box")
    if isinstance(box, dict):
        box = box.get(name)
    if box is None:
        w, h = size
        side = min(w, h)
        return ((w - side) / 2, (h - side) / 2, side)
    if len(box) != 3:
        raise StageError(f"preprocess manifest: sd_box = {box!r}; accepted: [x0, y0, side]; rerun preprocess")
    return float(box[0]), float(box[1]), float(box[2])


def cameras(layout: RunLayout) -> tuple[Any, list[str], dict[str, Any]]:
    """Gives (Cameras, frame names, name → undistortion maps or None), checking they match
    the frames: every registered image is a frame of filtered_frames_colmap, of that size."""
    import cv2
    import numpy as np

    from .._media import natural_key
    from ..poses import load_models, undistortion_map
    from ..transfer3d import Cameras

    distorted, undistorted = load_models(layout)
    regs = sorted((im for im in undistorted.images.values() if im.has_pose),
                  key=lambda im: natural_key(im.name))
    if not regs:
        raise StageError(f"{layout.colmap_sparse}: no registered cameras; rerun sfm")
    by_name = {im.name: im for im in distorted.images.values()}
    Ks, views, maps, size = [], [], {}, None
    for im in regs:
        frame = layout.filtered_frames_colmap / im.name
        data = cv2.imread(str(frame), cv2.IMREAD_UNCHANGED)
        if data is None or im.name not in by_name:
            raise StageError(f"{frame}: the SfM camera {im.name} has no such frame; the cameras do not "
                             "match the frames: rerun from sfm")
        cam_d, cam = distorted.camera(by_name[im.name].camera_id), im.camera
        if (data.shape[1], data.shape[0]) != (cam_d.width, cam_d.height):
            raise StageError(f"{frame}: {data.shape[1]}×{data.shape[0]} px but SfM saw it at "
                             f"{cam_d.width}×{cam_d.height}; the cameras do not match the frames: "
                             "rerun from sfm")
        if size is not None and (cam.width, cam.height) != size:
            raise StageError(f"{layout.colmap_sparse}: cameras of different sizes ({size} and "
                             f"{(cam.width, cam.height)}); accepted: one undistorted size; rerun sfm")
        size = (cam.width, cam.height)
        maps[im.name] = ((data.shape[1], data.shape[0]), undistortion_map(cam_d, cam))
        w2c = np.eye(4)
        w2c[:3, :] = im.cam_from_world().matrix()
        Ks.append(np.array(cam.calibration_matrix(), dtype=np.float64))
        views.append(w2c)
    names = [im.name for im in regs]
    return Cameras(tuple(names), np.stack(Ks), np.stack(views), size[0], size[1]), names, maps


def load_key_tiles(layout: RunLayout, expected: list[str], tile_size: int | None) -> dict[str, np.ndarray]:
    """Gives frame name → key tile RGB uint8 [S, S, 3] for every key the sheet chose."""
    from .._media import list_images, read_image

    folder = layout.key_frames
    if not folder.is_dir():
        raise StageError(f"{folder}: no key views (the reimagine stage writes them); rerun reimagine")
    found = {p.stem: p for p in list_images(folder)}
    missing = [n for n in expected if Path(n).stem not in found]
    if missing:
        raise StageError(f"{folder / missing[0]}: key view missing ({len(missing)} of {len(expected)}); "
                         "rerun reimagine")
    tiles = {}
    for name in expected:
        path = found[Path(name).stem]
        tile = read_image(path)[..., :3]
        h, w = tile.shape[:2]
        if h != w or (tile_size and h != tile_size):
            want = f"{tile_size}×{tile_size}" if tile_size else "square"
            raise StageError(f"{path}: {w}×{h} px; accepted: {want} tiles like the sheet's; rerun reimagine")
        tiles[name] = tile
    return tiles


def run(ctx: StageContext) -> None:
    import numpy as np

    from .._media import read_image, write_image, write_video
    from ..compositing import flatten
    from ..splatting.rasterize import pick_backend
    from ..transfer3d import KeyView, alpha_mismatch, carry, key_to_camera, load_gaussians, object_mask

    p: Params = ctx.params
    ply = original_ply(ctx.layout, "the 3D transfer")
    cams, names, maps = cameras(ctx.layout)
    sheet = ctx.upstream("sheet").record
    key_files = sheet.get("key_frame_files") or []
    if not key_files:
        raise StageError("sheet manifest: no key frames recorded; rerun sheet and reimagine")
    tiles = load_key_tiles(ctx.layout, key_files, sheet.get("tile_size"))
    preprocess = ctx.upstream("preprocess").record
    keys, skipped = [], []
    for name in key_files:
        if name not in maps:
            skipped.append(name)
            continue
        box = sd_box(preprocess, name, maps[name][0])
        rgb, valid = key_to_camera(tiles[name], box, maps[name][0], maps[name][1])
        keys.append(KeyView(names.index(name), name, rgb, valid, object_mask(rgb, valid)))
    if skipped:
        ctx.log(f"key views {', '.join(skipped)} have no SfM camera (unregistered): left out", "warning")
    if not keys:
        raise StageError(f"{ctx.layout.colmap_sparse}: none of the key frames {key_files} has an SfM "
                         "camera; rerun sfm (or sheet with another grid)")
    backend = pick_backend(ctx.device)
    device = "cuda" if ctx.device == "cuda" else "cpu"
    params = load_gaussians(ply, device)
    ctx.log(f"{len(keys)} key views → {len(names)} cameras at {cams.width}×{cams.height} by {p.method}, "
            f"{len(params['means'])} original Gaussians ({ply.parent.parent.parent.name}), {backend}")
    originals = None
    if p.method == "flow":  # the original frames at the cameras, in capture order
        from ..poses import undistort

        originals = np.stack([undistort(read_image(ctx.layout.filtered_frames_colmap / name)[..., :3],
                                        maps[name][1]) for name in names])
    out = carry(params, cams, keys, p.method, backend, depth_tolerance=p.depth_tolerance,
                angle_power=p.angle_power, bake_steps=p.bake_steps, bake_lr=p.bake_lr,
                frames=originals, fill_method=p.fill, log=ctx.log,
                progress=lambda v, t: ctx.progress(v, t, "bake steps"))
    alpha = out.alpha.cpu().numpy()
    mismatch = {}
    for k in keys:
        m = alpha_mismatch(k.mask, alpha[k.index], k.valid)
        mismatch[k.name] = m
        ctx.metric("transfer.key_iou", m["iou"], step=k.index)
        level = "warning" if m["iou"] < 0.8 else "info"
        ctx.log(f"key {k.name}: silhouette IoU {m['iou']:.2f} with the original geometry; "
                f"{m['extra']:.0%} of the key's object lies outside it (dropped: the 3D route keeps "
                f"the original's shape), {m['missing']:.0%} of the original is backdrop in the key", level)
    coverage = {}
    frames = []
    for v, name in enumerate(names):
        image = out.rgba_uint8(v)
        write_image(ctx.out.reim3d_frames / name, image)
        inside = alpha[v] > 0.5
        coverage[name] = round(float(out.coverage[v].cpu().numpy()[inside].mean()) if inside.any() else 0.0, 4)
        frames.append(ctx.out.reim3d_frames / name)
        ctx.progress(v + 1, len(names), "frames")
    filled = 1 - float(np.mean(list(coverage.values())))
    if p.method != "bake":
        ctx.log(f"{filled:.0%} of the object's pixels were seen by no key view in 3D and came from "
                f"the {'bake' if p.method == 'hybrid' else 'recoloured original'}"
                f"{' where no flow was trusted either' if p.method == 'flow' else ''}")

    def over_white() -> Any:
        for f in frames:
            yield flatten(read_image(f))

    write_video(ctx.out.video(VIDEO), over_white(), fps=10.0)
    ctx.artifact(ctx.out.video(VIDEO), "video")
    ctx.record(method=p.method, ply=str(ply.relative_to(ctx.layout.root)), frames=names,
               key_frames=[k.name for k in keys], key_alpha_mismatch=mismatch,
               coverage=coverage, filled_share=round(filled, 4), size=[cams.width, cams.height],
               unregistered_keys=skipped, **{k: v for k, v in out.facts.items() if k != "method"})


STAGE = Stage(
    id="transfer",
    title="Transfer in 3D",
    section="transfer",
    params=Params,
    after=("preprocess", "sfm", "splat_orig", "reimagine"),
    outputs=("reim3d_frames", f"new_videos/{VIDEO}.mp4"),
    version=1,
    run=run,
    gpu=True,
)
