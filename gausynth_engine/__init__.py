"""GauSynth's headless core: presets → plan → worker subprocesses → journal → standard layout.

Never imports Textual or `gausynth_tui` (a test checks it).
"""

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
from ._journal import JournalReader, RunView, StageView, follow_journal, read_journal
from ._layout import LayoutError, RunLayout
from ._lock import RunLockedError
from ._orchestrator import Orchestrator
from ._plan import Plan, PlanError, StagePlan, make_plan, read_manifest
from ._preset import Preset, PresetError, Problem, load_preset, parse_preset, schema
from ._stage import Stage, StageContext, StageError
from .stages import STAGES

__all__ = [
    "STAGES",
    "Artifact",
    "Event",
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
    "follow_journal",
    "load_preset",
    "make_plan",
    "parse_preset",
    "read_journal",
    "read_manifest",
    "schema",
]
