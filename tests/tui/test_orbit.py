"""Previews: a user opens the images of a finished run and sees its splat turn, rendered from
the trained model on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from gausynth_tui.app import make_app  # noqa: E402
from gausynth_tui.widgets.graphics import detect  # noqa: E402
from tests.splat_run import make_tiny_run  # noqa: E402


@pytest.fixture(scope="module")
def finished_run(sample_video: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("runs")
    return make_tiny_run(root / "tiny", tmp_path_factory.mktemp("scene"), sample_video)


async def test_previews_turn_an_orbit_of_the_trained_splat(finished_run):
    import torch
    from textual.widgets import OptionList

    from gausynth_tui.screens.previews import PreviewScreen
    from gausynth_tui.widgets.orbit import OrbitView

    torch.set_num_threads(1)
    app = make_app(finished_run.root.parent, attach=finished_run.root, live=False)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("i")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, PreviewScreen)
        labels = [str(o.prompt) for o in screen.query_one("#preview-list", OptionList).options]
        assert labels[0].startswith("orbit · reimagined splat") and labels[1].startswith("orbit · original")
        orbit = screen.query_one("#orbit", OrbitView)
        for _ in range(100):  # the render worker's result arrives through the message queue
            await app.workers.wait_for_complete()
            await pilot.pause()
            if orbit.frames or "no orbit" in str(screen.query_one("#orbit-text").content):
                break
        assert orbit.display and len(orbit.frames) == 24, screen.query_one("#orbit-text").content
        assert len({f.tobytes() for f in orbit.frames}) > 12  # it turns: the frames differ
        first = orbit.index
        orbit.advance()
        assert orbit.index == first + 1
        from gausynth_tui.widgets.image import HalfBlocks

        drawn = screen.query_one("#orbit-text").content
        assert isinstance(drawn, HalfBlocks) and drawn.image is orbit.frames[first % 24]
        await pilot.pause()
        assert "▀" in app.export_screenshot()  # drawn on screen with half blocks


def test_the_graphics_protocol_is_asked_for_or_falls_back(monkeypatch):
    monkeypatch.setenv("GAUSYNTH_IMAGES", "kitty")
    assert detect() == "kitty"
    monkeypatch.setenv("GAUSYNTH_IMAGES", "")
    assert detect() == "halfblocks"  # pytest's stdout is no terminal: no query, half blocks
