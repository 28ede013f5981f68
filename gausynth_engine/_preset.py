"""Typed TOML presets: load, validate (every problem at once), override, snapshot."""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._layout import RUN_NAME, RUN_NAME_RULE
from ._params import FieldInfo, coerce, param, section_fields
from .stages import SECTIONS


@dataclass(frozen=True)
class RunParams:
    input: str = param("", "The turn-around: a video file or a folder of images (relative to the "
                       "current folder).")
    directory: str = param("default", "The run's folder name under outputs_root.")
    outputs_root: str = param("", "Where run folders live (relative: from the current folder); "
                              "empty = $GAUSYNTH_OUTPUTS_ROOT, else ~/.local/share/gausynth/runs. "
                              "--outputs-root overrides it.")
    pipeline: str = param("reimagine", "reimagine: the whole pipeline, key frames carried by 2D "
                          "optical flow; reimagine-3d: key views carried through the original 3DGS "
                          "(transfer); reimagine-sync: synchronised diffusion over the original 3DGS "
                          "(see [sync]); original: frames → SfM → 3DGS of the original footage, no "
                          "diffusion.", choices=("reimagine", "reimagine-3d", "reimagine-sync", "original"))
    device: str = param("auto", "Where GPU stages run; auto = CUDA when present.",
                        choices=("auto", "cuda", "cpu"))
    parallel_stages: int = param(2, "Stages of the run that may run at the same time, each as soon "
                                 "as the stages it needs have finished (e.g. SfM beside the "
                                 "diffusion); 1 = one after another (GPUs short of memory for two).",
                                 min=1, max=16)
    keep_trainings: int = param(3, "3DGS trainings kept under gs/ per variant (newest first; the one "
                                "in use is never removed).", min=1, max=1000)


ALL_SECTIONS: dict[str, type] = {"run": RunParams, **SECTIONS}


class _PresetMethods:
    """What every preset can do; the fields come from the stages' declarations (`Preset` below)."""

    def section(self, name: str) -> Any:
        return getattr(self, name)

    def get(self, path: str) -> Any:
        """Gives the value of a field by its path, e.g. 'reimagine.strength'."""
        section, name = path.split(".", 1)
        return getattr(self.section(section), name)

    @property
    def input_path(self) -> Path:
        return Path(self.run.input)  # type: ignore[attr-defined]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Gives the preset as plain TOML-able data (tuples as lists)."""
        return {
            name: {k: list(v) if isinstance(v, tuple) else v
                   for k, v in dataclasses.asdict(self.section(name)).items()}
            for name in ALL_SECTIONS
        }

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())


# A fully resolved preset: every section, every field typed and in range. One field per section,
# `run` first, then the stages' sections (stages/__init__.py: SECTIONS), each defaulting to its
# dataclass's defaults: a new stage adds its section here by being declared.
Preset = dataclasses.make_dataclass(
    "Preset", [(name, cls, dataclasses.field(default=cls())) for name, cls in ALL_SECTIONS.items()],
    bases=(_PresetMethods,), frozen=True, namespace={"__module__": __name__})
Preset.__doc__ = "A fully resolved preset: every section, every field typed and in range."


def schema() -> list[FieldInfo]:
    """Gives every preset field, section by section, in declaration order."""
    return [f for name, cls in ALL_SECTIONS.items() for f in section_fields(name, cls)]


# --- errors --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One thing wrong with a preset, located as precisely as possible."""

    source: str  # a file path, or "--set"
    line: int | None
    path: str  # field path, e.g. "reimagine.strength"
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PresetError(ValueError):
    """A preset that cannot be used; `problems` lists every reason at once."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        # In file order, as an editor shows them; --set problems (no line) after the file's.
        self.problems = sorted(problems, key=lambda p: (p.line is None, p.line or 0))
        super().__init__("\n".join(str(p) for p in self.problems))


# --- loading ---------------------------------------------------------------------------------
def load_preset(path: Path | str, overrides: Iterable[str] = ()) -> Preset:
    """Gives the validated preset of a TOML file with `section.field=value` overrides applied."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PresetError([Problem(str(path), None, "", "no such preset file")]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise PresetError([Problem(str(path), None, "", f"cannot be read ({e})")]) from None
    return parse_preset(text, str(path), overrides)


