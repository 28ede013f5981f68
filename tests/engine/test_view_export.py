"""See the splat and take it elsewhere: a user opens the browser viewer of a run, exports its
model for web viewers, and the trainer snapshots only while someone watches."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gausynth_engine.splatting.ply import read_ply  # noqa: E402
from tests.splat_run import SIZE, STAMP, gaussians_of, make_tiny_run  # noqa: E402

# The optional extras these stories need ([export], [viewer]; the test extra installs both).
needs_gsply = pytest.mark.skipif(importlib.util.find_spec("gsply") is None, reason="gsply absent")
needs_viser = pytest.mark.skipif(importlib.util.find_spec("viser") is None, reason="viser absent")


@pytest.fixture(scope="module")
def tiny_run(sample_video: Path, tmp_path_factory: pytest.TempPathFactory):
    """A run folder with the sample's true SfM model, an original and a reimagined splat."""
    return make_tiny_run(tmp_path_factory.mktemp("runs") / "tiny", tmp_path_factory.mktemp("scene"),
                         sample_video)


# --- export ----------------------------------------------------------------------------------
@needs_gsply
@pytest.mark.parametrize("fmt", ["ply", "splat", "compressed-ply", "spz"])
def test_each_export_reads_back_as_the_same_gaussians_and_renders(tiny_run, tmp_path, fmt):
    from gausynth_engine.export import TOLERANCES, check_cameras, export
    from gausynth_engine.viewer.models import cameras, final_model

    model = final_model(tiny_run, "orig")
    params = read_ply(model.path)
    result = export(params, fmt, tmp_path / f"m.{fmt}", check_cameras(cameras(tiny_run)))
    assert result.ok, result.line()
    assert result.gaussians == len(params["means"])  # all opaque: none dropped
    assert result.bytes == (tmp_path / f"m.{fmt}").stat().st_size > 0
    assert set(result.errors) >= {"means", "rgb", "opacity", "scale", "rotation_deg"}
    for name, value in result.errors.items():
        assert value <= TOLERANCES[fmt][name]
    assert result.psnr > (80 if fmt == "ply" else 30)
    if fmt != "ply":  # lossy formats are smaller than the float PLY
        assert result.bytes < (model.path.stat().st_size * 0.6)


@needs_gsply
def test_a_broken_export_is_caught_by_the_read_back(tiny_run, tmp_path):
    from gausynth_engine.export import errors, over_tolerance, read, write

    params = read_ply(tiny_run.gs_run("orig", 100, STAMP) / "point_cloud" / "iteration_100" / "point_cloud.ply")
    path = write(params, "splat", tmp_path / "m.splat")
    raw = bytearray(path.read_bytes())
    raw[24:28] = bytes([255 - b for b in raw[24:28]])  # the first record's colour, inverted
    path.write_bytes(bytes(raw))
    assert any(p.startswith("rgb") for p in over_tolerance(errors(params, read(path, "splat"), "splat"), "splat"))


@needs_gsply
def test_spz_holds_the_right_up_back_frame_of_its_spec(tiny_run, tmp_path):
    """SPZ viewers expect OpenGL axes; COLMAP's are right-down-front: y and z must be negated
    in the file and come back when we read it."""
    import gsply

    from gausynth_engine.export import read, write

    params = gaussians_of(tiny_run)
    path = write(params, "spz", tmp_path / "m.spz")
    raw = gsply.read_spz(path)  # the file as stored, no conversion
    np.testing.assert_allclose(raw.means, params["means"] * [1, -1, -1], atol=1e-3)
    np.testing.assert_allclose(read(path, "spz")["means"], params["means"], atol=1e-3)


