"""Shared fixtures: the generated sample and a helper that runs stages through the real engine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def sample_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated turn-around (24 frames, 320×240) with its true cameras beside it."""
    from gausynth_engine._sample import SampleSpec, make_sample

    return make_sample(tmp_path_factory.mktemp("sample"), SampleSpec(frames=24, width=320, height=240))


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: one torch thread is many times faster than two on a busy two-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def shared_data() -> Path:
    """`../shared/data`, or a clean skip on machines without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent on this machine")
    return SHARED_DATA


def small_overrides(video: Path, directory: str = "run", **extra: object) -> list[str]:
    """Gives `--set` overrides for a fast CPU run of the sample."""
    sets = {"run.input": str(video), "run.directory": directory, "run.device": "cpu",
            "preprocess.num_frames": 12, "preprocess.sd_size": 64, "preprocess.colmap_size": 128}
    sets.update(extra)
    return [f"{k}={v!r}" if isinstance(v, str) else f"{k}={str(v).lower() if isinstance(v, bool) else v}"
            for k, v in sets.items()]


@pytest.fixture(autouse=True)
def _outputs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test's runs live in its own tmp folder (never ~/.local/share/gausynth/runs)."""
    monkeypatch.setenv("GAUSYNTH_OUTPUTS_ROOT", str(tmp_path / "demo_outputs_dir"))


@pytest.fixture
def engine_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Gives run(overrides, **plan options) → (status, layout, events): a real engine run in tmp."""
    from gausynth_engine import Orchestrator, RunLayout, make_plan, parse_preset

    monkeypatch.chdir(tmp_path)

    def run(overrides: list[str], **plan_options: object):
        preset = parse_preset("", "test", overrides)
        from gausynth_engine._layout import resolve_outputs_root

        layout = RunLayout.for_run(resolve_outputs_root(None, preset.run.outputs_root),
                                   preset.run.directory)
        events: list = []
        plan = make_plan(preset, layout, **plan_options)
        status = Orchestrator(preset, layout, on_event=events.append).run(plan)
        return status, layout, events

    return run


def stop_viewers(meta: Path) -> None:
    """Stops every browser viewer of a run (SIGTERM) and waits until none is registered."""
    import os
    import signal
    import time

    from gausynth_engine.viewer import live

    for v in live.viewers(meta):
        os.kill(int(v["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + 60
    while live.viewers(meta) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not live.viewers(meta)
