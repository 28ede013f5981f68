"""Small modal screens: the plan before a run, a preset picker, a question, a long text."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, DataTable, Input, OptionList, Select, Static
from textual.widgets.option_list import Option

from gausynth_engine import LayoutError, PlanError, PresetError, RunLayout, load_preset, make_plan

from ..launch import RunRequest
from ..store import STAGE_IDS
from .style import STATE_LOOK

MODES = (("everything stale", "stale"), ("from a stage on", "from"), ("one stage only", "only"),
         ("up to a stage", "until"))
ACTION_LOOK = {"run": "pending", "skip": "skipped", "off": "off", "out": "out"}


def plan_for(request: RunRequest) -> tuple[RunLayout | None, list[tuple[str, str, str]], str]:
    """Gives (run folder, [(stage, action, reason)], problem) for what `request` would do.

    Planning never creates a run folder: a run that does not exist yet is planned against an
    empty temporary one (every stage "not run yet").
    """
    from gausynth_engine import resolve_paths

    try:
        preset = resolve_paths(load_preset(request.preset, request.overrides))
        layout = RunLayout.for_run(Path(preset.run.outputs_root), preset.run.directory)
        if not preset.run.input:
            return layout, [], "run.input is empty: give a video file or an image folder"
        if not Path(preset.run.input).exists():
            return layout, [], f"run.input = {preset.run.input}: no such file or folder"
        options = dict(start=request.start, until=request.until, only=request.only, force=request.force)
        if layout.meta.is_dir():
            plan = make_plan(preset, layout, **options)
        else:
            with tempfile.TemporaryDirectory(prefix="gausynth-plan-") as tmp:
                plan = make_plan(preset, RunLayout(Path(tmp) / layout.root.name), **options)
    except PresetError as e:
        return None, [], "\n".join(str(p) for p in e.problems)
    except (PlanError, LayoutError, OSError) as e:
        return None, [], str(e)
    return layout, [(s.stage.id, s.action, s.reason) for s in plan.steps], ""


def plan_table_rows(steps: list[tuple[str, str, str]]) -> list[tuple[Text, Text, Text]]:
    rows = []
    for sid, action, reason in steps:
        glyph, _, style = STATE_LOOK[ACTION_LOOK.get(action, "off")]
        ran_before = action == "run" and reason not in ("not run yet",)
        word = {"run": "rerun" if ran_before else "run", "skip": "unchanged", "off": "off",
                "out": "not asked"}.get(action, action)
        why = "nothing it reads changed" if reason == "unchanged" else reason
        rows.append((Text(f"{glyph} {sid}", style=style), Text(word, style=style), Text(why)))
    return rows


class PlanDialog(ModalScreen[None]):
    """Before a run: which stages will rerun and why; range and force can still change here."""

    SHORT = 34  # rows: below, the table scrolls so that the buttons stay on screen (80×24 over SSH)

    BINDINGS = [
        Binding("escape", "dismiss_plan", "Back", id="plan.back"),
        Binding("ctrl+r", "start", "Start", id="plan.start"),
    ]
    HELP = "The plan of a run before it starts: what reruns, what stays (unchanged) and why."

    def __init__(self, request: RunRequest) -> None:
        super().__init__()
        self.request = request
        self.problem = ""

    def compose(self) -> ComposeResult:
        r = self.request
        mode = "only" if r.only else "from" if r.start else "until" if r.until else "stale"
        stage = r.only or r.start or r.until or STAGE_IDS[0]
        with Vertical(id="plan-dialog", classes="dialog"):
            yield Static(id="plan-title", classes="dialog-title")
            with Horizontal(id="plan-options"):
                yield Select(MODES, value=mode, allow_blank=False, id="plan-mode")
                yield Select([(s, s) for s in STAGE_IDS], value=stage, allow_blank=False, id="plan-stage")
                yield Checkbox("force", r.force, id="plan-force")
            yield DataTable(id="plan-steps", cursor_type="none", show_cursor=False)
            yield Static(id="plan-command", classes="dim")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Start (ctrl+r)", variant="primary", id="plan-start")
                yield Button("Back (esc)", id="plan-back")

    def on_mount(self) -> None:
        # Set before the first frame (a breakpoint class arrives a frame late, drawn either way).
        self.set_class(self.app.size.height < self.SHORT, "-short")
        table = self.query_one("#plan-steps", DataTable)
        table.add_columns("stage", "will", "why")
        self.query_one("#plan-stage", Select).display = self._mode() != "stale"
        self._replan()
        self.query_one("#plan-start", Button).focus()

    def _mode(self) -> str:
        return str(self.query_one("#plan-mode", Select).value)

    def _request(self) -> RunRequest:
        mode, stage = self._mode(), str(self.query_one("#plan-stage", Select).value)
        return dataclasses.replace(
            self.request, start=stage if mode == "from" else None, until=stage if mode == "until" else None,
            only=stage if mode == "only" else None, force=self.query_one("#plan-force", Checkbox).value)

    def _replan(self) -> None:
        request = self._request()
        layout, steps, self.problem = plan_for(request)
        name = layout.root.name if layout else "?"
        rerun = sum(1 for _, a, _ in steps if a == "run")
        self.query_one("#plan-title", Static).update(Text.assemble(
            ("Run ", "bold"), (name, "bold cyan"),
            (f" — {rerun} stage(s) will run" if not self.problem else " — cannot run", "bold")))
        table = self.query_one("#plan-steps", DataTable)
        table.clear()
        for row in plan_table_rows(steps):
            table.add_row(*row)
        if self.problem:
            table.add_row(Text("✘", style="red"), Text("problem", style="red"), Text(self.problem, style="red"))
        self.query_one("#plan-command", Static).update(
            Text(request.describe().replace(str(Path.cwd()) + "/", ""), style="dim"))
        self.query_one("#plan-start", Button).disabled = bool(self.problem) or rerun == 0

    def on_select_changed(self, event: Select.Changed) -> None:
        if self.is_mounted and self.query("#plan-steps"):
            self.query_one("#plan-stage", Select).display = self._mode() != "stale"
            self._replan()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self._replan()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "plan-start":
            self.action_start()
        else:
            self.dismiss(None)

    def action_start(self) -> None:
        if self.query_one("#plan-start", Button).disabled:
            self.notify(self.problem or "nothing to run: every stage is unchanged (use force)",
                        severity="warning")
            return
        request = self._request()
        self.dismiss(None)
        self.app.launch(request)  # type: ignore[attr-defined]

    def action_dismiss_plan(self) -> None:
        self.dismiss(None)


class PresetPicker(ModalScreen[Path | None]):
    """Pick a bundled preset, or type the path of a preset file."""

    BINDINGS = [Binding("escape", "cancel", "Back", id="picker.back")]
    HELP = "Choose the preset a new run (or the editor) starts from."

    def __init__(self, title: str = "Start from which preset?") -> None:
        super().__init__()
        self.title_text = title

    def compose(self) -> ComposeResult:
        from gausynth_engine import presets_dir

        self.presets = sorted(presets_dir().glob("*.toml"))
        with Vertical(classes="dialog", id="picker"):
            yield Static(self.title_text, classes="dialog-title")
            yield OptionList(*[Option(Text.assemble((p.stem, "bold"), ("  " + _first_comment(p), "dim")),
                                      id=str(p)) for p in self.presets], id="picker-list")
            yield Input(placeholder="…or a preset file path, then enter", id="picker-path")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(Path(str(event.option.id)))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        path = Path(event.value.strip()).expanduser()
        if not path.is_file():
            self.notify(f"{path}: no such preset file", severity="error")
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)


def _first_comment(path: Path) -> str:
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                return line.lstrip("# ").strip()
    except OSError:
        pass
    return ""


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question before something that cannot be undone; says what will be lost."""

    BINDINGS = [
        Binding("escape,n", "answer(False)", "No", id="confirm.no"),
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
    ]
    HELP = "A question before something that cannot be undone: y does it, n or esc keeps things as they are."

    def __init__(self, title: str, body: str, yes: str, no: str = "Keep going") -> None:
        super().__init__()
        self.title_text, self.body, self.yes, self.no = title, body, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm"):
            yield Static(Text(self.title_text, style="bold"), classes="dialog-title")
            yield Static(self.body, id="confirm-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="confirm-yes")
                yield Button(f"{self.no} (n)", variant="primary", id="confirm-no")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()  # the safe answer is the default

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class AskDialog(ModalScreen[str | None]):
    """One question, one line of answer."""

    BINDINGS = [Binding("escape", "cancel", "Back", id="ask.back")]

    def __init__(self, question: str, value: str = "") -> None:
        super().__init__()
        self.question, self.value = question, value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="ask"):
            yield Static(self.question, classes="dialog-title")
            yield Input(self.value, id="ask-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class TextDialog(ModalScreen[None]):
    """A long text (an error with its traceback), scrollable."""

    BINDINGS = [Binding("escape", "close", "Close", id="text.close")]

    def __init__(self, title: str, body: Any) -> None:
        super().__init__()
        self.title_text, self.body = title, body

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="text-dialog"):
            yield Static(self.title_text, classes="dialog-title")
            with VerticalScroll():
                yield Static(self.body)

    def action_close(self) -> None:
        self.dismiss(None)
