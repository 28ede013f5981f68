"""A training followed in a browser: the trainer snapshots only while a browser looks, no faster
than the viewer passes snapshots on, and what it writes is the model as it was at that step."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gausynth_engine.viewer import live  # noqa: E402

needs_viser = pytest.mark.skipif(importlib.util.find_spec("viser") is None, reason="viser absent")


class FakeTrainer:
    def __init__(self, n: int = 300, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.params = {"means": torch.randn(n, 3, generator=g), "scales": torch.randn(n, 3, generator=g) - 3,
                       "quats": torch.randn(n, 4, generator=g), "opacities": torch.randn(n, generator=g),
                       "sh0": torch.randn(n, 1, 3, generator=g), "shN": torch.randn(n, 3, 3, generator=g)}
        self.step_done = 7


def tick_now(hook: live.LiveHook, trainer: FakeTrainer) -> None:
    """One training step's tick with the hook's clocks run out (what a second of training does)."""
    hook._next_check = hook._next_snapshot = 0.0
    hook.tick(trainer)
    hook.close()


def serial_on_disk(meta: Path) -> int | None:
    path = live.snapshot_path(meta, "orig")
    return int(live.read_snapshot(path)["serial"]) if path.exists() else None


def test_no_browser_no_snapshot_then_one_per_snapshot_the_viewer_passes_on(tmp_path):
    meta = tmp_path / "run" / ".gausynth"
    trainer = FakeTrainer()
    hook = live.LiveHook.for_training(meta / "checkpoints" / "orig")
    with live.Watch(meta, every=0.0, port=1234, clients=0) as watch:  # a viewer, nobody connected
        tick_now(hook, trainer)
        assert serial_on_disk(meta) is None
        watch.update(clients=1)  # a browser connects
        tick_now(hook, trainer)
        assert serial_on_disk(meta) == 1
        tick_now(hook, trainer)  # the viewer has not passed snapshot 1 on yet: no second one
        tick_now(hook, trainer)
        assert serial_on_disk(meta) == 1 and hook.snapshots == 1
        watch.update(shown={"orig": 1})
        tick_now(hook, trainer)
        assert serial_on_disk(meta) == 2
        watch.update(clients=0, shown={"orig": 2})  # the browser left
        tick_now(hook, trainer)
        assert serial_on_disk(meta) == 2
        record = json.loads(watch.path.read_text())
        assert record["port"] == 1234 and record["shown"] == {"orig": 2}


def test_a_viewer_that_never_answers_gets_a_snapshot_again_after_a_while(tmp_path, monkeypatch):
    meta = tmp_path / ".gausynth"
    trainer = FakeTrainer()
    hook = live.LiveHook.for_training(meta / "checkpoints" / "orig")
    with live.Watch(meta, every=0.0, clients=1):
        tick_now(hook, trainer)
        tick_now(hook, trainer)
        assert hook.snapshots == 1
        monkeypatch.setattr(live, "STALE", 0.0)
        tick_now(hook, trainer)
        assert hook.snapshots == 2 and serial_on_disk(meta) == 2


def test_the_snapshot_is_the_model_at_the_step_it_was_taken(tmp_path, monkeypatch):
    """The optimizer updates the parameters in place right after the tick, while the writer
    thread still works: the file must hold the values of the tick's step."""
    meta = tmp_path / ".gausynth"
    trainer = FakeTrainer()
    expected = {k: v.clone().numpy() for k, v in trainer.params.items()}
    go = threading.Event()
    write = live.write_snapshot

    def slow_write(*args, **kwargs):
        go.wait(30)
        write(*args, **kwargs)

    monkeypatch.setattr(live, "write_snapshot", slow_write)
    hook = live.LiveHook.for_training(meta / "checkpoints" / "orig")
    with live.Watch(meta, every=0.0):
        hook._next_check = 0.0
        hook.tick(trainer)
        with torch.no_grad():
            for v in trainer.params.values():
                v.add_(1.0)  # the next optimizer step
        trainer.step_done = 8
        go.set()
        hook.close()
    assert not hook.errors
    snap = live.read_snapshot(live.snapshot_path(meta, "orig"))
    assert int(snap["step"]) == 7
    for key in live.KEYS:
        np.testing.assert_array_equal(snap[key].reshape(expected[key].shape), expected[key])
    assert "shN" not in snap  # a viewer draws degree 0


def test_a_snapshot_file_never_shows_half_written(tmp_path):
    path = tmp_path / "orig.gsnap"
    rows = np.arange(14 * 5, dtype=np.float32).reshape(5, 14)
    live.write_snapshot(path, rows, step=3, serial=9)
    snap = live.read_snapshot(path)
    assert (int(snap["step"]), int(snap["serial"])) == (3, 9)
    np.testing.assert_array_equal(snap["quats"], rows[:, 6:10])
    np.testing.assert_array_equal(snap["sh0"].reshape(5, 3), rows[:, 11:14])
    assert not list(tmp_path.glob(".*tmp"))
    path.write_bytes(path.read_bytes()[:-8])  # cut short (a copy that stopped half-way)
    with pytest.raises(ValueError, match="floats"):
        live.read_snapshot(path)


def browser_camera() -> bytes:
    """The first message a browser's viser client sends: its camera."""
    import msgspec
    from viser._messages import ViewerCameraMessage

    return msgspec.msgpack.encode(ViewerCameraMessage(
        wxyz=(1.0, 0.0, 0.0, 0.0), position=(0.0, 0.0, -3.0), fov=1.0, near=0.01, far=100.0,
        image_height=480, image_width=640, look_at=(0.0, 0.0, 0.0),
        up_direction=(0.0, -1.0, 0.0)).as_serializable_dict())


@needs_viser
def test_the_viewer_tells_trainings_when_a_browser_connects_and_what_it_passed_on(tmp_path):
    import viser
    from websockets.sync.client import connect

    from gausynth_engine._layout import RunLayout
    from gausynth_engine.viewer.server import Viewer

    layout = RunLayout(tmp_path / "run")
    layout.meta.mkdir(parents=True)
    trainer = FakeTrainer()
    hook = live.LiveHook.for_training(layout.meta / "checkpoints" / "orig")
    watch = live.Watch(layout.meta, every=0.0, clients=0)
    viewer = Viewer(layout, port=0, watch=watch, every=0.0)

    def record() -> dict:
        return json.loads(watch.path.read_text())

    def until(cond, what: str) -> None:
        deadline = time.monotonic() + 60
        while not cond():
            assert time.monotonic() < deadline, what
            time.sleep(0.05)

    try:
        with watch:
            tick_now(hook, trainer)
            assert hook.snapshots == 0  # the viewer runs, but no browser looks
            with connect(f"ws://127.0.0.1:{viewer.port}", subprotocols=[f"viser-v{viser.__version__}"],
                         open_timeout=30, max_size=None) as ws:
                ws.send(browser_camera())  # viser counts a browser once it reports its camera
                until(lambda: record()["clients"] == 1, "the viewer did not count the browser")
                tick_now(hook, trainer)
                assert hook.snapshots == 1
                assert viewer.refresh() and viewer.shown["orig"].model.live
                assert record()["shown"] == {"orig": 1}
                tick_now(hook, trainer)
                assert hook.snapshots == 2
            until(lambda: record()["clients"] == 0, "the viewer did not see the browser leave")
            tick_now(hook, trainer)
            assert hook.snapshots == 2
    finally:
        viewer.stop()