def test_rdf_to_rub_keeps_the_renders_up_to_the_turn(tiny_run):
    """The SH sign flips are right: the turned model, seen by the turned camera, renders the same."""
    from gausynth_engine.export import rdf_to_rub
    from gausynth_engine.splatting.rasterize import render
    from gausynth_engine.viewer.models import cameras

    params = gaussians_of(tiny_run, sh_degree=2)
    cams = cameras(tiny_run)
    turn = np.diag([1.0, -1.0, -1.0, 1.0])
    views = {"RDF": (params, cams.viewmats[:2]), "RUB": (rdf_to_rub(params), cams.viewmats[:2] @ turn)}
    images = {}
    for name, (p, viewmats) in views.items():
        t = {k: torch.as_tensor(v) for k, v in p.items()}
        rgb, _, _ = render(t, torch.as_tensor(viewmats, dtype=torch.float32),
                           torch.as_tensor(cams.Ks[:2], dtype=torch.float32), SIZE, SIZE, sh_degree=2,
                           background=torch.ones(3), backend="torch")
        images[name] = rgb
    assert float((images["RDF"] - images["RUB"]).abs().max()) < 1e-4


@needs_gsply
def test_gausynth_export_writes_every_format_into_the_run_and_reports_sizes(tiny_run, capsys):
    from gausynth_engine.cli import EXPORT_FORMATS, main
    from gausynth_engine.export import FORMATS, SUFFIXES

    assert EXPORT_FORMATS == FORMATS
    assert main(["export", str(tiny_run.root), "--format", "all", "--variant", "orig"]) == 0
    out = capsys.readouterr().out
    for fmt in FORMATS:
        path = tiny_run.exports / f"orig_100-{STAMP}{SUFFIXES[fmt]}"
        assert path.is_file()
        assert re.search(rf"✔ {re.escape(fmt)}\s+[\d.]+ [KM]?i?B", out), out
    assert "✘" not in out


def test_gausynth_export_without_a_model_says_so(tmp_path, capsys):
    from gausynth_engine.cli import main

    (tmp_path / "empty" / ".gausynth").mkdir(parents=True)
    assert main(["export", str(tmp_path / "empty")]) == 1
    assert "no finished training" in capsys.readouterr().err


@needs_gsply
def test_the_export_bench_reads_every_format_of_a_runs_models_back(tiny_run, tmp_path):
    """The bench the H200 runs after a training: a run folder in, each variant in each format."""
    bench = Path(__file__).resolve().parents[2] / "bench" / "export.py"
    env = dict(os.environ, PYTHONPATH=str(bench.parents[1]))
    done = subprocess.run([sys.executable, str(bench), str(tiny_run.root), "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = json.loads(done.stdout.strip().splitlines()[-1])["rows"]
    assert {(r["model"], r["format"]) for r in rows} == {(v, f) for v in ("orig", "reim")
                                                        for f in ("ply", "splat", "compressed-ply", "spz")}
    for r in rows:
        assert r["ok"] and r["psnr_db"] > 30 and r["bytes"] == (tmp_path / Path(
            r["model"] + {"ply": ".ply", "splat": ".splat", "compressed-ply": ".compressed.ply",
                          "spz": ".spz"}[r["format"]])).stat().st_size
    assert "renders from its SfM cameras" in done.stdout


# --- live snapshots ----------------------------------------------------------------------------
class FakeTrainer:
    def __init__(self, params: dict[str, np.ndarray]) -> None:
        self.params = {k: torch.as_tensor(v) for k, v in params.items()}
        self.step_done = 7


def test_the_trainer_snapshots_only_while_a_live_viewer_watches(tiny_run, tmp_path):
    from gausynth_engine.viewer import live

    meta = tmp_path / "run" / ".gausynth"
    work = meta / "checkpoints" / "orig"
    params = gaussians_of(tiny_run)
    trainer = FakeTrainer(params)
    hook = live.LiveHook.for_training(work)
    hook.tick(trainer)
    hook.close()
    assert not live.snapshot_path(meta, "orig").exists()  # nobody watches: nothing written
    stale = live.live_folder(meta) / "watch-999999999.json"  # a viewer that died long ago
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"pid": 999_999_999, "every": 0.0}))
    hook._next_check = 0.0
    hook.tick(trainer)
    hook.close()
    assert not live.snapshot_path(meta, "orig").exists()
    with live.Watch(meta, every=0.0):
        hook._next_check = 0.0
        hook.tick(trainer)
        hook.close()
    snap = live.read_snapshot(live.snapshot_path(meta, "orig"))
    assert int(snap["step"]) == 7
    np.testing.assert_array_equal(snap["means"], params["means"])
    np.testing.assert_array_equal(snap["sh0"], params["sh0"])
    assert not list(live.live_folder(meta).glob(f"watch-{os.getpid()}.json"))  # it cleaned up


