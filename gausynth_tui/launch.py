"""The narrow control path from the app to the engine: detached runs, cancel, choose.

Every command is the engine's own CLI in a subprocess, so a run never depends on the app: it
lives in its own session and writes its journal, which the app only reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gausynth_engine import run_argv

ENGINE = [sys.executable, "-m", "gausynth_engine"]


@dataclass(frozen=True)
class RunRequest:
    """What to run: a preset file, field overrides, and the range of stages."""

    preset: Path
    overrides: tuple[str, ...] = ()  # "section.field=toml-value"
    start: str | None = None  # --from
    until: str | None = None  # --until
    only: str | None = None  # --only
    force: bool = False

    def argv(self) -> list[str]:
        """Gives the engine command line that starts this run detached."""
        return [*ENGINE, *run_argv(self.preset, self.overrides, start=self.start, until=self.until,
                                   only=self.only, force=self.force), "--detach"]

    def describe(self) -> str:
        """Gives the request as the user would type it (`gausynth run …`)."""
        return "gausynth " + " ".join(_quote(a) for a in self.argv()[len(ENGINE):])


@dataclass(frozen=True)
class CommandResult:
    ok: bool
    message: str  # the command's last words, for a notification


def start_run(request: RunRequest, cwd: Path | None = None, timeout: float = 60.0) -> CommandResult:
    """Starts a detached run; gives once its journal shows it (blocking: call from a worker)."""
    return _call(request.argv(), cwd, timeout)


def cancel_run(run_folder: Path, timeout: float = 30.0) -> CommandResult:
    """Asks the engine to stop a run (blocking: call from a worker)."""
    return _call([*ENGINE, "cancel", str(run_folder)], None, timeout)


def choose_candidate(run_folder: Path, k: int, timeout: float = 30.0) -> CommandResult:
    """Picks reimagination candidate `k` for the run (`gausynth choose RUN reimagine K`)."""
    return _call([*ENGINE, "choose", str(run_folder), "reimagine", str(k)], None, timeout)


def _call(argv: list[str], cwd: Path | None, timeout: float) -> CommandResult:
    try:
        proc = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return CommandResult(False, f"`{' '.join(argv[2:])}` gave no answer in {timeout:g} s")
    except OSError as e:
        return CommandResult(False, f"could not start the engine: {e}")
    text = (proc.stdout.strip() if proc.returncode == 0 else proc.stderr.strip() or proc.stdout.strip())
    # argparse's usage lines say nothing useful in a notification; its last line does.
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if proc.returncode != 0 and lines and lines[0].startswith("usage:"):
        lines = lines[-1:]
    return CommandResult(proc.returncode == 0, "\n".join(lines[-6:]) or f"exit code {proc.returncode}")


def toml_value(value: Any) -> str:
    """Gives a TOML literal for a preset value (what `--set section.field=VALUE` parses)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _quote(arg: str) -> str:
    return arg if arg and all(c.isalnum() or c in "-_./=:,+" for c in arg) else "'" + arg.replace("'", "'\\''") + "'"
