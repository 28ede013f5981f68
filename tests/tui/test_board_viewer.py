"""On a run's board, `v` starts the browser viewer of that run (or finds the one already serving
it) and says where it is and how to reach it over SSH, as the training monitor's key does."""

from __future__ import annotations

import importlib.util
import re

import pytest

from gausynth_tui.screens.board import BoardScreen

from .test_live import wait_for

pytestmark = pytest.mark.skipif(importlib.util.find_spec("viser") is None, reason="viser absent")


async def test_v_on_the_board_serves_this_runs_splat_and_prints_the_ssh_line(recorded):
    from conftest import stop_viewers

    from gausynth_engine.viewer import live

    layout = recorded.runs["plush-dog"]
    app = recorded.app(attach="plush-dog")
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            assert isinstance(app.screen, BoardScreen)
            await pilot.press("v")

            def said() -> list[str]:
                return [n.message for n in app._notifications if n.title == "viewer"
                        and "http://localhost:" in n.message]

            await wait_for(pilot, said)
            m = re.search(r"http://localhost:(\d+) .*ssh -L (\d+):localhost:(\d+) ", said()[0])
            assert m and len(set(m.groups())) == 1, said()
            viewers = live.viewers(layout.meta)  # the viewer of *this* run, asking it for snapshots
            assert [int(v["port"]) for v in viewers] == [int(m.group(1))]
            await pilot.press("v")  # again: the same viewer, not a second one
            await wait_for(pilot, lambda: len(said()) == 2)
            assert said()[1] == said()[0] and len(live.viewers(layout.meta)) == 1
    finally:
        stop_viewers(layout.meta)
