"""splat: 3D Gaussian Splatting with gsplat, on the reimagined or the original frames.

Each variant trains in a work folder under `.gausynth/checkpoints/{variant}/` (it survives a
killed worker, unlike the staging folder): the lined-up views, the checkpoint and the growing
`gs/` output. A rerun with the same settings and inputs resumes from the checkpoint; when the
training ends, the output moves into `gs/{variant}_{iterations}-{stamp}/` and the work folder
goes away.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._params import param
from .._stage import Stage, StageContext, StageError
from ._common import off_without_reimagine

if TYPE_CHECKING:
    from .._layout import RunLayout
    from .._preset import Preset

WORK_META = "training.json"


@dataclass(frozen=True)
class Params:
    iterations: int = param(10000, "Training iterations.", min=1000, max=30000)
    eval_at: tuple[int, ...] = param((7000, 10000, 12000, 15000),
                                     "Evaluate at these iterations (those not above the total) and "
                                     "at the last one.", min=1, max=30000)
    sh_degree: int = param(3, "Spherical-harmonics degree of the colours (one band more every "
                           "tenth of the run, up to this).", min=0, max=3)
    background: str = param("white", "Background colour that renders, videos and evaluation "
                            "composite onto.", choices=("white", "black"))
    random_background: bool = param(True, "With object masks, train each step over a random "
                                    "background colour, so that no Gaussian learns the backdrop.")
    opacity_reset: bool = param(True, "Reset opacities during densification (the 3DGS recipe; "
                                "every 3,000 steps, scaled for shorter runs) to clear floaters.")
    densify_until: float = param(1.0, "Densification ends at this share of the run (at 15,000 steps at "
                                 "most, the 3DGS recipe's stop; a run of 10k densifies to its end, as "
                                 "gsplat's defaults do).", min=0.05, max=1.0)
    antialiased: bool = param(False, "gsplat's antialiased rasterization (Mip-Splatting's 2-D "
                              "filter); CUDA only.")
    exposure: bool = param(False, "Learn a colour correction per photo (exposure, white balance) so "
                           "that the model does not bake one photo's exposure into the object; "
                           "renders and test views use none.")
    absgrad: bool = param(False, "Densify on absolute 2-D gradients (AbsGS): finer detail, more "
                          "Gaussians; CUDA only.")
    reim_init: str = param("auto", "Where the reimagined 3DGS starts: 'original' fine-tunes this run's "
                           "original 3DGS (its geometry; no opacity resets), 'points' grows a new one "
                           "from the SfM points, 'auto' = original in the 3D routes (their frames are "
                           "rendered through it), points in the 2D route.",
                           choices=("auto", "original", "points"))
    reim_iterations: int = param(0, "Training iterations of the reimagined 3DGS; 0 = splat.iterations.",
                                 min=0, max=30000)
    test_every: int = param(8, "Hold out every n-th image for testing; 0 = none.", min=0, max=100)
    strategy: str = param("default", "Densification: the paper's schedule, or MCMC with a cap.",
                          choices=("default", "mcmc"))
    max_gaussians: int = param(1_000_000, "Gaussian cap of the MCMC strategy.",
                               min=1000, max=50_000_000)
    downscale: int = param(1, "Train on the frames shrunk by this factor (saves memory and time).",
                           min=1, max=16)
    packed: bool = param(False, "gsplat's packed mode: less GPU memory, slightly slower.")
    checkpoint_every: int = param(1000, "Save a resumable checkpoint every this many iterations.",
                                  min=100, max=30000)


def masked(ctx: StageContext) -> bool:
    """Gives whether this run trains on object masks (the mask stage's cut-outs): not when masks
    are off, nor where the mask stage found a still scene for `mask.method = "auto"`."""
    if ctx.preset.mask.method == "off":
        return False
    return bool(ctx.upstream("mask").record.get("train_on_masks", True))


def source_frames(ctx: StageContext, variant: str) -> Path:
    """Gives the folder of frames a variant trains on (SfM-sized, named like the SfM frames)."""
    from ._common import ROUTES_3D

    if variant == "reim":
        if ctx.preset.run.pipeline in ROUTES_3D:  # made in 3D, already undistorted
            return ctx.layout.reim3d_frames
        return ctx.layout.sr_frames
    return ctx.layout.orig_transparent if masked(ctx) else ctx.layout.filtered_frames_colmap


def place_reimagined(ctx: StageContext, work: Path) -> tuple[Path, Path | None]:
    """Writes the reimagined squares (`sr_frames`) placed at their frames' `sd_box` in the SfM
    frames, with the original's mask as alpha; gives (that folder, the folder of validity masks
    or None when every square covers its whole frame)."""
    import numpy as np

    from .._media import frame_workers, in_order, list_images, read_image, write_image
    from ..framing import box_of, place_square

    record = ctx.upstream("preprocess").record
    placed, valid_dir = work / "placed", work / "valid"
    originals = ctx.layout.orig_transparent if masked(ctx) else ctx.layout.filtered_frames_colmap

    def place(f: Path) -> bool:  # gives whether the square leaves part of the frame uncovered
        orig_path = originals / f.name
        if not orig_path.is_file():
            raise StageError(f"{orig_path}: missing; the reimagined frame {f} has no original to "
                             "line up with (rerun preprocess and mask)")
        orig = read_image(orig_path)
        h, w = orig.shape[:2]
        square, valid = place_square(read_image(f)[..., :3], box_of(record, w, h), w, h)
        alpha = orig[..., 3] if orig.shape[2] == 4 else np.full((h, w), 255, np.uint8)
        write_image(placed / f.name, np.concatenate([square, alpha[..., None]], 2))
        write_image(valid_dir / f.name, np.repeat((valid * 255).astype(np.uint8)[..., None], 3, 2))
        return not valid.all()

    # PNG codecs release the GIL: 48 upscaled frames took ~20 s one after another on the H200.
    jobs = (lambda f=f: place(f) for f in list_images(ctx.layout.sr_frames))
    partial = any(list(in_order(jobs, frame_workers())))  # every frame placed (any() alone would stop early)
    return placed, valid_dir if partial else None


def training_key(ctx: StageContext) -> str:
    """Gives what identifies one training: stage, version, settings, upstream fingerprints."""

    upstream = {up: ctx.upstream(up).fingerprint for up in ctx.stage.upstreams(ctx.preset)}
    return json.dumps({"stage": ctx.stage.id, "version": ctx.stage.version, "device": ctx.device,
                       "params": dataclasses.asdict(ctx.params), "inputs": upstream},
                      sort_keys=True, default=list)


def work_folder(ctx: StageContext, variant: str, key: str) -> tuple[Path, dict[str, Any]]:
    """Gives the variant's work folder and its meta (key, stamp), fresh unless `key` matches."""
    work = ctx.layout.meta / "checkpoints" / variant
    try:
        meta = json.loads((work / WORK_META).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        meta = {}
    if meta.get("key") != key:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        meta = {"key": key, "stamp": time.strftime("%Y%m%d-%H%M%S")}
        (work / WORK_META).write_text(json.dumps(meta), encoding="utf-8")
    return work, meta


def video_fps(ctx: StageContext) -> float:
    """Gives the frame rate at which the renders last as long as the input clip did."""
    from ..preview_timing import record_fps

    record = ctx.upstream("preprocess").record
    return record_fps(record, len(record["frames"]), fallback=24.0) if "frames" in record else 24.0


def original_ply(layout: RunLayout, needed_by: str = "this stage") -> Path:
    """Gives the PLY of the finished original 3DGS (its last iteration), refusing one that is
    missing or stale; `needed_by` says who needs it, for the message."""
    from .._manifest import read_manifest

    manifest = read_manifest(layout, "splat_orig")
    if manifest is None:
        raise StageError(f"splat_orig has not finished in this run: {needed_by} needs the original 3DGS; "
                         "run the stages from splat_orig")
    folder = layout.root / manifest.get("record", {}).get("folder", "")
    plys = sorted(folder.glob("point_cloud/iteration_*/point_cloud.ply"),
                  key=lambda p: int(p.parent.name.split("_")[1]))
    if not plys:
        raise StageError(f"{folder}: the original 3DGS is missing (no point_cloud/iteration_*/"
                         "point_cloud.ply); rerun from splat_orig")
    sfm = (read_manifest(layout, "sfm") or {}).get("fingerprint")
    if manifest.get("inputs", {}).get("sfm") != sfm:
        raise StageError(f"{plys[-1]}: the original 3DGS is stale (trained on another SfM model than "
                         "colmap/sparse/0); rerun from splat_orig")
    return plys[-1]


def starts_from_original(ctx: StageContext, variant: str) -> bool:
    """Gives whether this training fine-tunes the run's original 3DGS (see `reim_init`)."""
    return variant == "reim" and fine_tunes_original(ctx.preset)


def fine_tunes_original(preset: Preset) -> bool:
    """Gives whether the reimagined 3DGS starts from the original one under `preset`."""
    from ._common import ROUTES_3D

    choice = preset.splat.reim_init
    return choice == "original" or (choice == "auto" and preset.run.pipeline in ROUTES_3D)


def original_unread(preset: Preset) -> tuple[str, ...]:
    """Grown from the SfM points, the reimagined 3DGS does not read the original one: it trains
    beside it (the 2D route) instead of after it."""
    return () if fine_tunes_original(preset) else ("splat_orig",)


def iterations_of(p: Params, variant: str) -> int:
    return (p.reim_iterations or p.iterations) if variant == "reim" else p.iterations


def train_config(p: Params, iterations: int) -> Any:
    from ..splatting.train import TrainConfig

    return TrainConfig(iterations=iterations, eval_at=tuple(p.eval_at), sh_degree=p.sh_degree,
                       background=p.background, test_every=p.test_every, strategy=p.strategy,
                       max_gaussians=p.max_gaussians, checkpoint_every=p.checkpoint_every,
                       packed=p.packed, random_background=p.random_background,
                       opacity_reset=p.opacity_reset, antialiased=p.antialiased, absgrad=p.absgrad,
                       exposure=p.exposure, densify_until=p.densify_until)


def run_variant(ctx: StageContext, variant: str) -> None:
    from .._media import list_images, read_image, write_video
    from ..poses import prepare_views
    from ..splatting.dataset import load_scene
    from ..splatting.train import OutOfMemory, train

    p: Params = ctx.params
    if p.strategy == "mcmc" and ctx.device != "cuda":
        raise StageError("splat.strategy = 'mcmc' needs a CUDA GPU (gsplat's relocation kernel); "
                         "accepted on CPU: 'default'")
    for name in ("antialiased", "absgrad"):
        if getattr(p, name) and ctx.device != "cuda":
            raise StageError(f"splat.{name} = true needs a CUDA GPU (gsplat's kernels); accepted "
                             "on CPU: false")
    source = source_frames(ctx, variant)
    if not source.is_dir():
        raise StageError(f"{source}: no frames to train on; run the stage that writes it first")
    key = training_key(ctx)
    work, meta = work_folder(ctx, variant, key)
    views, valid_views = work / "views", None
    for folder in ("views", "valid", "placed", "valid_views"):
        shutil.rmtree(work / folder, ignore_errors=True)
    valid_src = None
    if source == ctx.layout.reim3d_frames:
        views = source  # rendered at the undistorted cameras: nothing to warp
    else:
        if variant == "reim":
            source, valid_src = place_reimagined(ctx, work)
        prepare_views(ctx.layout, source, views)
    if valid_src is not None:
        valid_views = work / "valid_views"
        prepare_views(ctx.layout, valid_src, valid_views)
    scene = load_scene(ctx.layout.colmap_sparse, views, p.background, p.downscale, valid=valid_views)
    ctx.log(f"training on {source.name}: {len(scene.names)} views at {scene.size[0]}×{scene.size[1]}"
            f"{', with object masks' if scene.alphas is not None else ', no masks'}"
            f"{', partial frames masked out of the loss' if scene.valid is not None else ''}")
    width, height = scene.size
    if ctx.device != "cuda" and width * height > 256 * 256:
        ctx.log(f"training at {width}×{height} px on the CPU rasterizer will be very slow; "
                "raise splat.downscale or use a GPU", "warning")
    init = None
    if starts_from_original(ctx, variant):
        from ..splatting.ply import read_ply

        ply = original_ply(ctx.layout, "splat.reim_init = original")
        init = read_ply(ply)
        ctx.log(f"starting from the original 3DGS ({len(init['means'])} Gaussians, "
                f"{ply.relative_to(ctx.layout.root)})")
    iterations = iterations_of(p, variant)
    try:
        result = train(scene, train_config(p, iterations), work / "output", work, ctx, ctx.device,
                       key, init)
    except OutOfMemory as e:
        raise StageError(str(e)) from None
    dest = ctx.out.gs_run(variant, iterations, meta["stamp"])
    dest.parent.mkdir(parents=True, exist_ok=True)
    (work / "output").replace(dest)
    renders = list_images(dest / f"renders_{iterations}")
    video = ctx.out.video(f"gs_{variant}")
    write_video(video, (read_image(r) for r in renders), fps=video_fps(ctx))
    ctx.artifact(video, "video")
    compare_with_other(ctx, variant, dest)
    from .export import after_training  # [export]: web-viewer files of the model (issue 17)

    after_training(ctx, variant, dest)
    last = result.results.get(f"ours_{result.final_step}", {})
    ctx.record(variant=variant, folder=str(dest.relative_to(ctx.out.root)), source=source.name,
               views=len(scene.names), size=[width, height], num_gaussians=result.num_gaussians,
               resumed_from=result.start_step, psnr=last.get("psnr"), ssim=last.get("ssim"),
               object_psnr=last.get("object_psnr"), masked=scene.alphas is not None,
               started_from="original 3DGS" if init is not None else "SfM points",
               its=round(result.its, 3), train_seconds=round(result.train_seconds, 2))
    shutil.rmtree(work, ignore_errors=True)


def compare_with_other(ctx: StageContext, variant: str, dest: Path) -> None:
    """Writes `new_videos/gs_compare.mp4` (reimagined | original) and `gs/compare.md` when the
    other variant has a finished training in this run."""
    from ..splatting.compare import compare, latest_run

    other = "orig" if variant == "reim" else "reim"
    theirs = latest_run(ctx.layout.gs, other)
    if theirs is None:
        return
    pair = {variant: dest, other: theirs}
    video = ctx.out.video("gs_compare")
    frames = compare(pair["reim"], pair["orig"], video, ctx.out.gs / "compare.md", video_fps(ctx))
    if frames:
        ctx.artifact(video, "video")
    ctx.log(f"compared with {theirs.name}: {ctx.out.gs / 'compare.md'}")


def run_reim(ctx: StageContext) -> None:
    run_variant(ctx, "reim")


def run_orig(ctx: StageContext) -> None:
    run_variant(ctx, "orig")


STAGE_REIM = Stage(
    id="splat_reim",
    title="3DGS (reimagined)",
    section="splat",
    params=Params,
    after=("sfm", "mask", "splat_orig", "upscale", "transfer", "sync"),
    outputs=("gs", "new_videos/gs_reim.mp4"),
    version=3,
    run=run_reim,
    reads=("mask.method", "run.pipeline"),
    # export formats chosen in [export]; the side-by-side once the other variant exists
    may_write=("exports", "new_videos/gs_compare.mp4"),
    gpu=True,
    off_when=off_without_reimagine,
    unread_when=original_unread,
)

STAGE_ORIG = Stage(
    id="splat_orig",
    title="3DGS (original)",
    section="splat",
    params=Params,
    after=("sfm", "mask"),
    outputs=("gs", "new_videos/gs_orig.mp4"),
    version=2,
    run=run_orig,
    reads=("mask.method",),
    # export formats chosen in [export]; the side-by-side once the other variant exists
    may_write=("exports", "new_videos/gs_compare.mp4"),
    gpu=True,
)
