"""splat on a CUDA GPU: gsplat and our PyTorch rasterizer agree; both strategies train."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

from synthetic_scene import make_true_scene  # noqa: E402

from gausynth_engine.splatting.dataset import load_scene  # noqa: E402
from gausynth_engine.splatting.train import TrainConfig, Trainer, train  # noqa: E402


@pytest.fixture(scope="module")
def true_scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_true_scene(tmp_path_factory.mktemp("scene"), views=16, width=128, height=128,
                           points=3000, workers=8)


def config(iterations: int, **extra: object) -> TrainConfig:
    base = dict(iterations=iterations, eval_at=(1,), test_every=8, refine_start=100,
                refine_every=100, refine_stop=iterations - 100, checkpoint_every=10_000)
    base.update(extra)
    return TrainConfig(**base)


def test_the_torch_rasterizer_draws_what_gsplat_draws(true_scene):
    from gausynth_engine.splatting.rasterize import render

    scene = load_scene(*true_scene)
    trainer = Trainer(scene, config(400, sh_degree=1, sh_every=100), "cuda")
    for _ in range(400):  # realistic Gaussians: trained, densified, some view dependence
        trainer.step()
    worst_mean, worst_max = 0.0, 0.0
    with torch.no_grad():
        for view in range(len(scene.names)):
            args = (trainer.viewmats[view:view + 1], trainer.Ks[view:view + 1], 128, 128)
            kw = dict(sh_degree=1, background=trainer.background)
            ours, alpha_t, _ = render(trainer.params, *args, backend="torch", **kw)
            ref, alpha_g, _ = render(trainer.params, *args, backend="gsplat", **kw)
            packed, _, _ = render(trainer.params, *args, backend="gsplat", packed=True, **kw)
            assert (packed - ref).abs().max().item() < 1e-4
            diff = (ours - ref).abs()
            worst_mean = max(worst_mean, diff.mean().item())
            worst_max = max(worst_max, diff.max().item())
            assert (alpha_t - alpha_g).abs().mean().item() < 2e-3
    print(f"torch vs gsplat over {len(scene.names)} views, {trainer.num_gaussians} Gaussians: "
          f"worst mean |Δ| {worst_mean:.2e}, worst max |Δ| {worst_max:.2e}")
    assert worst_mean < 1e-3
    assert worst_max < 5e-2


def test_the_torch_rasterizer_gives_gsplat_s_gradients(true_scene):
    from gausynth_engine.splatting.rasterize import render

    scene = load_scene(*true_scene)
    trainer = Trainer(scene, config(10), "cuda")
    target = trainer.images[3:4].float() / 255
    grads = {}
    for backend in ("torch", "gsplat"):
        rgb, _, info = render(trainer.params, trainer.viewmats[3:4], trainer.Ks[3:4], 128, 128,
                              sh_degree=0, background=trainer.background, backend=backend)
        info["means2d"].retain_grad()
        ((rgb - target) ** 2).mean().backward()
        grads[backend] = {k: p.grad.clone() for k, p in trainer.params.items()}
        grads[backend]["means2d"] = info["means2d"].grad.clone()
        for p in trainer.params.values():
            p.grad = None
    for name in ("means", "scales", "opacities", "sh0", "means2d"):
        a, b = grads["torch"][name].flatten(), grads["gsplat"][name].flatten()
        cos = torch.nn.functional.cosine_similarity(a, b, dim=0).item()
        print(f"gradient of {name}: cosine {cos:.4f}")
        assert cos > 0.98, name


@pytest.mark.parametrize("packed", [False, True])
def test_the_default_strategy_densifies_and_learns(true_scene, tmp_path, packed):
    scene = load_scene(*true_scene)
    result = train(scene, config(800, packed=packed), tmp_path / "gs", tmp_path / "work",
                   device="cuda")
    first, last = result.results["ours_1"], result.results["ours_800"]
    print(f"default packed={packed}: {first['num_gaussians']} → {result.num_gaussians} Gaussians, "
          f"PSNR {first['psnr']:.2f} → {last['psnr']:.2f} dB, {result.its:.0f} it/s")
    assert result.num_gaussians != first["num_gaussians"]
    assert last["psnr"] > first["psnr"] + 3


def test_mcmc_keeps_under_its_cap(true_scene, tmp_path):
    scene = load_scene(*true_scene)
    cap = 4500
    result = train(scene, config(800, strategy="mcmc", max_gaussians=cap), tmp_path / "gs",
                   tmp_path / "work", device="cuda")
    first, last = result.results["ours_1"], result.results["ours_800"]
    print(f"mcmc: {first['num_gaussians']} → {result.num_gaussians} Gaussians (cap {cap}), "
          f"PSNR {first['psnr']:.2f} → {last['psnr']:.2f} dB")
    assert first["num_gaussians"] < result.num_gaussians <= cap
    assert last["psnr"] > first["psnr"] + 3


def test_the_stage_trains_on_the_gpu_with_a_real_preset(true_scene, tmp_path):

    from synthetic_scene import run_with_true_sfm

    from gausynth_engine import parse_preset
    from gausynth_engine._stage import StageContext
    from gausynth_engine.stages import splat

    layout = run_with_true_sfm(true_scene, tmp_path / "run")
    preset = parse_preset("", "test", ["run.pipeline='original'", "mask.method='off'",
                                       "splat.iterations=1000", "splat.eval_at=[500]",
                                       "splat.checkpoint_every=400"])
    events: list[dict] = []
    ctx = StageContext(splat.STAGE_ORIG, preset, layout, layout.staging_for("splat_orig"),
                       events.append, "cuda")
    splat.STAGE_ORIG.run(ctx)
    gs = next(ctx.out.gs.iterdir())
    results = json.loads((gs / "results.json").read_text())
    assert set(results["evaluations"]) == {"ours_500", "ours_1000"}
    assert results["evaluations"]["ours_1000"]["psnr"] > 20
    assert any(e["type"] == "metric" and e["name"] == "peak_vram" for e in events)
    assert any(e["type"] == "metric" and e["name"] == "checkpoint" for e in events)
    assert ctx.out.video("gs_orig").exists()
    print("stage record:", json.dumps(ctx.record_data))


def real_set(name: str) -> Path:
    """A real capture from ../shared/data, or from a git-ignored .data/ copy on the device."""
    repo = Path(__file__).resolve().parents[2]
    for root in (repo.parent / "shared" / "data", repo / ".data"):
        if (root / name).is_dir():
            return root / name
    pytest.skip(f"{name} is absent (../shared/data or .data)")


def test_the_plush_dog_turntable_trains_clean_on_the_original_only_preset(tmp_path):
    """The real turntable through the CLI with the bundled preset's defaults: SfM, masks, 10k."""
    import subprocess
    import sys

    images = real_set("plush-dog") / "images"
    argv = [sys.executable, "-m", "gausynth_engine", "run", "original-only",
            "--set", f"run.input={images}", "--set", f"run.outputs_root={tmp_path}",
            "--set", "run.directory=plush", "--set", "preprocess.num_frames=0"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    manifests = tmp_path / "plush" / ".gausynth" / "manifests"
    mask = json.loads((manifests / "mask.json").read_text())["record"]
    record = json.loads((manifests / "splat_orig.json").read_text())["record"]
    print("plush-dog:", json.dumps({k: record[k] for k in ("psnr", "ssim", "object_psnr", "num_gaussians",
                                                          "train_seconds", "size")}))
    assert mask["turntable"] is True and record["masked"] is True
    assert record["psnr"] >= 27.5 and record["object_psnr"] >= 23.5
