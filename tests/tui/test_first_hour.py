"""A new user's first hour at 80×24: help, dialogs, the editor's focus and keys, questions first."""

from __future__ import annotations

from gausynth_engine._preset import schema
from gausynth_tui.launch import CommandResult
from gausynth_tui.messages import RunLaunched
from gausynth_tui.screens.board import BoardScreen
from gausynth_tui.screens.dialogs import ConfirmDialog, PlanDialog
from gausynth_tui.screens.editor import EditorScreen

from .test_live import screen_text, wait_for

SIZE = (80, 24)


async def test_the_board_help_scrolls_to_its_last_key_and_shows_no_binding_ids(recorded):
    app = recorded.app(attach="mug")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert "ctrl+p" not in screen_text(app)  # the last key is below the fold at first
        await pilot.press("end")
        await pilot.pause()
        text = screen_text(app)
        assert "ctrl+p   Command palette" in text and "esc closes" in text
        assert "board.run_stale" not in text and "app.quit" not in text


async def test_the_plan_dialog_keeps_its_buttons_on_an_80x24_screen(recorded):
    app = recorded.app(attach="chair-quick")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanDialog))
        await pilot.pause()
        text = screen_text(app)
        assert "Start (ctrl+r)" in text and "Back (esc)" in text


async def test_the_editor_has_focus_on_open_and_keys_typed_ahead_land_in_that_field(recorded):
    app = recorded.app(attach="plush-dog")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e", "x", "y")  # typed at once, while the editor is still opening
        await pilot.pause()
        editor = app.screen
        assert isinstance(editor, EditorScreen)
        assert app.focused is not None and app.focused.id == "f-run-input"
        assert [path for path, _, _ in editor.unsaved()] == ["run.input"]
        assert editor.unsaved()[0][2].endswith("xy")


async def test_sections_and_the_palette_take_focus_at_once(recorded):
    app = recorded.app(attach="plush-dog")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        await pilot.pause()
        await pilot.press("ctrl+down")
        assert app.focused.id == "f-preprocess-fps"  # the first field of the next section
        await pilot.press("ctrl+up", "ctrl+up")  # back to [run], then around to the last section
        last = [f for f in schema() if f.section == list(dict.fromkeys(f.section for f in schema()))[-1]][0]
        assert app.focused.id == f"f-{last.section}-{last.name}"
        await pilot.press("ctrl+f")
        await pilot.pause()
        await pilot.press(*"splat.iterations", "enter", "9")  # "9" is typed before anything redraws
        await pilot.pause()
        editor = app.screen
        assert isinstance(editor, EditorScreen)
        assert app.focused.id == "f-splat-iterations"
        assert editor.unsaved() == [("splat.iterations", "10000", "100009")]


async def test_an_emptied_number_is_an_error_not_a_greyed_default(recorded):
    app = recorded.app(attach="plush-dog")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("e")
        await pilot.pause()
        editor = app.screen
        field = editor.query_one("#f-splat-iterations")
        field.value = ""
        await wait_for(pilot, lambda: "splat.iterations" in editor.problems)
        assert editor.problems["splat.iterations"].startswith("empty — expected a whole number")
        assert field.placeholder == "(empty)" and field.has_class("-invalid")
        assert editor.preset is None  # nothing can run or be saved from it


async def test_esc_with_unsaved_edits_asks_before_discarding(recorded):
    app = recorded.app(attach="plush-dog")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        await pilot.pause()
        await pilot.press("escape")  # nothing edited: straight back
        await pilot.pause()
        assert isinstance(app.screen, BoardScreen)
        await pilot.press("e")
        await pilot.pause()
        app.screen.query_one("#f-splat-iterations").value = "2000"
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        assert "splat.iterations  10000 → 2000" in screen_text(app)
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, EditorScreen)
        assert app.screen.query_one("#f-splat-iterations").value == "2000"
        await pilot.press("escape", "y")
        await pilot.pause()
        assert isinstance(app.screen, BoardScreen)


async def test_cancel_asks_first_and_says_what_the_training_loses(recorded, monkeypatch):
    import gausynth_tui.screens.board as board

    calls = []
    monkeypatch.setattr(board, "cancel_run", lambda root: calls.append(root) or CommandResult(True, "ok"))
    app = recorded.app(attach="plush-dog")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        text = screen_text(app)
        assert "splat_orig is at 4200/10000 it" in text and "checkpoint is at step 4000" in text
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, BoardScreen) and calls == []
        await pilot.press("c", "y")
        await wait_for(pilot, lambda: calls, 10)
        assert calls == [recorded.runs["plush-dog"].root]


