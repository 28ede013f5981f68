"""The standard output layout of a run: the one place that names its folders."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# Folders that several stages write into: their entries are replaced one by one, never the folder.
SHARED_FOLDERS = ("new_videos", "gs", "exports")

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


class LayoutError(ValueError):
    """A run name or path that the layout refuses."""


RUN_NAME_RULE = ("accepted: a plain folder name of letters, digits and '._+-', starting with a "
                 "letter or digit (it must stay inside run.outputs_root)")


def check_run_name(name: str) -> str:
    """Gives back `name` if it is a plain folder name that cannot leave the outputs root."""
    if not RUN_NAME.match(name):
        raise LayoutError(f"run.directory = {name!r} — {RUN_NAME_RULE}")
    return name


OUTPUTS_ROOT_ENV = "GAUSYNTH_OUTPUTS_ROOT"


def default_outputs_root() -> Path:
    """Gives where runs live when nothing names a folder: $GAUSYNTH_OUTPUTS_ROOT, else the user's
    data folder `$XDG_DATA_HOME/gausynth/runs` (`~/.local/share/gausynth/runs`). Absolute."""
    env = os.environ.get(OUTPUTS_ROOT_ENV, "").strip()
    if env:
        return Path(env).expanduser().absolute()
    data = os.environ.get("XDG_DATA_HOME", "").strip() or str(Path("~/.local/share").expanduser())
    return (Path(data) / "gausynth" / "runs").absolute()


def resolve_outputs_root(flag: str | None = None, preset_value: str = "") -> Path:
    """Gives the absolute outputs root, the same way for the CLI and the app.

    In order: `--outputs-root`; the preset's `run.outputs_root` (a relative one is taken from
    the current folder, like `run.input`); then `default_outputs_root()`.
    """
    chosen = flag or preset_value
    if chosen:
        return Path(chosen).expanduser().absolute()
    return default_outputs_root()


@dataclass(frozen=True)
class RunLayout:
    """Every path of one run folder `<outputs_root>/<directory>/`.

    The same type names the staging copy a stage writes into (`RunLayout(staging_root)`), so a
    stage writes `out.orig_sheets / "x.png"` exactly as it reads `layout.orig_sheets`.
    """

    root: Path

    @classmethod
    def for_run(cls, outputs_root: Path, directory: str) -> RunLayout:
        """Gives the layout of run `directory` under `outputs_root`, refusing names that escape it."""
        check_run_name(directory)
        outputs_root = Path(outputs_root).absolute()
        root = outputs_root / directory
        resolved_parent = outputs_root.resolve()
        if root.exists() and root.resolve().parent != resolved_parent:
            raise LayoutError(f"run folder {root} resolves outside {outputs_root} (a link?)")
        return cls(root)

    # --- the reference folders -------------------------------------------------------------
    @property
    def filtered_frames_colmap(self) -> Path:
        return self.root / "filtered_frames_colmap"

    @property
    def filtered_frames_sd(self) -> Path:
        return self.root / "filtered_frames_sd"

    @property
    def orig_sheets(self) -> Path:
        return self.root / "orig_sheets"

    @property
    def reimagine_sheets(self) -> Path:
        return self.root / "reimagine_sheets"

    @property
    def key_frames(self) -> Path:
        """The reimagined key-frame tiles, cut from the chosen sheet (named by frame index)."""
        return self.root / "reimagine_sheets" / "key_frames"

    @property
    def ebsynth_all(self) -> Path:
        return self.root / "ebsynth_all"

    @property
    def ebsynth_transparent(self) -> Path:
        return self.root / "ebsynth_transparent"

    @property
    def orig_transparent(self) -> Path:
        return self.root / "orig_transparent"

    @property
    def blend_transparent(self) -> Path:
        return self.root / "blend_transparent"

    @property
    def reim3d_frames(self) -> Path:
        """The 3D routes' reimagined frames (RGBA), lined up with the undistorted cameras."""
        return self.root / "reim3d_frames"

    @property
    def sr_frames(self) -> Path:
        return self.root / "sr_frames"

    @property
    def sync(self) -> Path:
        """The synchronised route's own outputs: its reimagined PLY, the diffused views."""
        return self.root / "sync"

    @property
    def colmap(self) -> Path:
        return self.root / "colmap"

    @property
    def colmap_distorted(self) -> Path:
        return self.colmap / "distorted"

    @property
    def colmap_database(self) -> Path:
        return self.colmap / "distorted" / "database.db"

    @property
    def colmap_input(self) -> Path:
        return self.colmap / "input"

    @property
    def colmap_images(self) -> Path:
        return self.colmap / "images"

    @property
    def colmap_sparse(self) -> Path:
        """The undistorted model: `colmap/sparse/0`."""
        return self.colmap / "sparse" / "0"

    @property
    def colmap_stereo(self) -> Path:
        return self.colmap / "stereo"

    @property
    def gs(self) -> Path:
        return self.root / "gs"

    def gs_run(self, variant: str, iterations: int, stamp: str) -> Path:
        """Gives `gs/{reim|orig}_{iterations}-{stamp}/` for one 3DGS training."""
        if variant not in ("reim", "orig"):
            raise LayoutError(f"3DGS variant {variant!r}; accepted: 'reim' or 'orig'")
        return self.gs / f"{variant}_{iterations}-{stamp}"

    @property
    def exports(self) -> Path:
        """Trained splats written for other viewers (`gausynth export`, the [export] section)."""
        return self.root / "exports"

    @property
    def new_videos(self) -> Path:
        return self.root / "new_videos"

    def video(self, name: str) -> Path:
        """Gives `new_videos/<name>.mp4`."""
        return self.new_videos / f"{name}.mp4"

    # --- the engine's own bookkeeping ------------------------------------------------------
    @property
    def meta(self) -> Path:
        return self.root / ".gausynth"

    @property
    def preset_snapshot(self) -> Path:
        return self.meta / "preset.toml"

    @property
    def journal(self) -> Path:
        return self.meta / "events.jsonl"

    @property
    def lock(self) -> Path:
        return self.meta / "lock"

    @property
    def logs(self) -> Path:
        return self.meta / "logs"

    def log_file(self, stage: str) -> Path:
        return self.logs / f"{stage}.log"

    @property
    def manifests(self) -> Path:
        return self.meta / "manifests"

    def manifest(self, stage: str) -> Path:
        return self.manifests / f"{stage}.json"

    @property
    def artifacts(self) -> Path:
        """Small previews (edge maps, diffusion estimates) that viewers may show."""
        return self.meta / "artifacts"

    @property
    def staging(self) -> Path:
        return self.meta / "staging"

    def staging_for(self, stage: str) -> RunLayout:
        """Gives the layout of the temporary folder a stage writes before it is renamed in."""
        return RunLayout(self.staging / stage)

    @property
    def input_hashes(self) -> Path:
        return self.meta / "input-hashes.json"

    @property
    def choices(self) -> Path:
        """Choices made after a stage ran (e.g. which reimagination candidate feeds on)."""
        return self.meta / "choices.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"
