"""Preset fields documented where they are declared: default, range or choices, one line of doc.

Each section of a preset is a frozen dataclass whose fields are made with `param(...)`. The same
declaration feeds validation, the TUI's form and the README's preset table.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Spec:
    """What one preset field accepts."""

    doc: str
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    # Free text accepted besides the named choices (e.g. a model id or a path).
    open_choices: bool = False

    def accepted(self, kind: type) -> str:
        """Gives a short human phrase for the values this field accepts."""
        if self.choices is not None:
            named = ", ".join(repr(c) for c in self.choices)
            return f"one of {named}" + (" or a model id / path" if self.open_choices else "")
        if self.min is not None and self.max is not None:
            return f"{_kind_name(kind)} from {_num(self.min)} to {_num(self.max)}"
        if self.min is not None:
            return f"{_kind_name(kind)} ≥ {_num(self.min)}"
        return _kind_name(kind)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def param(default: Any, doc: str, *, min: float | None = None, max: float | None = None,
          choices: tuple[Any, ...] | None = None, open_choices: bool = False) -> Any:
    """Gives a dataclass field carrying its `Spec` (doc, range, choices) as metadata."""
    spec = Spec(doc=doc, min=min, max=max, choices=choices, open_choices=open_choices)
    if isinstance(default, (list, dict)):
        raise TypeError("preset defaults must be immutable: use a tuple")
    return field(default=default, metadata={"spec": spec})


@dataclass(frozen=True)
class FieldInfo:
    """One preset field as the schema knows it."""

    section: str
    name: str
    kind: type  # int, float, bool, str, or tuple (a list of ints)
    default: Any
    spec: Spec

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}"


def section_fields(section: str, cls: type) -> list[FieldInfo]:
    """Gives the declared fields of one section dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("spec")
        if spec is None:
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with param()")
        out.append(FieldInfo(section, f.name, _base_kind(hints[f.name]), f.default, spec))
    return out


def _base_kind(hint: Any) -> type:
    origin = typing.get_origin(hint)
    if origin is tuple:
        return tuple
    if hint in (int, float, bool, str):
        return hint
    raise TypeError(f"unsupported preset field type {hint!r}")


def _kind_name(kind: type) -> str:
    return {int: "a whole number", float: "a number", bool: "true or false", str: "text",
            tuple: "a list of whole numbers"}[kind]


def coerce(info: FieldInfo, value: Any) -> tuple[Any, str | None]:
    """Gives (value converted to the field's type, None) or (None, why it is not accepted)."""
    kind, spec = info.kind, info.spec
    if kind is bool:
        if not isinstance(value, bool):
            return None, f"expected {_kind_name(bool)}"
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                return None, f"expected {spec.accepted(int)}"
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, f"expected {spec.accepted(float)}"
        value = float(value)
        if not math.isfinite(value):  # TOML allows nan and inf; no field means either
            return None, f"not a finite number; accepted: {spec.accepted(float)}"
    elif kind is str:
        if not isinstance(value, str):
            return None, f"expected {spec.accepted(str)}"
    elif kind is tuple:
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            return None, f"expected {_kind_name(tuple)}"
        value = tuple(value)
        bad = [v for v in value if (spec.min is not None and v < spec.min)
               or (spec.max is not None and v > spec.max)]
        if bad:
            return None, f"{bad[0]} is out of range; accepted: each from {_num(spec.min)} to {_num(spec.max)}"
        return value, None
    if spec.choices is not None and value not in spec.choices and not spec.open_choices:
        return None, f"accepted: {spec.accepted(kind)}"
    too_low = spec.min is not None and value < spec.min
    if kind in (int, float) and (too_low or (spec.max is not None and value > spec.max)):
        return None, f"out of range; accepted: {spec.accepted(kind)}"
    return value, None
