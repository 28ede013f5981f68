"""The end-to-end bench's own parts: its reading of a run's journal, and its U²-Net."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))


def write_journal(layout, events) -> None:
    from gausynth_engine._journal import JournalWriter

    writer = JournalWriter(layout.journal)
    for e in events:
        writer.write(e)
    writer.close()


def test_each_stage_gets_the_gpu_samples_taken_while_it_ran(tmp_path: Path) -> None:
    """A lead reads per-stage GPU busy share and device memory off the journal's telemetry;
    a sample between two stages belongs to neither."""
    import e2e

    from gausynth_engine import (
        RunFinished,
        RunLayout,
        StageDone,
        StagePlanned,
        StageStarted,
        Telemetry,
    )

    layout = RunLayout(tmp_path / "run")
    gpu = "NVIDIA H200"
    write_journal(layout, [
        StagePlanned(stage="reimagine", action="run", reason="new", t=0.0),
        StagePlanned(stage="sfm", action="run", reason="new", t=0.0),
        StagePlanned(stage="splat_orig", action="off", reason="not here", t=0.0),
        StageStarted(stage="reimagine", pid=1, fingerprint="a", log="x", t=10.0),
        Telemetry(device=gpu, vram_used=20 << 30, utilization=100.0, t=11.0),
        Telemetry(device=gpu, vram_used=30 << 30, utilization=50.0, t=12.0),
        StageDone(stage="reimagine", seconds=3.0, peak_vram=25 << 30, t=13.0),
        Telemetry(device=gpu, vram_used=99 << 30, utilization=0.0, t=13.5),  # between stages
        StageStarted(stage="sfm", pid=2, fingerprint="b", log="y", t=14.0),
        Telemetry(device=gpu, vram_used=1 << 30, utilization=0.0, t=15.0),
        Telemetry(device=gpu, vram_used=1 << 30, utilization=10.0, t=16.0),
        StageDone(stage="sfm", seconds=3.0, t=17.0),
        RunFinished(status="done", seconds=17.0, t=17.0),
    ])
    run = e2e.read_run(layout)
    reim, sfm = run["stages"]["reimagine"], run["stages"]["sfm"]
    assert reim["gpu_busy"] == pytest.approx(0.75)
    assert reim["device_vram_max"] == 30 << 30
    assert reim["peak_vram"] == 25 << 30
    assert sfm["gpu_busy"] == pytest.approx(0.05)
    assert sfm["device_vram_max"] == 1 << 30
    assert run["stages"]["splat_orig"]["state"] == "off"
    assert run["total_seconds"] == 17.0
    table = "\n".join(e2e.stage_table(run))
    assert "75%" in table and "off" in table


def test_a_stage_cut_by_the_budget_is_extrapolated_from_its_progress(tmp_path: Path) -> None:
    """When the bench cancels a long training, the report gives the whole stage's time at the
    rate it was going, not the time it had when cut."""
    import e2e

    from gausynth_engine import Progress, StageCancelled, StagePlanned, StageStarted

    layout = run_layout(tmp_path)
    write_journal(layout, [
        StagePlanned(stage="splat_orig", action="run", reason="new", t=0.0),
        StageStarted(stage="splat_orig", pid=1, fingerprint="a", log="x", t=100.0),
        Progress(stage="splat_orig", value=100, total=10000, unit="it", t=110.0),  # 10 s set-up
        Progress(stage="splat_orig", value=2100, total=10000, unit="it", t=130.0),  # 100 it/s
        StageCancelled(stage="splat_orig", t=131.0),
    ])
    stage = e2e.read_run(layout)["stages"]["splat_orig"]
    assert stage["state"] == "cancelled"
    assert stage["seconds"] == pytest.approx(31.0)
    assert stage["estimated_seconds"] == pytest.approx(10.0 + 9900 / 100, abs=0.2)
    assert stage["progress_at_cut"] == "2100/10000 it"


def run_layout(tmp_path: Path):
    from gausynth_engine import RunLayout

    return RunLayout(tmp_path / "run")


def test_u2net_is_the_published_architecture() -> None:
    """The bench's U²-Net has exactly the parameter count of rembg's u2net.onnx (the full model
    of the paper) and gives the fused map plus six side maps at the input size."""
    import random_models
    import torch

    model = random_models.u2net(1.0)
    assert random_models.count(model) == random_models.PUBLISHED["u2net"][0] == 44_009_869
    small = random_models.u2net(0.125).eval()
    with torch.no_grad():
        outs = small(torch.rand(1, 3, 96, 80))
    assert len(outs) == 7 and all(o.shape == (1, 1, 96, 80) for o in outs)
    assert all(float(o.min()) >= 0.0 and float(o.max()) <= 1.0 for o in outs)


def test_the_exported_u2net_is_what_blend_loads_through_rembg(tmp_path: Path) -> None:
    """Saved as u2net.onnx, the export opens in rembg's own u2net session through the engine's
    MaskSession (the blend stage's path) and gives a mask of the image's size."""
    pytest.importorskip("rembg")
    pytest.importorskip("onnx")
    import random_models

    from gausynth_engine.cutout import MaskSession

    facts = random_models.export_u2net(tmp_path / "u2net.onnx", tiny=True)
    session = MaskSession(facts["path"], "cpu")
    assert session.model.session == "u2net"
    image = (np.random.default_rng(0).random((60, 90, 3)) * 255).astype(np.uint8)
    alpha = session.mask(image)
    assert alpha.shape == (60, 90)
    assert 0.0 <= float(alpha.min()) < float(alpha.max()) <= 1.0


def test_without_a_cuda_onnxruntime_u2net_runs_its_own_onnx_file_through_torch(tmp_path: Path) -> None:
    """Where onnxruntime has no CUDA provider (the H200 device), mask and blend run the same
    u2net.onnx (graph and weights) through PyTorch: all seven maps match onnxruntime's to float
    rounding, and rembg's mask through it is onnxruntime's to within one grey level."""
    pytest.importorskip("rembg")
    pytest.importorskip("onnx")
    import onnxruntime as ort
    import random_models
    from PIL import Image

    from gausynth_engine._onnx_torch import OnnxTorchSession
    from gausynth_engine.cutout import MaskSession, run_on_torch

    path = Path(random_models.export_u2net(tmp_path / "u2net.onnx", tiny=True)["path"])
    x = np.random.default_rng(1).random((1, 3, 320, 320)).astype(np.float32)
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ours = OnnxTorchSession(path, "cpu")
    name = reference.get_inputs()[0].name
    assert ours.get_inputs()[0].name == name
    for want, got in zip(reference.run(None, {name: x}), ours.run(None, {name: x}), strict=True):
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-5

    session = MaskSession(str(path), "cpu")
    frame = (np.random.default_rng(2).random((120, 90, 3)) * 255).astype(np.uint8)
    frame[30:90, 20:70] = 40  # a dark block: the maps vary across the image
    want = session.mask(frame)
    logs: list[str] = []
    providers = run_on_torch(session._session, path, "cpu", logs.append)
    assert providers and providers[0].startswith("torch-cpu") and "through PyTorch" in logs[-1]
    got = session.mask(frame)
    assert float(want.max() - want.min()) > 0.5  # a mask with structure, not a flat map
    assert np.abs(got - want).max() <= 1 / 255 + 1e-6
    assert session._session.predict(Image.fromarray(frame))  # rembg's own call path still works


def test_a_graph_with_an_operator_torch_does_not_run_stays_on_onnxruntime(tmp_path: Path) -> None:
    """Another rembg model (say one using Tanh) is not half-run: it stays on onnxruntime, said so."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from gausynth_engine.cutout import run_on_torch

    graph = helper.make_graph([helper.make_node("Tanh", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])])
    path = tmp_path / "tanh.onnx"
    onnx.save(helper.make_model(graph), str(path))

    class Session:
        inner_session = "onnxruntime's"

    logs: list[str] = []
    assert run_on_torch(Session, path, "cpu", logs.append) is None
    assert Session.inner_session == "onnxruntime's" and "Tanh" in logs[-1]


