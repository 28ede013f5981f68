"""Finding presets and run folders, and the `gausynth run` command line that starts a run.

The CLI, the queue and the app share these rules: a bundled preset by name or a file by path; a
run by folder path or by name under the outputs root; the argv of a detached `run`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ._layout import LayoutError, RunLayout, default_outputs_root, resolve_outputs_root
from ._preset import Preset, PresetError, Problem


def presets_dir() -> Path:
    """Gives the bundled presets folder (installed beside the package, or the repo's)."""
    installed = Path(__file__).parent / "presets"
    return installed if installed.is_dir() else Path(__file__).resolve().parent.parent / "presets"


def find_preset(name: str) -> Path:
    """Gives the preset file for a path or a bundled name such as 'quick'."""
    path = Path(name)
    if path.exists() or path.suffix == ".toml" or os.sep in name:
        return path
    bundled = presets_dir() / f"{name}.toml"
    if not bundled.exists():
        names = ", ".join(sorted(p.stem for p in presets_dir().glob("*.toml")))
        raise PresetError([Problem(name, None, "", f"no such preset file or bundled preset; bundled: "
                                   f"{names} (or give a path to a .toml file)")])
    return bundled


def resolve_paths(preset: Preset, outputs_root: str | None = None) -> Preset:
    """Gives the preset with run.input and run.outputs_root made absolute (for the snapshot).

    The outputs root is `resolve_outputs_root`'s: `--outputs-root`, else the preset's, else
    $GAUSYNTH_OUTPUTS_ROOT, else ~/.local/share/gausynth/runs (the app resolves it the same way).
    """
    run = preset.run
    absolute = dataclasses.replace(
        run, input=str(Path(run.input).absolute()) if run.input else "",
        outputs_root=str(resolve_outputs_root(outputs_root, run.outputs_root)))
    return dataclasses.replace(preset, run=absolute)


def find_run(ref: str, root: str | None = None) -> RunLayout:
    """Gives the layout of a run given as a folder path or as a name under the outputs root."""
    path = Path(ref)
    if (path / ".gausynth").is_dir():
        return RunLayout(path.absolute())
    base = Path(root).absolute() if root else default_outputs_root()
    candidate = base / ref
    if (candidate / ".gausynth").is_dir():
        return RunLayout(candidate.absolute())
    raise LayoutError(f"{ref}: no run folder here or under {base}/ (a run folder holds .gausynth/)")


def run_argv(preset: Path | str, sets: list[str] | tuple[str, ...] = (), *, start: str | None = None,
             until: str | None = None, only: str | None = None, force: bool = False,
             outputs_root: Path | str | None = None) -> list[str]:
    """Gives the `run` command line (after the program name) for a preset and its options."""
    argv = ["run", str(preset)]
    for s in sets:
        argv += ["--set", s]
    if outputs_root:
        argv += ["--outputs-root", str(Path(outputs_root).absolute())]
    for flag, value in (("--from", start), ("--until", until), ("--only", only)):
        if value:
            argv += [flag, value]
    if force:
        argv.append("--force")
    return argv
