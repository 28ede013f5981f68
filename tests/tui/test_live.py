"""The app driven with key presses against real engine runs of the generated sample (CPU)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual import events
from textual.widgets import Input, OptionList, Select

from gausynth_engine._journal import RunView, pid_alive
from gausynth_engine._layout import RunLayout
from gausynth_tui.app import make_app
from gausynth_tui.messages import RunsChanged
from gausynth_tui.screens.board import BoardScreen
from gausynth_tui.screens.dialogs import PlanDialog
from gausynth_tui.screens.editor import EditorScreen


def screen_text(app) -> str:
    """Gives the characters on the terminal right now, line by line."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def type_into(pilot, selector: str, text: str) -> None:
    """Focuses a form field, clears it and types `text` key by key, as a user would.

    Long text (a path) is pasted, as a user would too: a key press each costs test time.
    """
    field = pilot.app.screen.query_one(selector, Input)
    # At once: Widget.focus() defers the move, and keys pressed meanwhile land in the old field.
    pilot.app.screen.set_focus(field)
    await pilot.press("end", "ctrl+u")
    if len(text) > 8:
        field.post_message(events.Paste(text))
        await pilot.pause()
    else:
        await pilot.press(*text)


async def wait_for(pilot, condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.1)


async def start_preprocess_run(pilot, video: Path, directory: str, colmap_size: int = 128,
                               num_frames: int = 12) -> None:
    """New run → original-only preset → fill the form → plan up to preprocess → start."""
    await pilot.press("n")
    await wait_for(pilot, lambda: pilot.app.screen.query("#picker-list"))
    options = pilot.app.screen.query_one("#picker-list", OptionList)
    target = next(i for i in range(options.option_count) if "original-only" in str(options.get_option_at_index(i).id))
    await pilot.press(*["down"] * target, "enter")  # the list starts on its first preset
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, EditorScreen))
    for field, value in (("run-input", str(video)), ("run-directory", directory), ("run-device", "cpu"),
                         ("preprocess-num_frames", str(num_frames)), ("preprocess-sd_size", "64"),
                         ("preprocess-colmap_size", str(colmap_size))):
        await type_into(pilot, f"#f-{field}", value)
    await pilot.pause()
    await wait_for(pilot, lambda: pilot.app.screen.preset is not None)
    await pilot.press("ctrl+r")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, PlanDialog))
    dialog = pilot.app.screen
    dialog.query_one("#plan-mode", Select).value = "until"
    dialog.query_one("#plan-stage", Select).value = "preprocess"
    await pilot.pause()
    await pilot.press("ctrl+r")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def test_a_run_started_from_the_app_finishes_on_its_board(workdir, sample_video):
    app = make_app("demo_outputs_dir", poll_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await start_preprocess_run(pilot, sample_video, "from-app")
        await wait_for(pilot, lambda: isinstance(app.screen, BoardScreen))
        board = app.screen
        await wait_for(pilot, lambda: board.entry.view.status == "done")
        await pilot.pause(0.3)
        view = board.entry.view
        assert view.stages["preprocess"].state == "done"
        assert view.stages["sfm"].state == "out"  # asked to stop after preprocess
        table = board.query_one("#stages")
        assert "done" in str(table.get_cell("preprocess", "state"))
        assert "sampling 12" in screen_text(app)  # the stage's log, live
    frames = RunLayout(workdir / "demo_outputs_dir" / "from-app").filtered_frames_sd
    assert len(list(frames.glob("*.png"))) == 12


async def test_a_run_outlives_the_app_and_a_new_app_shows_its_whole_history(workdir, sample_video):
    layout = RunLayout(workdir / "demo_outputs_dir" / "outlives")
    app = make_app("demo_outputs_dir", poll_interval=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await start_preprocess_run(pilot, sample_video, "outlives", num_frames=24)
        await wait_for(pilot, lambda: isinstance(app.screen, BoardScreen))
        await pilot.press("q")
    # Whichever ends first, the app or the run: the run must end "done" on its own. A run that
    # went with the app would stay "running" in its journal with its process gone.
    deadline = time.monotonic() + 120
    while (view := RunView.from_journal(layout.journal)).status == "running":
        if not (view.pid and pid_alive(view.pid)):
            view = RunView.from_journal(layout.journal)  # it may have finished just now
            assert view.status != "running", "the run's process is gone but its journal never finished"
            break
        assert time.monotonic() < deadline, "the run did not finish in 120 s"
        time.sleep(0.2)
    finished = RunView.from_journal(layout.journal)
    assert finished.status == "done"

    again = make_app("demo_outputs_dir", attach=layout.root, live=False)
    async with again.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        board = again.screen
        assert isinstance(board, BoardScreen)
        view = board.entry.view
        assert view.events == finished.events
        assert view.stages["preprocess"].state == "done" and view.stages["preprocess"].fraction == 1.0
        assert "done" in str(board.query_one("#stages").get_cell("preprocess", "state"))
        assert "sampling 24" in screen_text(again)


async def test_the_editor_marks_bad_values_on_their_field_as_you_type(recorded):
    app = recorded.app(attach="plush-dog")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("e")
        editor = app.screen
        await wait_for(pilot, lambda: editor._ready)
        await type_into(pilot, "#f-splat-iterations", "12x")
        await pilot.pause()
        await wait_for(pilot, lambda: "splat.iterations" in editor.problems)
        assert "whole number" in editor.problems["splat.iterations"]
        assert editor.query_one("#err-splat-iterations").display
        await type_into(pilot, "#f-splat-iterations", "500")  # a number, below the range
        await wait_for(pilot, lambda: "1000 to 30000" in editor.problems.get("splat.iterations", ""))
        await type_into(pilot, "#f-splat-iterations", "2000")
        await wait_for(pilot, lambda: not editor.problems)
        assert editor.overrides() == ["splat.iterations=2000"]
        await pilot.press("ctrl+t")  # at 80 columns the changes pane takes the form's place
        await pilot.pause()
        assert "splat.iterations  10000 → 2000" in screen_text(app)


async def test_failed_commands_show_the_engines_own_words(recorded):
    app = recorded.app(attach="mug")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("k")
        await pilot.press("end", "ctrl+u", "2", "enter")
        await wait_for(pilot, lambda: any("choose" in (n.title or "") for n in app._notifications), 30)
        note = next(n for n in app._notifications if "choose" in (n.title or ""))
        assert note.severity == "error" and note.message  # e.g. argparse: invalid choice 'choose'


def test_redraw_messages_coalesce_when_a_newer_one_covers_them():
    older, newer = RunsChanged(frozenset({"a"})), RunsChanged(frozenset({"a", "b"}))
    assert newer.can_replace(older)
    assert not older.can_replace(newer)


async def test_a_burst_of_events_is_absorbed_in_a_few_throttled_redraws(recorded):
    from .journals import T0, Clock, training

    layout = recorded.runs["plush-dog"]
    app = make_app("runs", attach=layout.root, alive=lambda pid: True, poll_interval=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        board = app.screen
        redraws = []
        original = board.refresh_view
        board.refresh_view = lambda keys=None: (redraws.append(keys), original(keys))
        before = board.entry.view.events
        burst = training(Clock(T0 + 400), "splat_orig", 6000, 10_000, every=10, telemetry=True)[-1200:]
        with open(layout.journal, "a", encoding="utf-8") as f:
            f.write("".join(e.to_json() + "\n" for e in burst))
        await wait_for(pilot, lambda: board.entry.view.events == before + len(burst), 10)
        await pilot.pause(0.3)
        assert 1 <= len(redraws) <= 5, f"{len(redraws)} redraws for {len(burst)} events"
        assert "6000/10000 it" in screen_text(app)


def test_attaching_to_a_missing_run_says_where_it_looked(workdir, capsys):
    from gausynth_tui.launcher import main

    assert main(["attach", "no-such-run"]) == 2
    out = capsys.readouterr().out  # the outputs root is absolute, the same as the CLI's
    assert "no-such-run: no run folder here or under /" in out and "demo_outputs_dir/" in out
