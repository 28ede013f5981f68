"""Preset editor: a form generated from the preset schema, validated as you type.

Each field shows its doc, what it accepts and its default; a change is checked by the engine's
own parser (every problem at once, located on its field). Beside the form: the diff against the
run's snapshot and the plan of the stages the change will rerun.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w
from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.suggester import SuggestFromList
from textual.widgets import Footer, Header, Input, Label, Static

from gausynth_engine import (
    ALL_SECTIONS,
    FieldInfo,
    Preset,
    PresetError,
    changed_fields,
    load_preset,
    parse_preset,
    schema,
)

from ..launch import RunRequest, toml_value
from ..store import display_path
from .base import ViewScreen
from .dialogs import plan_for, plan_table_rows

PLAN_DEBOUNCE = 0.4  # seconds of quiet typing before the plan is recomputed


def widget_id(f: FieldInfo) -> str:
    return f"f-{f.section}-{f.name}"


def shown(value: Any) -> str:
    """Gives a field value as typed in the form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def read_field(f: FieldInfo, raw: Any) -> tuple[Any, str | None]:
    """Gives (TOML-able value, None) for what a form widget holds, or (None, why it is not one)."""
    text = raw.strip()
    if not text and f.kind in (bool, int, float):
        # An emptied field is an error, not its default: say what to type (ctrl+b restores it).
        return None, f"empty — expected {f.spec.accepted(f.kind)} (default {shown(f.default)}, ctrl+b)"
    if f.kind is bool:
        if text.lower() in ("true", "false"):
            return text.lower() == "true", None
        return None, f"{text!r} — expected true or false"
    if f.kind is int:
        try:
            return int(text), None
        except ValueError:
            return None, f"{text!r} — expected a whole number"
    if f.kind is float:
        try:
            return float(text), None
        except ValueError:
            return None, f"{text!r} — expected a number"
    if f.kind is tuple:
        try:
            return [int(v) for v in text.replace(",", " ").split()], None
        except ValueError:
            return None, f"{text!r} — expected whole numbers separated by commas"
    return raw, None


