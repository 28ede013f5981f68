"""GauSynth's headless core: presets → plan → worker subprocesses → journal → standard layout.

This module is the engine's public surface: what the app (`gausynth_tui`) and scripts may use —
find and load presets, the schema, plan a preset, start and cancel a run (`run_argv`, `main`),
read a run's state (journal, `RunView`, the result card), list and find runs. Everything else is
private (`_*.py`, `cli`): an import-linter contract in pyproject.toml keeps the app to this list
(tests/engine/test_architecture.py runs it). Never imports Textual or `gausynth_tui`.
"""

from ._console import human_bytes, human_seconds
from ._events import (
    Artifact,
    Event,
    Log,
    Metric,
    Progress,
    RunFinished,
    RunStarted,
    StageCancelled,
    StageDone,
    StageFailed,
    StagePlanned,
    StageStarted,
    Telemetry,
)
from ._journal import JournalReader, RunView, StageView, follow_journal, pid_alive, read_journal
from ._layout import LayoutError, RunLayout, default_outputs_root, resolve_outputs_root
from ._lock import RunLockedError
from ._manifest import read_manifest
from ._media import list_images
from ._orchestrator import Orchestrator
from ._params import FieldInfo
from ._plan import Plan, PlanError, StagePlan, make_plan
from ._preset import (
    ALL_SECTIONS,
    Preset,
    PresetError,
    Problem,
    changed_fields,
    load_preset,
    parse_preset,
    schema,
)
from ._result import ResultCard, read_card
from ._runs import find_preset, find_run, presets_dir, resolve_paths, run_argv
from ._stage import Stage, StageContext, StageError
from .stages import BY_ID, STAGES


def main(argv: list[str] | None = None) -> int:
    """Runs the headless `gausynth` command line on `argv` and gives its exit code."""
    from .cli import main as cli_main

    return cli_main(argv)


__all__ = [
    "ALL_SECTIONS",
    "BY_ID",
    "STAGES",
    "Artifact",
    "Event",
    "FieldInfo",
    "JournalReader",
    "LayoutError",
    "Log",
    "Metric",
    "Orchestrator",
    "Plan",
    "PlanError",
    "Preset",
    "PresetError",
    "Problem",
    "Progress",
    "ResultCard",
    "RunFinished",
    "RunLayout",
    "RunLockedError",
    "RunStarted",
    "RunView",
    "Stage",
    "StageCancelled",
    "StageContext",
    "StageDone",
    "StageError",
    "StageFailed",
    "StagePlan",
    "StagePlanned",
    "StageStarted",
    "StageView",
    "Telemetry",
    "changed_fields",
    "default_outputs_root",
    "find_preset",
    "find_run",
    "follow_journal",
    "human_bytes",
    "human_seconds",
    "list_images",
    "load_preset",
    "main",
    "make_plan",
    "parse_preset",
    "pid_alive",
    "presets_dir",
    "read_card",
    "read_journal",
    "read_manifest",
    "resolve_outputs_root",
    "resolve_paths",
    "run_argv",
    "schema",
]