def parse_preset(text: str, source: str = "<preset>", overrides: Iterable[str] = ()) -> Preset:
    """Gives the validated preset of TOML text (see `load_preset`)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise PresetError([Problem(source, int(m.group(1)) if m else None, "",
                                   f"not valid TOML: {e}")]) from None
    lines = _field_lines(text)
    problems: list[Problem] = []
    values: dict[str, dict[str, Any]] = {name: {} for name in ALL_SECTIONS}
    for key, table in data.items():
        if key not in ALL_SECTIONS:
            problems.append(Problem(source, lines.get(key), key,
                                    "unknown section" + _did_you_mean(key, ALL_SECTIONS)))
            continue
        if not isinstance(table, dict):
            problems.append(Problem(source, lines.get(key), key, "expected a [section] table"))
            continue
        for name, value in table.items():
            values[key][name] = (value, source, lines.get(f"{key}.{name}"))
    for override in overrides:
        parsed = _parse_override(override)
        if isinstance(parsed, Problem):
            problems.append(parsed)
            continue
        section, name, value = parsed
        if section not in ALL_SECTIONS:
            problems.append(Problem("--set", None, f"{section}.{name}",
                                    "unknown section" + _did_you_mean(section, ALL_SECTIONS)))
            continue
        values[section][name] = (value, "--set", None)
    preset = _build(values, problems)
    if problems:
        raise PresetError(problems)
    return preset


def _build(values: dict[str, dict[str, Any]], problems: list[Problem]) -> Preset:
    sections = {}
    for section, cls in ALL_SECTIONS.items():
        fields = {f.name: f for f in section_fields(section, cls)}
        kwargs = {}
        for name, (raw, source, line) in values[section].items():
            info = fields.get(name)
            if info is None:
                problems.append(Problem(source, line, f"{section}.{name}",
                                        "unknown field" + _did_you_mean(name, fields, section)))
                continue
            value, why = coerce(info, raw)
            if why:
                problems.append(Problem(source, line, info.path, f"{raw!r} — {why}"))
            else:
                kwargs[name] = value
        sections[section] = cls(**kwargs)
    preset = Preset(**sections)
    problems.extend(_cross_checks(preset, values))
    return preset


def _cross_checks(preset: Preset, values: dict[str, dict[str, Any]]) -> list[Problem]:
    """Gives problems that involve two fields at once."""
    out = []
    r = preset.reimagine
    if r.canny_low > r.canny_high:
        _, source, line = values["reimagine"].get("canny_low", (None, "preset", None))
        out.append(Problem(source, line, "reimagine.canny_low",
                           f"{r.canny_low} is above reimagine.canny_high = {r.canny_high}; "
                           "accepted: low ≤ high"))
    if not RUN_NAME.match(preset.run.directory):
        _, source, line = values["run"].get("directory", (None, "preset", None))
        out.append(Problem(source, line, "run.directory",
                           f"{preset.run.directory!r} — {RUN_NAME_RULE}"))
    return out


def _parse_override(text: str) -> tuple[str, str, Any] | Problem:
    key, eq, raw = text.partition("=")
    key = key.strip()
    if not eq or key.count(".") != 1:
        return Problem("--set", None, key, f"{text!r} — expected section.field=value, "
                       "e.g. reimagine.strength=0.5")
    section, name = key.split(".")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # bare words are text: --set run.input=clip.mp4
    return section, name, value


def _field_lines(text: str) -> dict[str, int]:
    """Gives the line of each '[section]' and 'section.key =' in TOML text (best effort)."""
    out: dict[str, int] = {}
    section = ""
    for n, line in enumerate(text.splitlines(), start=1):
        if m := re.match(r"\s*\[\s*([A-Za-z0-9_.-]+)\s*\]", line):
            section = m.group(1)
            out.setdefault(section, n)
        elif m := re.match(r"\s*([A-Za-z0-9_-]+)\s*=", line):
            out.setdefault(f"{section}.{m.group(1)}" if section else m.group(1), n)
    return out


def _did_you_mean(name: str, known: Iterable[str], section: str = "") -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    if close:
        return f"; did you mean {section + '.' if section else ''}{close[0]}?"
    return f"; accepted: {', '.join(known)}"


def changed_fields(old: Preset, new: Preset) -> list[tuple[str, Any, Any]]:
    """Gives (field path, old value, new value) for every field that differs."""
    out = []
    for f in schema():
        a, b = old.get(f.path), new.get(f.path)
        if a != b:
            out.append((f.path, a, b))
    return out


def preset_table() -> str:
    """Gives the Markdown table of every preset field (the README's, from the schema)."""
    rows = ["| field | default | accepted | what it does |", "|---|---|---|---|"]
    for f in schema():
        default = f.default if not isinstance(f.default, tuple) else list(f.default)
        rows.append(f"| `{f.path}` | `{default!r}` | {f.spec.accepted(f.kind)} | {f.spec.doc} |")
    return "\n".join(rows)
