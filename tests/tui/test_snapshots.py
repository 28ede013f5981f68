"""Each screen as a user sees it, at 80×24 (SSH) and 120×40, drawn from recorded journals."""

from __future__ import annotations

import pytest

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


@pytest.mark.parametrize("size", SIZES)
def test_runs_list_shows_every_run_with_status_and_last_activity(recorded, snap_compare, size):
    assert snap_compare(recorded.app(), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_board_of_a_training_run_shows_progress_eta_and_vram(recorded, snap_compare, size):
    assert snap_compare(recorded.app(attach="plush-dog"), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_board_of_a_failed_run_shows_the_error_in_full(recorded, snap_compare, size):
    assert snap_compare(recorded.app(attach="mug"), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_preset_editor_marks_a_bad_value_on_its_field(recorded, snap_compare, size):
    async def edit(pilot):
        await pilot.press("e")
        await pilot.pause()
        field = pilot.app.screen.query_one("#f-splat-iterations")
        field.value = "50"  # below the minimum
        field.focus()
        await pilot.pause()

    assert snap_compare(recorded.app(attach="plush-dog"), terminal_size=size, run_before=edit)


@pytest.mark.parametrize("size", SIZES)
def test_preset_editor_shows_the_diff_and_the_stages_that_will_rerun(recorded, snap_compare, size):
    async def edit(pilot):
        await pilot.press("e")
        await pilot.pause()
        pilot.app.screen.query_one("#f-splat-iterations").value = "2000"
        await pilot.pause()
        if size[0] < 110:
            await pilot.press("ctrl+t")  # narrow terminals show the changes instead of the form

    assert snap_compare(recorded.app(attach="plush-dog"), terminal_size=size, run_before=edit)


@pytest.mark.parametrize("size", SIZES)
def test_plan_before_a_run_says_which_stages_rerun(recorded, snap_compare, size):
    assert snap_compare(recorded.app(attach="chair-quick"), terminal_size=size, press=["r"])


@pytest.mark.parametrize("size", SIZES)
def test_training_monitor_shows_curves_evals_and_checkpoints(recorded, snap_compare, size):
    assert snap_compare(recorded.app(attach="plush-dog"), terminal_size=size, press=["t"])


@pytest.mark.parametrize("size", SIZES)
def test_previews_draw_the_model_sheet(recorded, snap_compare, size):
    assert snap_compare(recorded.app(attach="chair-quick"), terminal_size=size, press=["i"])


def test_previews_fall_back_to_a_description_when_images_are_off(recorded, snap_compare):
    assert snap_compare(recorded.app(attach="chair-quick", images="off"), terminal_size=(80, 24), press=["i"])


def test_help_lists_every_key_of_the_board_by_what_it_does(recorded, snap_compare):
    assert snap_compare(recorded.app(attach="mug"), terminal_size=(120, 40), press=["question_mark"])


def test_help_at_80x24_scrolls_to_the_last_key(recorded, snap_compare):
    assert snap_compare(recorded.app(attach="mug"), terminal_size=(80, 24), press=["question_mark", "end"])


def test_cancel_asks_first_and_says_what_is_lost(recorded, snap_compare):
    assert snap_compare(recorded.app(attach="plush-dog"), terminal_size=(80, 24), press=["c"])
