"""Which stages run and why: fingerprints over params, implementation and inputs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._layout import RunLayout
from ._manifest import changed_output, read_choices, read_manifest, write_json_atomic
from ._media import list_images
from ._params import section_fields
from ._preset import Preset
from ._stage import Stage
from .stages import BY_ID, STAGES

ACTIONS = ("run", "skip", "off", "out")


@dataclass(frozen=True)
class StagePlan:
    """What the planner decided for one stage, and why (in the user's words)."""

    stage: Stage
    action: str  # "run", "skip" (unchanged), "off" (not in this preset), "out" (outside the range)
    reason: str
    fingerprint: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # upstream id -> fingerprint (+ choice)


@dataclass(frozen=True)
class Plan:
    steps: tuple[StagePlan, ...]

    def __getitem__(self, stage_id: str) -> StagePlan:
        return next(s for s in self.steps if s.stage.id == stage_id)

    @property
    def to_run(self) -> list[StagePlan]:
        return [s for s in self.steps if s.action == "run"]

    def describe(self) -> str:
        """Gives one line per stage: what happens to it and why."""
        width = max(len(s.stage.id) for s in self.steps)
        return "\n".join(f"  {s.stage.id:<{width}}  {s.action:<4}  {s.reason}" for s in self.steps)


class PlanError(ValueError):
    """A plan that cannot be made (an unknown stage, an upstream that never ran)."""


# --- fingerprints -----------------------------------------------------------------------------
def stage_params(stage: Stage, preset: Preset) -> dict[str, Any]:
    """Gives the resolved preset fields a stage reads, by path."""
    cls = type(preset.section(stage.section))
    paths = [f.path for f in section_fields(stage.section, cls)] + list(stage.reads)
    return {p: _jsonable(preset.get(p)) for p in paths}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def fingerprint(stage: Stage, params: dict[str, Any], inputs: dict[str, str]) -> str:
    blob = json.dumps({"id": stage.id, "version": stage.version, "params": params,
                       "inputs": inputs}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def input_fingerprint(path: Path, cache_file: Path | None = None, *, write: bool = True) -> str:
    """Gives the content hash of a video file or an image folder (cached by size and mtime).

    The cache is only read unless `write` (a dry run writes nothing)."""
    path = Path(path).absolute()
    cache: dict[str, Any] = {}
    if cache_file is not None:
        try:
            cache = json.loads(cache_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, NotADirectoryError, ValueError, UnicodeDecodeError):
            cache = {}
        if not isinstance(cache, dict):
            cache = {}
    before = dict(cache)
    if not path.exists():
        return "missing:" + str(path)
    if path.is_dir():
        # The same files the preprocess stage reads: a sub-folder named like an image is not one.
        parts = [f"{p.name}={_file_hash(p, cache)}" for p in sorted(list_images(path))]
        digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]
    else:
        digest = _file_hash(path, cache)
    if cache_file is not None and write and cache != before and cache_file.parent.is_dir():
        write_json_atomic(cache_file, cache)
    return digest


def _file_hash(path: Path, cache: dict[str, Any]) -> str:
    st = path.stat()
    key = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
    hit = cache.get(str(path)) or _HASHED.get(str(path))
    if isinstance(hit, list) and len(hit) == 2 and hit[0] == key:
        cache[str(path)] = hit
        return hit[1]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    cache[str(path)] = _HASHED[str(path)] = [key, h.hexdigest()[:20]]
    return cache[str(path)][1]


# Hashes made in this process (a dry run or a refused plan does not write the cache file).
_HASHED: dict[str, list[str]] = {}


# --- planning ---------------------------------------------------------------------------------
def make_plan(preset: Preset, layout: RunLayout, *, start: str | None = None,
              until: str | None = None, only: str | None = None, force: bool = False,
              write_cache: bool = True) -> Plan:
    """Gives the plan for a run folder: every stage with its action and the reason.

    It writes nothing but the input-hash cache, and that only with `write_cache` into an
    existing run folder (a dry run passes False)."""
    order = [s.id for s in STAGES]
    for name, value in (("--from", start), ("--until", until), ("--only", only)):
        if value is not None and value not in BY_ID:
            raise PlanError(f"{name} {value}: no such stage; accepted: {', '.join(order)}")
    lo = order.index(only or start) if (only or start) else 0
    hi = order.index(only or until) if (only or until) else len(order) - 1
    check_input_count(preset)
    check_same_input(preset, layout, force)
    choices = read_choices(layout)
    recorded_files = _all_recorded_files(layout)
    input_hash: str | None = None
    steps: dict[str, StagePlan] = {}
    for idx, stage in enumerate(STAGES):
        off = stage.off_reason(preset)
        if off:
            steps[stage.id] = StagePlan(stage, "off", off)
            continue
        params = stage_params(stage, preset)
        inputs: dict[str, str] = {}
        if not stage.after:
            if input_hash is None:
                input_hash = input_fingerprint(preset.input_path, layout.input_hashes,
                                               write=write_cache)
            inputs["run.input"] = input_hash
        for up in stage.upstreams(preset):
            upstream = steps[up]
            if upstream.action == "off":
                continue
            fp = upstream.fingerprint
            if upstream.action == "out":
                recorded = read_manifest(layout, up)
                if recorded is None:
                    fp = ""  # resolved below: this stage cannot run without it
                else:
                    fp = str(recorded["fingerprint"])
            inputs[up] = fp + (f"#choice={choices[up]}" if up in choices else "")
        fp = fingerprint(stage, params, inputs)
        manifest = read_manifest(layout, stage.id)
        if not lo <= idx <= hi:
            reason = "outside the requested range"
            steps[stage.id] = StagePlan(stage, "out", reason, fp, params, inputs)
            continue
        missing = [up for up, f in inputs.items() if f == "" or f.startswith("#")]
        if missing:
            raise PlanError(f"stage {stage.id} needs {', '.join(missing)}, which has not run in "
                            f"{layout.root}; widen --from/--only")
        others = {p: st for sid, files in recorded_files.items() if sid != stage.id
                  for p, st in files.items()}
        reason = _stale_reason(stage, manifest, fp, params, inputs, steps, layout, others)
        if reason is None:
            if force:
                steps[stage.id] = StagePlan(stage, "run", "forced", fp, params, inputs)
            else:
                steps[stage.id] = StagePlan(stage, "skip", "unchanged", fp, params, inputs)
        else:
            steps[stage.id] = StagePlan(stage, "run", reason, fp, params, inputs)
    return Plan(tuple(steps.values()))


def _stale_reason(stage: Stage, manifest: dict[str, Any] | None, fp: str, params: dict[str, Any],
                  inputs: dict[str, str], steps: dict[str, StagePlan],
                  layout: RunLayout, others: dict[str, list[int]]) -> str | None:
    """Gives why a stage must run, or None when its outputs are current."""
    reruns = [up for up in inputs if up in steps and steps[up].action == "run"]
    if manifest is None:
        return "not run yet"
    upstream = f"upstream {', '.join(reruns)} reruns" if reruns else ""
    if not reruns and manifest.get("fingerprint") == fp:
        return changed_output(layout, manifest, others)
    old_params = manifest.get("params") if isinstance(manifest.get("params"), dict) else {}
    why = [f"{p} {_show(old_params.get(p))} → {_show(v)}"
           for p, v in params.items() if old_params.get(p) != v]
    if manifest.get("version") != stage.version:
        why.append(f"implementation v{manifest.get('version')} → v{stage.version}")
    if upstream:  # its own changed fields first, then why its inputs will change
        return "; ".join([*why, upstream])
    old_inputs = manifest.get("inputs") if isinstance(manifest.get("inputs"), dict) else {}
    for up, f in inputs.items():
        if old_inputs.get(up) != f:
            if up == "run.input":
                why.append("the input's content changed")
            elif "#choice=" in f or "#choice=" in old_inputs.get(up, ""):
                why.append(f"{up} candidate {_choice(old_inputs.get(up))} → {_choice(f)}")
            else:
                why.append(f"upstream {up} changed")
    why += [f"no longer reads {up}" for up in old_inputs if up not in inputs]
    return "; ".join(why) or "fingerprint changed"


def check_input_count(preset: Preset) -> None:
    """Refuses an image folder holding no images, or fewer than preprocess samples (0 = all)."""
    from ._media import IMAGE_SUFFIXES

    path = preset.input_path
    if not path.is_dir() or BY_ID["preprocess"].off_reason(preset):
        return
    count, wanted = len(list_images(path)), preset.preprocess.num_frames
    if count == 0:
        raise PlanError(f"run.input = {path}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
    if count < wanted:
        raise PlanError(f"run.input = {path} holds {count} image(s), fewer than preprocess.num_frames = "
                        f"{wanted}; set preprocess.num_frames to at most {count}, or to 0 (every image)")


def run_input_of(layout: RunLayout) -> str | None:
    """Gives the run.input recorded in a run folder's preset snapshot (None: none recorded)."""
    import tomllib

    try:
        data = tomllib.loads(layout.preset_snapshot.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("run", {}).get("input")
    return str(value) if value else None


def check_same_input(preset: Preset, layout: RunLayout, force: bool) -> None:
    """Refuses to replace a run folder's results made from another input, unless forced.

    A run folder holds one input's run; silently reusing it for a new clip would throw away the
    old results stage by stage. `--force` says "replace them"; another folder keeps both.
    """
    previous = run_input_of(layout)
    ours = str(preset.input_path) if preset.run.input else ""
    if force or not previous or not ours or Path(previous).absolute() == Path(ours).absolute():
        return
    raise PlanError(f"run folder {layout.root} holds the run of {previous}, not of {ours}; keep both with "
                    f"--set run.directory=NEW_NAME, or replace it with --force")

def _all_recorded_files(layout: RunLayout) -> dict[str, dict[str, list[int]]]:
    out = {}
    for stage in STAGES:
        files = (read_manifest(layout, stage.id) or {}).get("files")
        if isinstance(files, dict):
            out[stage.id] = {str(k): list(v) for k, v in files.items() if isinstance(v, list)}
    return out


def _show(value: Any) -> str:
    return "∅" if value is None else repr(value) if isinstance(value, str) else str(value)


def _choice(fp: str | None) -> str:
    return fp.split("#choice=")[1] if fp and "#choice=" in fp else "1"
