"""What a finished stage leaves behind: its manifest, the run's candidate choices, file stamps.

One module for this I/O, shared by the planner (is a stage current?), the orchestrator (writes
the manifest after a stage), stages (read their upstream's record through `ctx.upstream`) and
`gausynth choose`. It sits at the bottom of the house: it imports nothing of the engine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._layout import RunLayout


def read_manifest(layout: RunLayout, stage_id: str) -> dict[str, Any] | None:
    """Gives the manifest a finished stage left, or None when it has not finished."""
    try:
        data = json.loads(layout.manifest(stage_id).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("fingerprint"), str) else None


def output_files(layout: RunLayout, outputs: list[str]) -> dict[str, list[int]]:
    """Gives {path: [size, mtime_ns]} of every file under a stage's placed outputs.

    The stamp is cheap (no hashing): a replaced, truncated or rewritten file changes its size or
    its modification time; a rename keeps both, so files renamed into place keep their stamp.
    """
    files: dict[str, list[int]] = {}
    for out in outputs:
        top = layout.root / out
        paths = [top] if not top.is_dir() else sorted(p for p in top.rglob("*") if not p.is_dir())
        for p in paths:
            try:
                st = p.lstat()
            except FileNotFoundError:
                continue
            files[str(p.relative_to(layout.root))] = [st.st_size, st.st_mtime_ns]
    return files


def refresh_files(layout: RunLayout, stage_id: str) -> None:
    """Re-stamps a finished stage's output files after a sanctioned change (`gausynth choose`)."""
    manifest = read_manifest(layout, stage_id)
    if manifest is not None and "files" in manifest:
        manifest["files"] = output_files(layout, [str(o) for o in manifest.get("outputs", [])])
        write_json_atomic(layout.manifest(stage_id), manifest)


def changed_output(layout: RunLayout, manifest: dict[str, Any],
                   others: dict[str, list[int]] | None = None) -> str | None:
    """Gives why a finished stage's outputs no longer match its manifest, or None when they do.

    `others` maps the files other stages' manifests record to their stamps: a file two stages
    write (metrics.json, gs/compare.md) that the later one rewrote is not a change by hand.
    """
    others = others or {}
    outputs = [str(o) for o in manifest.get("outputs", [])]
    gone = [o for o in outputs if not (layout.root / o).exists()]
    if gone:
        return f"output {gone[0]} is missing"
    recorded = manifest.get("files")
    if not isinstance(recorded, dict):
        return None  # a manifest from before file lists: existence is all it can tell
    now = output_files(layout, outputs)
    for path, stamp in recorded.items():
        if path not in now:
            return f"output file {path} is missing"
        if others.get(path) == now[path]:
            continue
        if list(stamp)[:1] != now[path][:1]:
            return f"output file {path} changed size ({stamp[0]} → {now[path][0]} bytes)"
        if list(stamp) != now[path]:
            return f"output file {path} was modified"
    extra = sorted(p for p in set(now) - set(recorded) if others.get(p) != now[p])
    if extra:
        return f"output file {extra[0]} was added by hand"
    return None


def write_json_atomic(path: Path, data: Any) -> None:
    """Writes JSON to a temporary name and renames it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)


def read_choices(layout: RunLayout) -> dict[str, int]:
    try:
        data = json.loads(layout.choices.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, ValueError, UnicodeDecodeError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, int)} if isinstance(data, dict) else {}
