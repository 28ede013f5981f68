"""sync: a user reimagines the object in 3D by synchronised diffusion over its original 3DGS.

CPU-sized: 40-px frames of the generated sample from its true cameras, Gaussians at its surface
points, tiny random SD-XL / SD 1.5 models, the pure-PyTorch rasterizer.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path[:0] = [str(Path(__file__).parent)]
from tiny_models import save_tiny_models  # noqa: E402
from tiny_sd15 import TINY_SD15, save_random_sd15  # noqa: E402

from gausynth_engine import StageError, parse_preset  # noqa: E402
from gausynth_engine._stage import StageContext  # noqa: E402
from gausynth_engine.splatting.ply import read_ply, write_ply  # noqa: E402
from gausynth_engine.synchronise.cameras import azimuths, select_views  # noqa: E402
from gausynth_engine.synchronise.gaussians import (  # noqa: E402
    Cameras,
    Geometry,
    consistency_psnr,
    render_features,
)
from gausynth_engine.synchronise.sampler import PixelCodec, SyncSettings, sample  # noqa: E402

SIZE = 40  # frame side, px
VIEWS = 4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def scene(sample_video: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from synthetic_scene import make_true_scene

    return make_true_scene(tmp_path_factory.mktemp("scene"), views=12, width=SIZE, height=SIZE, points=600,
                           cameras_json=sample_video.with_suffix(".cameras.json"))


def gaussians_at_surface(sparse: Path) -> dict[str, np.ndarray]:
    """Gives opaque Gaussians at the scene's surface points, coloured like the object: a
    stand-in for the original 3DGS (training one would cost minutes here)."""
    import pycolmap

    from gausynth_engine.splatting.model import init_params

    rec = pycolmap.Reconstruction(str(sparse))
    pts = np.array([p.xyz for p in rec.points3D.values()])
    cols = np.array([p.color for p in rec.points3D.values()]) / 255.0
    params = init_params(pts, cols, 0, 1.0, init_opacity=0.9, init_scale=1.2)
    return {k: v.detach().numpy() for k, v in params.items()}


@pytest.fixture(scope="module")
def world(scene):
    """(geometry, V square cameras at SIZE px, renders of the original [V, S, S, 3], alpha)."""
    from gausynth_engine.stages.sync import frame_cameras

    frames = frame_cameras(scene[0])
    ids = select_views(frames.viewmats, VIEWS)
    geom = Geometry.from_ply(gaussians_at_surface(scene[0]), "cpu")
    cams = Cameras(torch.tensor(frames.viewmats[ids], dtype=torch.float32),
                   torch.tensor(frames.Ks[ids], dtype=torch.float32), SIZE, SIZE)
    with torch.no_grad():
        rgb, alpha = render_features(geom, geom.rgb, cams, torch.ones(3), "torch")
    return geom, cams, rgb, alpha[..., 0]


class StandIn:
    """A denoiser whose Tweedie estimate x0|t is a known image per view, at every step."""

    prediction_type = "epsilon"

    def __init__(self, targets: torch.Tensor, scheduler) -> None:
        self.targets = targets  # [V, S, S, 3] in [0, 1]
        self.alphas = scheduler.alphas_cumprod
        self.evaluations = 0

    def __call__(self, x, t, index, total, views):
        self.evaluations += len(views)
        x0 = self.targets[views].permute(0, 3, 1, 2) * 2 - 1  # PixelCodec's latent
        a = self.alphas[t]
        return (x - a.sqrt() * x0) / (1 - a).sqrt()


def ddim():
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                         clip_sample=False, set_alpha_to_one=True, steps_offset=1)


def run_stand_in(world, targets, synchronise: bool, steps: int = 4, space: str = "pixel"):
    geom, cams, rgb, _ = world
    scheduler = ddim()
    denoiser = StandIn(targets, scheduler)
    settings = SyncSettings(steps=steps, synchronise=synchronise, fit_steps=10, final_fit_steps=40, space=space)
    return sample(denoiser, PixelCodec(), scheduler, geom, cams, rgb, settings, device="cpu"), denoiser


def palettes(world, seed: int = 0) -> torch.Tensor:
    """Gives a different coarse random palette per view on the object (white around it): images
    no single colouring of the Gaussians can produce."""
    _, _, _, alpha = world
    g = torch.Generator().manual_seed(seed)
    blocks = torch.rand(len(alpha), 3, 4, 4, generator=g)
    pal = torch.nn.functional.interpolate(blocks, size=(SIZE, SIZE), mode="nearest").permute(0, 2, 3, 1)
    a = alpha[..., None]
    return pal * a + (1 - a)


def mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    return float(((a - b) ** 2)[mask].mean())


def test_synchronised_views_agree_while_independent_ones_do_not(world):
    """Each view's denoiser insists on its own palette. Synchronised through the Gaussians, the
    V results are one 3D colouring seen from V cameras; denoised alone, they stay V palettes."""
    geom, cams, rgb, alpha = world
    targets = palettes(world)
    mask = alpha > 0.5
    synced, _ = run_stand_in(world, targets, synchronise=True)
    alone, _ = run_stand_in(world, targets, synchronise=False)

    def consistency(images):
        return consistency_psnr(images, geom, cams, mask, backend="torch", steps=60)

    agree, disagree = consistency(synced.images), consistency(alone.images)
    assert agree > 30.0, agree
    assert disagree < 20.0, disagree
    # Independent views are exactly the denoiser's wishes; the synchronised ones follow them as
    # far as one colouring can (far closer to them than the original object was).
    assert mse(alone.images, targets, mask) < 1e-6
    assert mse(synced.images, targets, mask) < 0.5 * mse(rgb, targets, mask)
    # The views' disagreement is visible in the fit's residual at every step.
    assert len(synced.residuals) == synced.steps and min(synced.residuals) > 1e-3


def test_synchronising_in_latent_space_also_makes_the_views_agree(world):
    """The latent mode fits C-channel features on the latent grid instead of RGB colours (here
    the pixel codec's latent is the image itself, so the same figure applies)."""
    geom, cams, rgb, alpha = world
    targets = palettes(world, seed=1)
    mask = alpha > 0.5
    synced, _ = run_stand_in(world, targets, synchronise=True, space="latent", steps=3)
    assert consistency_psnr(synced.images, geom, cams, mask, backend="torch", steps=60) > 30.0
    assert mse(synced.images, targets, mask) < 0.5 * mse(rgb, targets, mask)


def test_a_consistent_texture_is_recovered_in_the_gaussians(world):
    """When every view's estimate is the same 3D texture (known random colours per Gaussian),
    the synchronised result IS that texture: the final colours render it at every view."""
    geom, cams, rgb, alpha = world
    truth = torch.rand(len(geom), 3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        targets, _ = render_features(geom, truth, cams, torch.ones(3), "torch")
    result, denoiser = run_stand_in(world, targets, synchronise=True)
    mask = alpha > 0.5
    with torch.no_grad():
        final, _ = render_features(geom, result.colours, cams, torch.ones(3), "torch")
    psnr = -10 * math.log10(mse(final, targets, mask))
    assert psnr > 28.0, psnr
    assert mse(rgb, targets, mask) > 10 * mse(final, targets, mask)  # the original was not it
    assert denoiser.evaluations == VIEWS * result.steps


def test_views_are_spread_around_the_turnaround():
    from gausynth_engine._sample import SampleSpec, orbit_cameras

    _, poses = orbit_cameras(SampleSpec(frames=36, width=64, height=64))
    picked = select_views(poses, 6)
    angles = np.sort(np.degrees(np.mod(azimuths(poses[picked]), 2 * np.pi)))
    gaps = np.diff(np.concatenate([angles, angles[:1] + 360]))
    assert len(picked) == 6 and np.allclose(gaps, 60.0, atol=10.1), gaps
    # A half turn: the views span it from end to end instead of crowding one side.
    half = poses[:18]  # 0° … 170°
    picked = select_views(half, 4)
    assert picked[0] == 0 and picked[-1] == 17 and len(set(picked)) == 4
    assert select_views(poses, 6, "frames") == [0, 6, 12, 18, 24, 30]
    assert select_views(poses[:3], 8) == [0, 1, 2]


# --- the real denoisers, on tiny random models --------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return save_tiny_models(root), save_random_sd15(root, TINY_SD15)


def lay_out_run(scene, root: Path) -> Path:
    """A run folder as splat_orig leaves it: the SfM model, and gs/orig_*/ with its PLY."""
    from synthetic_scene import run_with_true_sfm

    layout = run_with_true_sfm(scene, root)
    gs = layout.gs / "orig_30-20260101-000000"
    write_ply(gs / "point_cloud" / "iteration_30" / "point_cloud.ply", gaussians_at_surface(scene[0]))
    (gs / "results.json").write_text(json.dumps({"evaluations": {}}))
    from gausynth_engine._manifest import write_json_atomic

    write_json_atomic(layout.manifest("splat_orig"), {  # finished, on this run's SfM model
        "stage": "splat_orig", "fingerprint": "orig", "inputs": {"sfm": None},
        "record": {"folder": str(gs.relative_to(layout.root))}})
    return layout


def sync_preset(tiny, family: str, **fields: object):
    sdxl, sd15 = tiny
    models = ({"sync.checkpoint": str(sdxl.checkpoint), "sync.controlnet_model": str(sdxl.controlnet),
               "reimagine.ip_adapter_model": str(sdxl.ip_adapter)} if family == "sdxl" else
              {"sync.checkpoint": str(sd15.checkpoint), "sync.controlnet_model": str(sd15.controlnet),
               "reimagine.ip_adapter_model": str(sd15.ip_adapter)})
    sets = {"run.pipeline": "reimagine-sync", "run.device": "cpu", "sync.family": family, "sync.size": 64,
            "sync.views": VIEWS, "sync.steps": 3, "sync.seed": 5, "sync.fit_steps": 3,
            "sync.final_fit_steps": 15, **models, **fields}
    return parse_preset("", "test", [f"{k}={json.dumps(v)}" for k, v in sets.items()])


def run_stage(preset, layout):
    from gausynth_engine.stages import sync

    events: list[dict] = []
    ctx = StageContext(sync.STAGE, preset, layout, layout.staging_for("sync"), events.append, "cpu")
    sync.STAGE.run(ctx)
    return ctx, events


@pytest.mark.parametrize("family,control", [("sdxl", "canny"), ("sd15", "depth")])
def test_the_stage_reimagines_the_3dgs_and_renders_every_frame(tiny, scene, tmp_path, family, control):
    """SD-XL (canny of the original's renders) and SD 1.5 (its rendered depth), both with the
    IP-Adapter and guidance: the loop runs end to end and leaves what splat_reim trains on."""
    layout = lay_out_run(scene, tmp_path / "run")
    ctx, events = run_stage(sync_preset(tiny, family, **{"sync.control": control}), layout)

    rec = ctx.record_data
    # Every view at every step, twice with classifier-free guidance, in one batch per step.
    assert rec["unet_evaluations"] == VIEWS * 3 * 2 and rec["unet_calls"] == 3
    frames = sorted((ctx.out.reim3d_frames).glob("*.png"))
    names = sorted(p.name for p in (scene[1]).glob("*.png"))
    assert [p.name for p in frames] == names  # lined up with colmap/images, every registered frame
    from gausynth_engine._media import read_image

    first = read_image(frames[0])
    assert first.shape == (SIZE, SIZE, 4) and 0 < (first[..., 3] > 128).mean() < 1
    original, reimagined = read_ply(layout.gs / "orig_30-20260101-000000" / "point_cloud" / "iteration_30"
                                    / "point_cloud.ply"), read_ply(ctx.out.sync / "point_cloud.ply")
    assert np.array_equal(original["means"], reimagined["means"])  # the geometry is kept
    assert np.abs(original["sh0"] - reimagined["sh0"]).mean() > 0.05  # the colours are new
    assert len(list((ctx.out.sync / "views").glob("*.png"))) == VIEWS
    assert len(list((ctx.out.sync / "control").glob("*.png"))) == VIEWS
    progress = [e for e in events if e["type"] == "progress" and e["unit"] == "view-steps"]
    assert progress[-1]["value"] == progress[-1]["total"] == VIEWS * 3
    metrics = {e["name"] for e in events if e["type"] == "metric"}
    assert {"consistency_psnr", "sync_residual", "seconds_per_view_step"} <= metrics
    assert rec["family"] == family and len(rec["views"]) == VIEWS


@pytest.mark.parametrize("guidance,batch,calls,evaluations", [
    (1.0, 2, 3 * VIEWS // 2, 3 * VIEWS),  # no guidance: each view-step once, two views a call
    (5.0, 3, 3 * 2, 3 * VIEWS * 2),  # guidance: each view-step twice, in chunks of 3 + 1 views
])
def test_guidance_and_batches_set_the_unet_calls(tiny, world, guidance, batch, calls, evaluations):
    from gausynth_engine.synchronise.diffusers_denoiser import (
        FamilySources,
        UNetDenoiser,
        ddim_scheduler,
        load_pipeline,
    )
    from gausynth_engine.synchronise.sampler import VaeCodec

    geom, cams, rgb, _ = world
    cams = cams.scaled(64 / SIZE)  # the tiny VAE and UNet need sides divisible by 16
    rgb = torch.nn.functional.interpolate(rgb.permute(0, 3, 1, 2), size=(64, 64)).permute(0, 2, 3, 1)
    pipe = load_pipeline(FamilySources("sd15", tiny[1].checkpoint), "cpu", torch.float32, False)
    denoiser = UNetDenoiser(pipe, "sd15", "a toy", "", guidance, 64, "cpu")
    settings = SyncSettings(steps=3, batch=batch, fit_steps=1, final_fit_steps=1)
    result = sample(denoiser, VaeCodec(pipe.vae), ddim_scheduler(pipe), geom, cams, rgb, settings, device="cpu")
    assert (denoiser.calls, denoiser.evaluations) == (calls, evaluations)
    assert result.images.shape == (VIEWS, 64, 64, 3) and len(result.residuals) == 3


def test_without_the_original_3dgs_the_stage_says_what_to_run(tiny, scene, tmp_path):
    from synthetic_scene import run_with_true_sfm

    layout = run_with_true_sfm(scene, tmp_path / "run")
    with pytest.raises(StageError, match=r"splat_orig has not finished in this run: synchronised diffusion needs .* run the stages from splat_orig"):
        run_stage(sync_preset(tiny, "sdxl"), layout)


def test_the_sync_route_is_chosen_in_the_preset():
    from gausynth_engine.stages import BY_ID

    sync = BY_ID["sync"]
    assert sync.off_reason(parse_preset("", "t", ['run.pipeline="reimagine-sync"'])) is None
    assert "reimagine-sync" in sync.off_reason(parse_preset("", "t", []))
    preset = parse_preset("", "t", ['run.pipeline="reimagine-sync"', 'sync.family="sd15"'])
    from gausynth_engine.models import preset_models

    refs = {r.key: r for r in preset_models(preset)}
    assert refs["checkpoint"].source == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert refs["controlnet"].source == "lllyasviel/control_v11f1p_sd15_depth"
    assert refs["ip_adapter"].files[0] == "models/ip-adapter_sd15.safetensors"
    assert dataclasses.asdict(preset.sync)["views"] == 8
