"""splat: a user trains 3D Gaussians on a turn-around; CPU-sized, through the PyTorch rasterizer."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from synthetic_scene import make_true_scene  # noqa: E402

from gausynth_engine.splatting.dataset import load_scene  # noqa: E402
from gausynth_engine.splatting.train import TrainConfig, Trainer, train  # noqa: E402

SIZE = 40  # px: tiny views keep the pure-PyTorch rasterizer fast on two cores


def tiny_config(iterations: int, **extra: object) -> TrainConfig:
    base = dict(iterations=iterations, eval_at=(1,), test_every=4, refine_start=10, refine_every=10, refine_stop=35,
                checkpoint_every=10, report_every=0.0, grow_grad2d=5e-5)
    base.update(extra)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def true_scene(sample_video: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A COLMAP model + views of the generated sample from its true cameras (no SfM needed)."""
    cameras = sample_video.with_suffix(".cameras.json")
    return make_true_scene(tmp_path_factory.mktemp("scene"), views=12, width=SIZE, height=SIZE,
                           points=500, cameras_json=cameras)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Recorder:
    """Collects the trainer's events; can pretend the worker is killed after a given step."""

    def __init__(self, kill_after: int | None = None) -> None:
        self.kill_after = kill_after
        self.metrics: list[tuple[str, float, int | None]] = []
        self.logs: list[str] = []
        self.steps: list[float] = []

    def progress(self, value: float, total: float, unit: str = "") -> None:
        self.steps.append(value)
        if self.kill_after is not None and value > self.kill_after:
            raise KeyboardInterrupt("killed")

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        self.metrics.append((name, value, step))

    def log(self, message: str, level: str = "info") -> None:
        self.logs.append(message)

    def values(self, name: str) -> list[float]:
        return [v for n, v, _ in self.metrics if n == name]