def test_the_report_splits_start_up_and_model_load_and_says_what_a_next_step_gains(tmp_path: Path) -> None:
    """A lead reads, per stage, how long the worker took to start, how long the models took to
    load and how long the GPU sat idle besides; and for the run, what running independent stages
    side by side would gain (sfm needs neither the sheet nor the diffusion)."""
    import json

    import e2e

    from gausynth_engine import Log, RunFinished, RunLayout, StageDone, StagePlanned, StageStarted, Telemetry

    layout = RunLayout(tmp_path / "run")
    gpu = "NVIDIA H200"
    events = [StagePlanned(stage=s, action="run", reason="new", t=0.0)
              for s in ("preprocess", "sheet", "reimagine", "sfm")]
    events += [
        StageStarted(stage="preprocess", pid=1, fingerprint="a", log="x", t=0.0),
        StageDone(stage="preprocess", seconds=2.0, t=2.0),
        StageStarted(stage="sheet", pid=2, fingerprint="b", log="x", t=2.0),
        StageDone(stage="sheet", seconds=1.0, t=3.0),
        StageStarted(stage="reimagine", pid=3, fingerprint="c", log="x", t=3.0),
        Log(stage="reimagine", message="reimagining", t=4.5),
        Telemetry(device=gpu, utilization=0.0, t=5.0),
        Telemetry(device=gpu, utilization=100.0, t=20.0),
        StageDone(stage="reimagine", seconds=20.0, t=23.0),
        StageStarted(stage="sfm", pid=4, fingerprint="d", log="x", t=23.0),
        Telemetry(device=gpu, utilization=0.0, t=25.0),
        StageDone(stage="sfm", seconds=12.0, t=35.0),
        RunFinished(status="done", seconds=35.0, t=35.0),
    ]
    write_journal(layout, events)
    layout.manifest("reimagine").parent.mkdir(parents=True, exist_ok=True)
    layout.manifest("reimagine").write_text(json.dumps({"fingerprint": "c", "device": "cuda", "record": {
        "worker_ready": 3.4, "load_seconds": 6.0}}))
    run = e2e.read_run(layout)
    reim = run["stages"]["reimagine"]
    assert reim["startup_s"] == pytest.approx(0.4)  # spawn → the stage's own code
    assert reim["first_event_s"] == pytest.approx(1.5)
    assert reim["load_s"] == 6.0
    gain, what = e2e.next_step("reimagine", reim)
    # 20 s at 50 % busy = 10 s idle, of which 6.4 s is start-up + load: 3.6 s idle beyond that.
    assert gain == pytest.approx(6.4) and "model load 6.4 s" in what and "GPU idle 4 s" in what
    serial, critical = e2e.overlap_gain(run)
    assert serial == pytest.approx(35.0)
    assert critical == pytest.approx(23.0)  # preprocess → sheet → reimagine; sfm beside them
    table = "\n".join(e2e.stage_table(run) + e2e.dominant(run))
    assert "next step would gain ≈ 6 s" in table and "up to 12 s" in table
    # What a stage waited for is what its plan gave it (its manifest's inputs), not the graph's
    # every `after`: had sfm's plan made it read the diffusion, it would have come after it.
    layout.manifest("sfm").write_text(json.dumps({"fingerprint": "d", "inputs": {"reimagine": "c"}}))
    assert e2e.overlap_gain(run)[1] == pytest.approx(35.0)


@pytest.mark.gpu
def test_the_full_u2net_through_torch_on_the_gpu_matches_onnxruntime(tmp_path: Path) -> None:
    """On the H200 the full-width U²-Net's seven maps through PyTorch on CUDA are onnxruntime's."""
    pytest.importorskip("onnx")
    import onnxruntime as ort
    import random_models

    from gausynth_engine._onnx_torch import OnnxTorchSession

    path = random_models.export_u2net(tmp_path / "u2net.onnx")["path"]
    x = np.random.default_rng(1).random((1, 3, 320, 320)).astype(np.float32)
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = reference.get_inputs()[0].name
    got = OnnxTorchSession(Path(path), "cuda").run(None, {name: x})
    for want, mine in zip(reference.run(None, {name: x}), got, strict=True):
        assert np.abs(mine - want).max() < 1e-4


def test_the_upscale_row_says_how_many_frames_at_what_scale_by_which_model() -> None:
    """The H200 table read "48 frames → None px": the upscale stage records its scale and model,
    not a size."""
    import e2e

    record = {"frames": ["0000.png", "0001.png"], "scale": 4, "model": "/models/swin2sr-x4"}
    assert e2e.stage_note("upscale", {"record": record}) == "2 frames ×4, swin2sr-x4"