async def test_the_palette_finds_actions_by_their_descriptive_names(recorded):
    app = recorded.app(attach="chair-quick")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"run every")
        await pilot.pause(0.3)
        assert "Run everything stale" in screen_text(app)


async def test_starting_a_run_that_is_running_names_the_holder_and_opens_its_board(recorded):
    app = recorded.app()
    folder = recorded.runs["plush-dog"].root
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.post_message(RunLaunched(False, f"error: {folder} is already being run by process 4000001 "
                                     "since 2026-09-21 14:16; watch it with `gausynth watch`", None))
        await pilot.pause()
        note = next(n for n in app._notifications if n.title == "already running")
        assert "process 4000001" in note.message and "c cancels it" in note.message
        assert isinstance(app.screen, BoardScreen) and app.screen.run_key == str(folder)


async def test_a_finished_run_shows_its_result_card_on_the_board(recorded):
    app = recorded.app(attach="chair-quick")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("s")
        await pilot.pause()
        text = screen_text(app)
        assert "gausynth attach" in text and "folder" in text


async def test_the_board_names_the_overrides_a_run_was_started_with(recorded):
    from gausynth_engine._events import RunStarted

    layout = recorded.runs["chair-quick"]
    with open(layout.journal, "a", encoding="utf-8") as f:
        f.write(RunStarted(pid=4_000_002, preset="presets/quick.toml", t=1_790_000_500.0,
                           command="run presets/quick.toml --set splat.iterations=2000 --set "
                                   "'reimagine.prompt=\"a red chair\"'").to_json() + "\n")
    app = recorded.app(attach="chair-quick")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "preset presets/quick.toml  + 2 override(s): splat.iterations=2000, reimagine.prompt" in text


async def test_loading_another_preset_and_saving_over_a_file_ask_first(recorded, tmp_path):
    from gausynth_tui.screens.dialogs import AskDialog, PresetPicker

    other = tmp_path / "mine.toml"
    other.write_text("# keep me\n", encoding="utf-8")
    app = recorded.app(attach="plush-dog")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        await pilot.pause()
        editor = app.screen
        editor.query_one("#f-splat-iterations").value = "2000"
        await pilot.pause()
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, AskDialog))
        app.screen.query_one("#ask-input").value = str(other)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert "Replace mine.toml?" in screen_text(app)
        await pilot.press("n")
        await pilot.pause()
        assert other.read_text(encoding="utf-8") == "# keep me\n"
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, PresetPicker))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert "Discard 1 unsaved edit(s)?" in screen_text(app)
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is editor and editor.query_one("#f-splat-iterations").value == "2000"


async def test_a_run_seen_finishing_is_announced_with_its_result(recorded):
    from gausynth_engine._events import RunFinished

    layout = recorded.runs["plush-dog"]
    app = recorded.app(attach="plush-dog")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        from gausynth_tui.messages import JournalBatch

        app.post_message(JournalBatch({str(layout.root): [RunFinished(status="done", seconds=900.0)]}, []))
        await pilot.pause()
        note = next(n for n in app._notifications if n.title == "plush-dog: done")
        assert "result card" in note.message


def test_cancel_names_every_stage_running_side_by_side():
    """With run.parallel_stages, SfM and the diffusion can both be running when a user cancels."""
    from types import SimpleNamespace

    from gausynth_engine import RunView
    from gausynth_engine._events import Log, Progress, RunStarted, StagePlanned, StageStarted
    from gausynth_tui.screens.board import what_cancel_loses

    view = RunView()
    for e in [RunStarted(pid=1, preset="quick", command="run", t=1.0),
              *[StagePlanned(stage=s, action="run", reason="not run yet", t=1.0)
                for s in ("sfm", "reimagine", "splat_orig")],
              StageStarted(stage="sfm", pid=2, fingerprint="0", log="", t=2.0),
              StageStarted(stage="reimagine", pid=3, fingerprint="0", log="", t=2.0),
              Progress(stage="sfm", value=12, total=24, unit="frames", t=3.0),
              Progress(stage="reimagine", value=9, total=21, unit="steps", t=3.0),
              Log(stage="sfm", message="matching", t=3.0)]:
        view.apply(e)
    said = what_cancel_loses(SimpleNamespace(view=view))
    assert "sfm is at 12/24 frames" in said and "reimagine is at 9/21 steps" in said
    assert "1 later stage(s) will not run" in said