def test_a_real_training_writes_live_snapshots_for_a_watching_viewer(tiny_run, tmp_path):
    from gausynth_engine.splatting.dataset import load_scene
    from gausynth_engine.splatting.train import TrainConfig, train
    from gausynth_engine.viewer import live
    from gausynth_engine.viewer.models import models

    scene = load_scene(tiny_run.colmap_sparse, tiny_run.filtered_frames_colmap)
    meta = tmp_path / "run" / ".gausynth"
    config = TrainConfig(iterations=12, eval_at=(12,), test_every=4, refine_start=1000,
                         checkpoint_every=1000, report_every=0.0)
    torch.set_num_threads(1)
    with live.Watch(meta, every=0.0):
        train(scene, config, tmp_path / "out", meta / "checkpoints" / "orig")
    snap = live.read_snapshot(live.snapshot_path(meta, "orig"))
    assert 1 <= int(snap["step"]) <= 12
    assert snap["means"].shape[1] == 3 and len(snap["means"]) == len(scene.points)
    from gausynth_engine._layout import RunLayout

    shown = models(RunLayout(meta.parent))
    assert shown["orig"].live and shown["orig"].path == live.snapshot_path(meta, "orig")


# --- the browser viewer ------------------------------------------------------------------------
def _viser_messages(port: int, want: set[str], deadline: float) -> list[dict]:
    """Connects like the viser web client and gives the messages received until every name in
    `want` has appeared (or the deadline)."""
    import msgspec
    import viser
    import zstandard
    from websockets.sync.client import connect

    messages: list[dict] = []
    seen: set[str] = set()
    with connect(f"ws://127.0.0.1:{port}", subprotocols=[f"viser-v{viser.__version__}"],
                 open_timeout=30, max_size=None) as ws:
        while not want <= seen and time.monotonic() < deadline:
            try:
                raw = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            size, packed = int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:16], "little")
            inner = msgspec.msgpack.decode(zstandard.ZstdDecompressor().decompress(
                raw[16:16 + packed], max_output_size=size))
            buffers, offset = [], 16 + packed
            for length in inner["binaryBufferLengths"]:  # each starts 8-byte aligned
                offset += -offset % 8
                buffers.append(raw[offset:offset + length])
                offset += length
            for m in inner["messages"]:
                m["_buffers"] = buffers
                messages.append(m)
                if "name" in m:
                    seen.add(m["name"])
    return messages