class EditorScreen(ViewScreen):
    HELP = ("Edit a preset in a form made from its schema. Invalid values are marked on their field at "
            "once. The side pane shows what differs from the run's snapshot and which stages would "
            "rerun. ctrl+r shows the plan and starts the run (detached); the edits go to the engine as "
            "--set overrides, so the preset file itself changes only when you save. ctrl+down / ctrl+up "
            "jump to the next / previous section; ctrl+f finds a field by name or doc; esc asks before "
            "dropping unsaved edits.")
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS = [
        Binding("escape", "back", "Back", id="editor.back"),
        Binding("f1", "app.help", "Help", id="editor.help"),  # "?" types into the focused field
        Binding("ctrl+s", "save", "Save", id="editor.save"),
        Binding("f2", "save_as", "Save as", id="editor.save_as"),
        Binding("ctrl+o", "load", "Load", id="editor.load"),
        Binding("ctrl+r", "run", "Run…", tooltip="Plan and start a run with these edits", id="editor.run"),
        Binding("ctrl+t", "toggle_changes", "Diff", tooltip="Changes and plan (narrow terminals)", id="editor.changes"),
        Binding("ctrl+b", "default", "Reset the focused field to its default", show=False, id="editor.default"),
        Binding("ctrl+f", "find_field", "Find", tooltip="Find a field by name or doc (command palette)",
                id="editor.find"),
        Binding("ctrl+down", "section(1)", "Next section", show=False, id="editor.next_section"),
        Binding("ctrl+up", "section(-1)", "Previous section", show=False, id="editor.previous_section"),
    ]

    def __init__(self, source: Path, run_key: str | None = None) -> None:
        super().__init__()
        self.source = Path(source)
        self.run_key = run_key
        self.fields = schema()
        self.by_id = {widget_id(f): f for f in self.fields}
        self.problems: dict[str, str] = {}
        self.general_problems: list[str] = []
        self.preset: Preset | None = None
        self.loaded, load_problems = self._load(self.source)
        self.load_problems = load_problems
        self.snapshot = self._snapshot()
        self._plan_timer = None
        self._ready = False  # widgets report their first values on mount: not edits
        self._validate_pending = False
        self._marked: dict[str, str] = {}

    # --- loading ---------------------------------------------------------------------------------
    @staticmethod
    def _load(path: Path) -> tuple[Preset, list[str]]:
        try:
            return load_preset(path), []
        except PresetError as e:
            return Preset(), [str(p) for p in e.problems]

    def _snapshot(self) -> tuple[str, Preset] | None:
        """Gives (label, preset) of the run snapshot to diff against, when there is one."""
        if self.run_key:
            layout = self.gapp.store.runs[self.run_key].layout if self.run_key in self.gapp.store.runs else None
            if layout and layout.preset_snapshot.exists():
                snap, problems = self._load(layout.preset_snapshot)
                if not problems:
                    return layout.root.name, snap
        return None

    @property
    def is_snapshot(self) -> bool:
        return self.source.name == "preset.toml" and self.source.parent.name == ".gausynth"

    # --- the form -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static(id="editor-status")
        with Horizontal(id="editor-body"):
            with VerticalScroll(id="form", can_focus=False):  # Tab visits fields only
                section = ""
                for f in self.fields:
                    if f.section != section:
                        section = f.section
                        yield Static(Text(f"[{section}]"), classes="section-title")
                    yield from self._field(f)
            with VerticalScroll(id="changes-pane", can_focus=False):
                yield Static(id="changes")
        yield Static(id="field-doc")
        yield Footer(compact=True, show_command_palette=False)

    def _field(self, f: FieldInfo) -> ComposeResult:
        value = self.loaded.get(f.path)
        wid = widget_id(f)
        # Inputs only (choices complete as you type): a form of sixty Selects takes seconds to mount.
        choices = ["true", "false"] if f.kind is bool else [shown(c) for c in f.spec.choices or ()]
        # No greyed default as placeholder: an emptied field would look filled in and valid.
        # select_on_focus off: a key typed ahead adds to a value instead of wiping it.
        widget = Input(shown(value), id=wid, placeholder="(empty)", select_on_focus=False,
                       suggester=SuggestFromList(choices, case_sensitive=False) if choices else None)
        widget.cursor_blink = self.gapp.live
        with Horizontal(classes="field-row", id=f"row-{f.section}-{f.name}"):
            yield Label(f.name, classes="field-name")
            yield widget

    def field_doc(self, f: FieldInfo) -> Text:
        """Gives the help line of a field: its doc, what it accepts, its default."""
        default = shown(f.default) if f.default != "" else "empty"
        return Text.assemble((f.path, "bold cyan"), "  ", f.spec.doc, ("  accepted: ", "dim"),
                             f.spec.accepted(f.kind), ("  default: ", "dim"), default)

    def on_descendant_focus(self, event) -> None:
        f = self.by_id.get(getattr(event.widget, "id", None) or "")
        if f is None and event.widget.parent is not None:  # a Select's inner part
            f = self.by_id.get(event.widget.parent.id or "")
        if f is not None:
            self.query_one("#field-doc", Static).update(self.field_doc(f))

    def on_mount(self) -> None:
        self.sub_title = f"preset {self.source.name}"
        self.query_one("#field-doc", Static).update(self.field_doc(self.fields[0]))
        # Focus now, not through Widget.focus() (deferred: keys typed meanwhile go elsewhere).
        self.set_focus(self.query_one(f"#{widget_id(self.fields[0])}", Input))
        self.call_after_refresh(self._start)
        if self.load_problems:
            self.notify("\n".join(self.load_problems), title=f"{self.source.name} has problems; the form "
                        "starts from the defaults", severity="error", timeout=15)

    def _start(self) -> None:
        self._ready = True
        self.validate_form()

    def _validate_soon(self) -> None:
        """Validates once after the current burst of changes (one per refresh, not per key)."""
        if self._ready and not self._validate_pending:
            self._validate_pending = True
            self.call_after_refresh(self._validate_now)

    def _validate_now(self) -> None:
        self._validate_pending = False
        if self.is_mounted:
            self.validate_form()

    # --- validation -------------------------------------------------------------------------------
    def _raw(self, f: FieldInfo) -> Any:
        return self.query_one(f"#{widget_id(f)}", Input).value

    def form_values(self) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """Gives (TOML data of the form, {field path: why its text is not a value})."""
        data: dict[str, dict[str, Any]] = {name: {} for name in ALL_SECTIONS}
        local: dict[str, str] = {}
        for f in self.fields:
            value, why = read_field(f, self._raw(f))
            if why:
                local[f.path] = why
            else:
                data[f.section][f.name] = value
        return data, local

    def validate_form(self) -> Preset | None:
        """Checks the whole form with the engine's parser; marks every field with a problem."""
        data, problems = self.form_values()
        general: list[str] = []
        preset = None
        try:
            preset = parse_preset(tomli_w.dumps(data), "form")
        except PresetError as e:
            for p in e.problems:
                if p.path in {f.path for f in self.fields}:
                    problems.setdefault(p.path, p.message)
                else:
                    general.append(str(p))
        if problems:
            preset = None
        self.problems, self.general_problems, self.preset = problems, general, preset
        for f in self.fields:
            why = problems.get(f.path, "")
            if self._marked.get(f.path, "") == why:
                continue  # restyling sixty widgets per key press is what makes a form slow
            self._marked[f.path] = why
            self._error_line(f).update(Text(f"✘ {why}", style="bold red") if why else "")
            self._error_line(f).display = bool(why)
            self.query_one(f"#{widget_id(f)}").set_class(bool(why), "-invalid")
        self._draw_status()
        self._draw_changes(plan=None)
        self._schedule_plan()
        return preset

    def _error_line(self, f: FieldInfo) -> Static:
        """Gives the line under a field that explains its problem (made the first time it is needed)."""
        found = self.query(f"#err-{f.section}-{f.name}")
        if found:
            return found.first(Static)
        line = Static("", classes="field-error", id=f"err-{f.section}-{f.name}")
        self.query_one("#form").mount(line, after=self.query_one(f"#row-{f.section}-{f.name}"))
        return line

    def _draw_status(self) -> None:
        n = len(self.problems) + len(self.general_problems)
        changed = len(self.form_diff(self.loaded))
        status = Text.assemble((f"✘ {n} problem(s)" if n else "✔ valid", "bold red" if n else "green"),
                               (f" · {changed} edit(s)", "yellow" if changed else "dim"), (" · ", "dim"),
                               ("run snapshot " if self.is_snapshot else "file ", "dim"), display_path(self.source),
                               no_wrap=True, overflow="ellipsis")
        self.query_one("#editor-status", Static).update(status)

    def form_diff(self, base: Preset) -> list[tuple[str, Any, Any]]:
        """Gives (path, base value, form value) for each readable field that differs from `base`."""
        out = []
        for f in self.fields:
            value, why = read_field(f, self._raw(f))
            if why is None:
                value = tuple(value) if isinstance(value, list) else value
                if value != base.get(f.path):
                    out.append((f.path, base.get(f.path), value))
        return out

    def overrides(self) -> list[str]:
        """Gives the edits since loading, as `--set` overrides (only when the form is valid)."""
        if self.preset is None:
            return []
        return [f"{path}={toml_value(new)}" for path, _, new in changed_fields(self.loaded, self.preset)]

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in self.by_id:
            self._validate_soon()

    # --- changes and plan ---------------------------------------------------------------------------
    def _draw_changes(self, plan: tuple[list[tuple[str, str, str]], str] | None) -> None:
        parts: list = []
        if self.general_problems:
            parts += [Text(p, style="bold red") for p in self.general_problems] + [Text("")]
        base_label, base = (f"run {self.snapshot[0]}'s snapshot", self.snapshot[1]) if self.snapshot else (
            f"{self.source.name} as loaded", self.loaded)
        parts.append(Text(f"Changes vs {base_label}", style="bold underline"))
        diff = self.form_diff(base)
        if not diff:
            parts.append(Text("none", style="dim"))
        for path, old, new in diff:
            parts.append(Text.assemble(f"{path}  ", (shown(old) or "∅", "red"), " → ",
                                       (shown(new) or "∅", "green")))
        for path, why in self.problems.items():
            parts.append(Text.assemble(f"{path}  ", ("✘ " + why, "bold red")))
        parts += [Text(""), Text("Stages this run will run", style="bold underline")]
        if self.preset is None:
            parts.append(Text("(fix the fields marked ✘ first)", style="dim"))
        elif plan is None:
            parts.append(Text("planning …", style="dim"))
        else:
            steps, problem = plan
            if problem:
                parts.append(Text(problem, style="red"))
            for glyph_stage, word, reason in plan_table_rows(steps):
                why = "" if word.plain == "unchanged" else "  " + reason.plain
                parts.append(Text.assemble(glyph_stage, " ", word, (why, "dim")))
        self.query_one("#changes", Static).update(Group(*parts))

    def _request(self) -> RunRequest:
        return RunRequest(self.source, tuple(self.overrides()))

    def _schedule_plan(self) -> None:
        if self.preset is None:
            return
        if not self.gapp.live:
            _, steps, problem = plan_for(self._request())
            self._draw_changes((steps, problem))
            return
        if self._plan_timer is not None:
            self._plan_timer.stop()
        self._plan_timer = self.set_timer(PLAN_DEBOUNCE, lambda: self._plan_worker(self._request()))

    @work(thread=True, exclusive=True, group="editor-plan")
    def _plan_worker(self, request: RunRequest) -> None:
        _, steps, problem = plan_for(request)
        self.app.call_from_thread(self._plan_ready, request, steps, problem)

    def _plan_ready(self, request: RunRequest, steps: list, problem: str) -> None:
        if self.is_mounted and request == self._request():
            self._draw_changes((steps, problem))

    # --- moving around ---------------------------------------------------------------------------
    def on_key(self, event) -> None:
        """Keys typed before a field has focus (the editor still opening) go to the first field."""
        if self.focused is None and event.is_printable and event.character:
            field = self.query_one(f"#{widget_id(self.fields[0])}", Input)
            self.set_focus(field)
            field.insert_text_at_cursor(event.character)
            event.stop()

    def go_to(self, f: FieldInfo) -> None:
        """Focuses a field at once (typed-ahead keys land in it) and scrolls it into view."""
        self.set_focus(self.query_one(f"#{widget_id(f)}", Input))

    def action_section(self, step: int) -> None:
        sections = list(dict.fromkeys(f.section for f in self.fields))
        current = self.by_id.get(getattr(self.focused, "id", None) or "")
        i = sections.index(current.section) if current else -1
        target = sections[(i + step) % len(sections)]
        self.go_to(next(f for f in self.fields if f.section == target))

    def action_find_field(self) -> None:
        self.app.action_command_palette()

    def palette_commands(self) -> list[tuple[str, Any, str]]:
        """Gives the command palette one entry per field and per section (the palette finds them)."""
        from functools import partial

        out = []
        for f in self.fields:
            doc = f.spec.doc if len(f.spec.doc) <= 60 else f.spec.doc[:59] + "…"
            out.append((f"{f.path}: {doc}", partial(self.go_to, f), f"field · {f.spec.accepted(f.kind)}"))
        for section in dict.fromkeys(f.section for f in self.fields):
            first = next(f for f in self.fields if f.section == section)
            out.append((f"Go to section [{section}]", partial(self.go_to, first), "section"))
        return out

    # --- actions ------------------------------------------------------------------------------------
    def unsaved(self) -> list[tuple[str, str, str]]:
        """Gives (path, as loaded, as typed) for every field whose text changed since loading/saving."""
        out = []
        for f in self.fields:
            was, now = shown(self.loaded.get(f.path)), self._raw(f)
            if now.strip() != was:
                out.append((f.path, was, now))
        return out

    def action_back(self) -> None:
        self._unless_unsaved(self.app.pop_screen, "Discard")

    def _unless_unsaved(self, then, verb: str) -> None:
        """Calls `then()` at once without unsaved edits; otherwise asks first, listing them."""
        edits = self.unsaved()
        if not edits:
            then()
            return
        from .dialogs import ConfirmDialog

        listed = "\n".join(f"  {path}  {old or '∅'} → {new.strip() or '∅ (empty)'}"
                            for path, old, new in edits[:8])
        more = f"\n  … and {len(edits) - 8} more" if len(edits) > 8 else ""

        def answered(yes: bool | None) -> None:
            if yes:
                then()

        self.app.push_screen(ConfirmDialog(
            f"{verb} {len(edits)} unsaved edit(s)?",
            f"{listed}{more}\nctrl+s saves them; ctrl+r runs with them.",
            yes=verb, no="Keep editing"), answered)

    def action_toggle_changes(self) -> None:
        self.toggle_class("-show-changes")

    def action_default(self) -> None:
        focused = self.app.focused
        f = self.by_id.get(focused.id or "") if focused is not None else None
        if f is None:
            self.notify("focus a field first", severity="warning")
            return
        self.query_one(f"#{widget_id(f)}", Input).value = shown(f.default)
        self.validate_form()

    def action_save(self) -> None:
        if self.is_snapshot or not self.source.parent.exists() or self._is_bundled():
            self.action_save_as()
            return
        self._write(self.source)

    def _is_bundled(self) -> bool:
        from gausynth_engine import presets_dir

        return self.source.parent.resolve() == presets_dir().resolve()

    def action_save_as(self) -> None:
        from .dialogs import AskDialog

        def answered(path: str | None) -> None:
            if not path:
                return
            target = Path(path.strip()).expanduser()
            target = target if target.suffix == ".toml" else target.with_suffix(".toml")
            if target.exists() and target.resolve() != self.source.resolve():
                from .dialogs import ConfirmDialog

                self.app.push_screen(ConfirmDialog(f"Replace {target.name}?",
                                                   f"{target} exists; saving replaces what it holds.",
                                                   yes="Replace", no="Keep it"),
                                     lambda yes: self._write(target) if yes else None)
                return
            self._write(target)

        suggestion = self.source.name if not self.is_snapshot else f"{self.snapshot[0] if self.snapshot else 'run'}.toml"
        self.app.push_screen(AskDialog("Save the preset as (a .toml path):", suggestion), answered)

    def _write(self, path: Path) -> None:
        preset = self.validate_form()
        if preset is None:
            self.notify("the preset has problems; fix the marked fields first", severity="error")
            return
        if path.suffix != ".toml":
            path = path.with_suffix(".toml")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(preset.to_toml(), encoding="utf-8")
        except OSError as e:
            self.notify(f"{path}: {e}", severity="error")
            return
        self.source, self.loaded = path, preset
        self.sub_title = f"preset {self.source.name}"
        self.validate_form()
        self.notify(f"saved {path}", timeout=4)

    def action_load(self) -> None:
        from .dialogs import PresetPicker

        def picked(path: Path | None) -> None:
            if path is not None:
                def load() -> None:
                    self.app.pop_screen()
                    self.gapp.open_editor(path, self.run_key)

                self._unless_unsaved(load, "Discard")

        self.app.push_screen(PresetPicker("Load which preset?"), picked)

    def action_run(self) -> None:
        from .dialogs import PlanDialog

        if self.validate_form() is None:
            self.notify("the preset has problems; fix the marked fields first", severity="error")
            return
        self.app.push_screen(PlanDialog(self._request()))