def test_a_tiny_training_learns_the_object_and_its_ply_loads_back(true_scene, tmp_path):
    from gausynth_engine.splatting.ply import read_ply
    from gausynth_engine.splatting.rasterize import render

    scene = load_scene(*true_scene)
    report = Recorder()
    result = train(scene, tiny_config(60), tmp_path / "gs", tmp_path / "work", report)

    results = json.loads((tmp_path / "gs" / "results.json").read_text())
    first, last = results["evaluations"]["ours_1"], results["evaluations"]["ours_60"]
    assert last["psnr"] > first["psnr"] + 1.0, (first["psnr"], last["psnr"])
    assert set(last["views"]) == set(results["test_views"]) == {"0000.png", "0004.png", "0008.png"}
    assert report.values("eval_psnr") == [first["psnr"], last["psnr"]]
    assert {"loss", "psnr", "num_gaussians", "its_per_s", "eta_s", "eval_ssim", "checkpoint"} \
        <= {name for name, _, _ in report.metrics}
    assert report.values("loss")[-1] < report.values("loss")[0]
    assert report.values("num_gaussians")[-1] > report.values("num_gaussians")[0]  # densified
    assert report.steps == list(range(1, 61))
    for step in (1, 60):
        assert len(list((tmp_path / "gs" / "test" / f"ours_{step}" / "renders").glob("*.png"))) == 3
        assert len(list((tmp_path / "gs" / "train" / f"ours_{step}" / "renders").glob("*.png"))) == 9
    assert sorted(p.name for p in (tmp_path / "gs" / "renders_60").iterdir()) == scene.names

    ply = read_ply(tmp_path / "gs" / "point_cloud" / "iteration_60" / "point_cloud.ply")
    assert set(ply) == set(result.params)
    for name, value in result.params.items():
        np.testing.assert_array_equal(ply[name], value, err_msg=name)
    # The reloaded Gaussians draw exactly the final render.
    params = {k: torch.from_numpy(v) for k, v in ply.items()}
    rgb, _, _ = render(params, torch.tensor(scene.viewmats[:1], dtype=torch.float32),
                       torch.tensor(scene.Ks[:1], dtype=torch.float32), SIZE, SIZE, sh_degree=0,
                       background=torch.ones(3), backend="torch")
    from gausynth_engine._media import read_image

    saved = read_image(tmp_path / "gs" / "renders_60" / "0000.png")
    drawn = (rgb[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    assert np.abs(drawn.astype(int) - saved).max() <= 1


def test_a_killed_training_resumes_and_ends_like_an_uninterrupted_one(true_scene, tmp_path):
    scene = load_scene(*true_scene)
    config = tiny_config(40)
    whole = train(scene, config, tmp_path / "a", tmp_path / "work_a")

    with pytest.raises(KeyboardInterrupt):
        train(scene, config, tmp_path / "b", tmp_path / "work_b", Recorder(kill_after=25))
    assert (tmp_path / "work_b" / "last.pt").exists()
    report = Recorder()
    resumed = train(scene, config, tmp_path / "b", tmp_path / "work_b", report)

    assert resumed.start_step == 20 and resumed.final_step == whole.final_step == 40
    assert report.steps == list(range(21, 41))
    assert any("resuming from the checkpoint at step 20" in m for m in report.logs)
    assert resumed.num_gaussians == whole.num_gaussians
    a, b = whole.results["ours_40"], resumed.results["ours_40"]
    assert abs(a["psnr"] - b["psnr"]) < 0.1 and abs(a["ssim"] - b["ssim"]) < 0.01
    assert "ours_1" in resumed.results  # evaluations before the kill are kept


def test_a_checkpoint_of_other_settings_is_not_resumed(true_scene, tmp_path):
    scene = load_scene(*true_scene)
    with pytest.raises(KeyboardInterrupt):
        train(scene, tiny_config(20), tmp_path / "gs", tmp_path / "work", Recorder(kill_after=12))
    report = Recorder()
    result = train(scene, tiny_config(20, sh_degree=1), tmp_path / "gs", tmp_path / "work", report)
    assert result.start_step == 0 and report.steps[0] == 1


def test_the_torch_rasterizer_matches_a_per_pixel_reference():
    """Front-to-back blending of every Gaussian at every pixel, written as plainly as possible."""
    from gausynth_engine.splatting.rasterize_torch import rasterize

    g = torch.Generator().manual_seed(3)
    n, w, h = 24, 20, 16
    means = torch.rand(n, 3, generator=g) * torch.tensor([1.0, 0.8, 0.5]) - torch.tensor([0.5, 0.4, 0.0])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.08 + 0.02
    opac = torch.rand(n, generator=g) * 0.9 + 0.05
    coeffs = torch.randn(n, 1, 3, generator=g)
    viewmat = torch.eye(4)[None]
    viewmat[0, 2, 3] = 3.0
    K = torch.tensor([[[30.0, 0, w / 2], [0, 30.0, h / 2], [0, 0, 1]]])
    bg = torch.tensor([1.0, 0.5, 0.0])
    rgb, alpha, info = rasterize(means, quats, scales, opac, coeffs, viewmat, K, w, h, 0, bg)

    means2d, conics, depths = info["means2d"][0], info["conics"][0], info["depths"][0]
    colors = torch.clamp_min(coeffs[:, 0] * 0.28209479177387814 + 0.5, 0)
    visible = (info["radii"][0] > 0).all(-1)
    order = [i for i in torch.argsort(depths).tolist() if visible[i]]
    expected = torch.zeros(h, w, 3)
    for y in range(h):
        for x in range(w):
            T, c = 1.0, torch.zeros(3)
            for i in order:
                d = torch.tensor([x + 0.5, y + 0.5]) - means2d[i]
                a_, b_, c_ = conics[i]
                sigma = 0.5 * (a_ * d[0] ** 2 + c_ * d[1] ** 2) + b_ * d[0] * d[1]
                r = info["radii"][0, i]
                inside = abs(d[0]) <= r[0] + 1 and abs(d[1]) <= r[1] + 1
                a = min(0.999, float(opac[i] * torch.exp(-sigma)))
                if sigma < 0 or a < 1 / 255 or not inside:
                    continue
                if T * (1 - a) <= 1e-4:
                    break
                c += T * a * colors[i]
                T *= 1 - a
            expected[y, x] = c + T * bg
    assert visible.sum() > 10
    assert torch.allclose(rgb[0], expected, atol=2e-2), (rgb[0] - expected).abs().max()
    assert (rgb[0] - expected).abs().mean() < 2e-3


def test_the_stage_writes_the_standard_gs_folder_and_video(true_scene, sample_video, tmp_path,
                                                           monkeypatch):
    """The orig variant of an 'original' preset without background removal, end to end."""
    import shutil

    from synthetic_scene import run_with_true_sfm

    from gausynth_engine import parse_preset
    from gausynth_engine._stage import StageContext
    from gausynth_engine.stages import splat

    layout = run_with_true_sfm(true_scene, tmp_path / "run")
    preset = parse_preset("", "test", ["run.pipeline='original'", "mask.method='off'",
                                       "run.device='cpu'"])
    # Fewer iterations than a preset allows (≥ 1000): the CPU rasterizer is slow.
    small = dataclasses.replace(preset.splat, iterations=30, eval_at=(10,), test_every=4,
                                checkpoint_every=100)
    preset = dataclasses.replace(preset, splat=small)
    events: list[dict] = []
    ctx = StageContext(splat.STAGE_ORIG, preset, layout, layout.staging_for("splat_orig"),
                       events.append, "cpu")
    splat.STAGE_ORIG.run(ctx)

    runs = list(ctx.out.gs.iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("orig_30-")
    gs = runs[0]
    results = json.loads((gs / "results.json").read_text())
    assert set(results["evaluations"]) == {"ours_10", "ours_30"}
    assert (gs / "point_cloud" / "iteration_30" / "point_cloud.ply").exists()
    assert len(list((gs / "renders_30").glob("*.png"))) == 12
    assert (ctx.out.video("gs_orig")).stat().st_size > 0
    assert ctx.record_data["source"] == "filtered_frames_colmap"
    assert ctx.record_data["views"] == 12 and ctx.record_data["resumed_from"] == 0
    assert not (layout.meta / "checkpoints" / "orig").exists()  # the work folder is gone
    kinds = {e["type"] for e in events}
    assert {"progress", "metric", "log", "artifact"} <= kinds
    assert [e["value"] for e in events if e["type"] == "progress"][-1] == 30

    # Once the reimagined variant also exists, the two are compared side by side.
    shutil.copytree(gs, layout.gs / "reim_30-20260101-000000")
    splat.compare_with_other(ctx, "orig", gs)
    table = (ctx.out.gs / "compare.md").read_text()
    assert "| reim | reim_30-20260101-000000 | 30 |" in table and f"| orig | {gs.name} | 30 |" in table
    from gausynth_engine._media import probe_input

    video = probe_input(ctx.out.video("gs_compare"))
    assert (video.frame_count, video.width, video.height) == (12, 2 * SIZE, SIZE)
    from gausynth_engine._stage import check_outputs

    check_outputs(splat.STAGE_ORIG, ctx.out.root)  # a declared output (the H200's quick run
    assert "new_videos/gs_compare.mp4" in splat.STAGE_REIM.may_write  # failed on it once)


def test_out_of_memory_is_explained(true_scene, tmp_path, monkeypatch):
    from gausynth_engine.splatting import train as train_module

    def boom(self: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(train_module.Trainer, "step", boom)
    scene = load_scene(*true_scene)
    with pytest.raises(train_module.OutOfMemory, match=r"500 Gaussians at 40×40 px.*downscale"):
        train(scene, tiny_config(20), tmp_path / "gs", tmp_path / "work", device="cpu")


def test_a_stage_killed_mid_training_resumes_on_the_next_run(true_scene, tmp_path):
    import shutil

    from synthetic_scene import run_with_true_sfm

    from gausynth_engine import parse_preset
    from gausynth_engine._stage import StageContext
    from gausynth_engine.stages import splat

    layout = run_with_true_sfm(true_scene, tmp_path / "run")
    preset = parse_preset("", "test", ["run.pipeline='original'", "mask.method='off'"])
    small = dataclasses.replace(preset.splat, iterations=24, eval_at=(), test_every=4,
                                checkpoint_every=10)
    preset = dataclasses.replace(preset, splat=small)

    def killer(event: dict) -> None:  # killed just after the checkpoint at step 10 is written
        if event["type"] == "log" and event["message"] == "checkpoint at step 10":
            raise KeyboardInterrupt("worker killed")

    first = StageContext(splat.STAGE_ORIG, preset, layout, layout.staging_for("splat_orig"),
                         killer, "cpu")
    with pytest.raises(KeyboardInterrupt):
        splat.STAGE_ORIG.run(first)
    shutil.rmtree(layout.staging, ignore_errors=True)  # as the orchestrator does with a failed stage's outputs
    assert (layout.meta / "checkpoints" / "orig" / "last.pt").exists()

    events: list[dict] = []
    again = StageContext(splat.STAGE_ORIG, preset, layout, layout.staging_for("splat_orig"),
                         events.append, "cpu")
    splat.STAGE_ORIG.run(again)
    assert again.record_data["resumed_from"] == 10
    steps = [e["value"] for e in events if e["type"] == "progress"]
    assert steps[0] == 11 and steps[-1] == 24
    assert (again.out.gs / again.record_data["folder"].split("/", 1)[1] / "results.json").exists()


def test_pixels_a_view_does_not_hold_teach_nothing(true_scene):
    """A partial frame (a reimagined square inside a wider SfM frame): whatever lies outside its
    valid pixels, the training step is the same."""
    scene = load_scene(*true_scene)
    valid = np.ones(scene.images.shape[:3], bool)
    valid[:, :, : SIZE // 2] = False
    steps = []
    for fill in (0, 255):
        images = scene.images.copy()
        images[~valid] = fill
        trainer = Trainer(dataclasses.replace(scene, images=images, valid=valid), tiny_config(5), "cpu")
        torch.manual_seed(0)
        trainer.step()
        steps.append({k: v.detach().clone() for k, v in trainer.params.items()})
    for k in steps[0]:
        torch.testing.assert_close(steps[0][k], steps[1][k], msg=k)
    # ...while without the validity mask the garbage would be learnt.
    changed = []
    for fill in (0, 255):
        images = scene.images.copy()
        images[~valid] = fill
        trainer = Trainer(dataclasses.replace(scene, images=images), tiny_config(5), "cpu")
        torch.manual_seed(0)
        trainer.step()
        changed.append(trainer.params["sh0"].detach().clone())
    assert not torch.allclose(changed[0], changed[1])