@needs_viser
def test_gausynth_view_serves_the_page_and_the_scene_on_localhost(tiny_run):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen([sys.executable, "-m", "gausynth_engine", "view", str(tiny_run.root),
                             "--port", str(port), "--duration", "120", "--every", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = []
        for line in proc.stdout:  # bounded by --duration: the viewer stops by itself
            lines.append(line)
            if line.startswith("showing:"):
                break
        text = "".join(lines)
        m = re.search(r"on http://localhost:(\d+)", text)
        assert m, text
        port = int(m.group(1))
        assert f"ssh -L {port}:localhost:{port} " in text and "bound to 127.0.0.1 only" in text
        assert "original" in text and "reimagined" in text
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read()
        assert b"<html" in page.lower()
        want = {"/orig/splat", "/reim/splat"} | {f"/orig/cameras/{i:04d}" for i in range(12)}
        messages = _viser_messages(port, want, time.monotonic() + 60)
        names = {m.get("name") for m in messages}
        assert want <= names, sorted(n for n in names if n)
        splat = next(m for m in messages if m.get("name") == "/orig/splat")
        assert splat["type"] == "GaussianSplatsMessage"
        buffer = splat["_buffers"][splat["props"]["buffer"]["__binary_index"]]
        centres = np.frombuffer(buffer, np.float32).reshape(-1, 8)[:, :3]  # viser: xyz first
        orig = read_ply(tiny_run.gs_run("orig", 100, STAMP) / "point_cloud" / "iteration_100" / "point_cloud.ply")
        np.testing.assert_array_equal(centres, orig["means"])  # the run's Gaussians, all of them
        # Side by side: the reimagined model's node stands beside the original's, clear of it.
        moves = [m for m in messages if m.get("name") == "/reim" and m["type"] == "SetPositionMessage"]
        extent = np.linalg.norm(np.percentile(orig["means"], 99, 0) - np.percentile(orig["means"], 1, 0))
        assert moves and np.linalg.norm(moves[-1]["position"]) > extent
        assert not [m for m in messages if m.get("name") == "/orig" and m["type"] == "SetPositionMessage"
                    and np.linalg.norm(m["position"]) > 0]
        watch = list((tiny_run.meta / "live").glob("watch-*.json"))
        assert len(watch) == 1  # it asked trainings for live snapshots while it ran
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert not list((tiny_run.meta / "live").glob("watch-*.json"))  # and stopped asking



@needs_viser
def test_the_reimagined_model_steps_aside_when_the_original_appears(tiny_run, tmp_path):
    """splat_reim trains before splat_orig: the viewer moves the first model over later."""
    from gausynth_engine._layout import RunLayout
    from gausynth_engine.viewer.server import Viewer
    from tests.splat_run import add_training

    layout = RunLayout(tmp_path / "run")
    layout.meta.mkdir(parents=True)
    params = read_ply(tiny_run.gs_run("orig", 100, STAMP) / "point_cloud" / "iteration_100" / "point_cloud.ply")
    add_training(layout, "reim", params)
    viewer = Viewer(layout, port=0)
    try:
        assert viewer.refresh() and set(viewer.shown) == {"reim"}
        assert np.allclose(viewer.frames["reim"].position, 0)
        assert not viewer.refresh()  # nothing new: nothing resent
        add_training(layout, "orig", params)
        assert viewer.refresh() and set(viewer.shown) == {"reim", "orig"}
        extent = np.linalg.norm(np.percentile(params["means"], 99, 0) - np.percentile(params["means"], 1, 0))
        assert np.linalg.norm(viewer.frames["reim"].position) > extent
        assert np.allclose(viewer.frames["orig"].position, 0)
        assert "original · left" in viewer.info.content and "reimagined · right" in viewer.info.content
    finally:
        viewer.stop()


# --- the orbit of the final splat ---------------------------------------------------------------
def test_the_orbit_turns_around_the_model_from_where_the_cameras_stood(tiny_run):
    """Frame 0 of the orbit is taken where the first SfM camera stood (the sample's cameras circle
    the object), the half-turn frame from the other side; every frame shows the object."""
    from gausynth_engine.splatting.metrics import psnr
    from gausynth_engine.splatting.rasterize import render
    from gausynth_engine.viewer.models import cameras, final_model
    from gausynth_engine.viewer.orbit import orbit_frames

    torch.set_num_threads(1)
    model = final_model(tiny_run, "orig")
    files = orbit_frames(tiny_run, model, frames=8, size=SIZE, device="cpu")
    assert [f.name for f in files] == [f"{i:03d}.png" for i in range(8)]
    from gausynth_engine._media import read_image

    frames = np.stack([read_image(f)[..., :3] for f in files]).astype(np.float32) / 255
    cams = cameras(tiny_run)
    t = {k: torch.as_tensor(v) for k, v in read_ply(model.path).items()}
    seen, _, _ = render(t, torch.as_tensor(cams.viewmats[:1], dtype=torch.float32),
                        torch.as_tensor(cams.Ks[:1], dtype=torch.float32), SIZE, SIZE, sh_degree=0,
                        background=torch.ones(3), backend="torch")
    first = psnr(torch.as_tensor(frames[0]), seen[0].clamp(0, 1))
    opposite = psnr(torch.as_tensor(frames[4]), seen[0].clamp(0, 1))
    assert first > 25 and first > opposite + 5, (first, opposite)
    for frame in frames:  # the object, not an empty background, fills part of each frame
        assert 0.05 < (frame.min(-1) < 0.9).mean() < 0.95
    assert orbit_frames(tiny_run, model, frames=8, size=SIZE, device="cpu") == files  # kept, not redone


@needs_gsply
def test_the_export_section_writes_the_files_after_a_training(tiny_run, tmp_path):
    from gausynth_engine import parse_preset
    from gausynth_engine._layout import RunLayout
    from gausynth_engine._stage import StageContext
    from gausynth_engine.stages.export import after_training
    from gausynth_engine.stages.splat import STAGE_ORIG

    events: list[dict] = []
    out = RunLayout(tmp_path / "staging")
    for fmt, expected in (("off", set()), ("spz", {".spz"})):
        preset = parse_preset(f'[export]\nformat = "{fmt}"\n')
        ctx = StageContext(STAGE_ORIG, preset, tiny_run, out, events.append, "cpu")
        after_training(ctx, "orig", tiny_run.gs_run("orig", 100, STAMP))
        written = {p.name[len(f"orig_100-{STAMP}"):] for p in out.exports.glob("*")} if out.exports.is_dir() else set()
        assert written == expected
    assert [e["path"] for e in events if e["type"] == "artifact"] == [str(tiny_run.exports / f"orig_100-{STAMP}.spz")]
    assert ctx.record_data["exports"]["spz"]["ok"]


# --- TensorBoard -------------------------------------------------------------------------------
def read_scalars(folder: Path) -> list[tuple[str, int, float]]:
    """Parses TFRecord event files (length, crc, Event proto, crc) with tensorboardX's protos."""
    from tensorboardX.proto.event_pb2 import Event

    out = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        raw = path.read_bytes()
        i = 0
        while i < len(raw):
            n = int.from_bytes(raw[i:i + 8], "little")
            event = Event.FromString(raw[i + 12:i + 12 + n])
            i += 12 + n + 4
            for v in event.summary.value:
                out.append((v.tag, event.step, v.simple_value))
    return out


def test_tensorboard_curves_come_from_the_journal_only_when_asked(tmp_path, capsys):
    pytest.importorskip("tensorboardX")
    from gausynth_engine._events import Metric, RunFinished
    from gausynth_engine._journal import JournalWriter
    from gausynth_engine._layout import RunLayout
    from gausynth_engine.cli import main

    layout = RunLayout(tmp_path / "run")
    journal = JournalWriter(layout.journal)
    for step in (10, 20, 30):
        journal.write(Metric(stage="splat_orig", name="loss", value=1.0 / step, step=step))
    journal.write(Metric(stage="splat_orig", name="eval_psnr", value=27.5, step=30))
    journal.write(RunFinished(status="done", seconds=1.0))
    journal.close()
    assert not (layout.root / "tensorboard").exists()  # off by default
    assert main(["tensorboard", str(layout.root)]) == 0
    assert "4 points of 1 stage(s)" in capsys.readouterr().out
    scalars = read_scalars(layout.root / "tensorboard" / "splat_orig")
    assert [(t, s) for t, s, _ in scalars] == [("loss", 10), ("loss", 20), ("loss", 30), ("eval_psnr", 30)]
    assert scalars[0][2] == pytest.approx(0.1) and scalars[-1][2] == pytest.approx(27.5)


# --- the viewer from the app ---------------------------------------------------------------------
@needs_viser
def test_the_app_starts_one_viewer_and_tells_where_it_is(tiny_run):
    from conftest import stop_viewers

    from gausynth_engine.viewer import live
    from gausynth_engine.viewer.server import launch

    text = launch(tiny_run, port=0)
    try:
        m = re.search(r"http://localhost:(\d+) .*ssh -L (\d+):localhost:(\d+) ", text)
        assert m and len(set(m.groups())) == 1, text
        assert launch(tiny_run, port=0) == text  # a second ask finds the running one
        assert len(live.viewers(tiny_run.meta)) == 1
    finally:
        stop_viewers(tiny_run.meta)
