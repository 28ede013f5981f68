"""sync on a CUDA GPU: the gsplat paths (features, depth) agree with ours; synchronisation works
there too; the stage runs on tiny models in fp16."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

sys.path[:0] = [str(Path(__file__).parent)]
import test_sync as cpu_tests  # noqa: E402
from test_sync import StandIn, ddim, gaussians_at_surface, lay_out_run, sync_preset  # noqa: E402

scene = cpu_tests.scene  # the fixtures the CPU tests use
tiny = cpu_tests.tiny

from gausynth_engine.synchronise.cameras import select_views  # noqa: E402
from gausynth_engine.synchronise.gaussians import (  # noqa: E402
    Cameras,
    Geometry,
    consistency_psnr,
    render_depth,
    render_features,
)
from gausynth_engine.synchronise.sampler import PixelCodec, SyncSettings, sample  # noqa: E402


@pytest.fixture(scope="module")
def world(scene):
    from gausynth_engine.stages.sync import frame_cameras

    frames = frame_cameras(scene[0])
    ids = select_views(frames.viewmats, 4)
    geom = Geometry.from_ply(gaussians_at_surface(scene[0]), "cuda")
    cams = Cameras(torch.tensor(frames.viewmats[ids], dtype=torch.float32, device="cuda"),
                   torch.tensor(frames.Ks[ids], dtype=torch.float32, device="cuda"), 40, 40)
    return geom, cams


def test_gsplat_renders_features_and_depth_as_the_torch_compositor_does(world):
    geom, cams = world
    feats = torch.rand(len(geom), 4, device="cuda")
    white = torch.ones(4, device="cuda")
    ours, a1 = render_features(geom, feats, cams, white, "torch")
    theirs, a2 = render_features(geom, feats, cams, white, "gsplat")
    assert (ours - theirs).abs().mean() < 0.02 and (a1 - a2).abs().mean() < 0.02
    d1, _ = render_depth(geom, cams, "torch")
    d2, _ = render_depth(geom, cams, "gsplat")
    both = (d1 > 0) & (d2 > 0)
    assert ((d1 - d2).abs()[both] / d1[both]).mean() < 0.02


@pytest.mark.parametrize("space", ["pixel", "latent"])
def test_synchronised_views_agree_on_the_gpu(world, space):
    geom, cams = world
    rgb, alpha = render_features(geom, geom.rgb, cams, torch.ones(3, device="cuda"), "gsplat")
    g = torch.Generator().manual_seed(0)
    pal = torch.nn.functional.interpolate(torch.rand(len(cams), 3, 4, 4, generator=g), size=(40, 40),
                                          mode="nearest").permute(0, 2, 3, 1).cuda()
    targets = pal * alpha + (1 - alpha)
    mask = alpha[..., 0] > 0.5
    scores = {}
    for synchronise in (True, False):
        scheduler = ddim()
        scheduler.alphas_cumprod = scheduler.alphas_cumprod.cuda()
        settings = SyncSettings(steps=4, synchronise=synchronise, space=space, fit_steps=10, final_fit_steps=40)
        result = sample(StandIn(targets, scheduler), PixelCodec(), scheduler, geom, cams, rgb, settings,
                        device="cuda")
        scores[synchronise] = consistency_psnr(result.images, geom, cams, mask, backend="gsplat", steps=60)
    assert scores[True] > 30.0 and scores[False] < 20.0, scores


def test_the_stage_runs_on_the_gpu_in_half_precision(tiny, scene, tmp_path):
    from gausynth_engine._stage import StageContext
    from gausynth_engine.stages import sync

    layout = lay_out_run(scene, tmp_path / "run")
    preset = sync_preset(tiny, "sdxl", **{"run.device": "cuda", "sync.control": "depth"})
    ctx = StageContext(sync.STAGE, preset, layout, layout.staging_for("sync"), lambda e: None, "cuda")
    sync.STAGE.run(ctx)
    assert ctx.record_data["unet_evaluations"] == 4 * 3 * 2
    assert ctx.record_data["peak_vram_bytes"] > 0
    assert len(list(ctx.out.reim3d_frames.glob("*.png"))) == 12
