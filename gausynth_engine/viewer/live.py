"""Live snapshots of a training, written only while a viewer asks for them.

The handshake lives in the run's `.gausynth/live/` folder:
- a viewer writes `watch-<pid>.json` ({"pid": …, "every": seconds}) while it runs and removes
  it when it stops (a watch file whose process is gone counts for nothing);
- the trainer's hook (`LiveHook.tick`, one call per step) looks for a live watch file at most
  once a second, and while there is one writes `<variant>.npz` every `every` seconds: the
  Gaussians are copied off the GPU in the loop (one synchronising copy of ~14 floats a
  Gaussian), the file is written by a background thread, then renamed into place, so a reader
  never sees half of one. Without a viewer a tick costs one clock read.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._journal import pid_alive

LIVE = "live"
CHECK_EVERY = 1.0  # seconds between looks for a watch file
DEFAULT_EVERY = 2.0  # seconds between snapshots while watched
KEYS = ("means", "scales", "quats", "opacities", "sh0")  # what a viewer draws (no higher SH)


def live_folder(meta: Path) -> Path:
    return Path(meta) / LIVE


def snapshot_path(meta: Path, variant: str) -> Path:
    """Gives `.gausynth/live/<variant>.npz`."""
    return live_folder(meta) / f"{variant}.npz"


def viewers(meta: Path) -> list[dict[str, Any]]:
    """Gives the watch records ({"pid", "every", "port"}) of the viewers still running."""
    try:
        entries = list(os.scandir(live_folder(meta)))
    except FileNotFoundError:
        return []
    out = []
    for entry in entries:
        if not (entry.name.startswith("watch-") and entry.name.endswith(".json")):
            continue
        try:
            data = json.loads(Path(entry.path).read_text(encoding="utf-8"))
            if pid_alive(int(data["pid"])):
                out.append(data)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def watching(meta: Path) -> float | None:
    """Gives the snapshot interval a live viewer asked for (the shortest), or None."""
    every = [float(v.get("every", DEFAULT_EVERY)) for v in viewers(meta)]
    return min(every) if every else None


class Watch:
    """A viewer's request for snapshots, held while the context is open."""

    def __init__(self, meta: Path, every: float = DEFAULT_EVERY, port: int | None = None) -> None:
        self.path = live_folder(meta) / f"watch-{os.getpid()}.json"
        self.every, self.port = every, port

    def __enter__(self) -> Watch:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "every": self.every, "port": self.port}), encoding="utf-8")
        os.replace(tmp, self.path)
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


def write_snapshot(path: Path, arrays: dict[str, np.ndarray], step: int) -> None:
    """Writes arrays (+ the step) to `path` atomically (a temp name, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, step=np.int64(step), **arrays)
    os.replace(tmp, path)


def read_snapshot(path: Path) -> dict[str, np.ndarray]:
    """Gives the raw Gaussians of a snapshot (sh0 [N, 1, 3]; no shN) and "step"."""
    with np.load(path) as data:
        out = {k: data[k] for k in data.files}
    out["sh0"] = out["sh0"].reshape(-1, 1, 3)
    return out


class LiveHook:
    """The trainer's side: `tick(trainer)` once per step (see the module doc)."""

    def __init__(self, meta: Path | None, variant: str) -> None:
        self.meta, self.variant = (Path(meta) if meta is not None else None), variant
        self._next_check = 0.0
        self._next_snapshot = 0.0
        self._every: float | None = None
        self._writer: threading.Thread | None = None
        self.snapshots = 0

    @classmethod
    def for_training(cls, work_dir: Path | None) -> LiveHook:
        """Gives the hook of a training whose work folder is `.gausynth/checkpoints/<variant>`
        (off for any other work folder, or none)."""
        if work_dir is None or Path(work_dir).parent.name != "checkpoints":
            return cls(None, "")
        work_dir = Path(work_dir)
        return cls(work_dir.parent.parent, work_dir.name)

    def tick(self, trainer: Any) -> None:
        """Writes a snapshot of `trainer.params` when a viewer watches and one is due."""
        if self.meta is None:
            return
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + CHECK_EVERY
            self._every = watching(self.meta)
        if self._every is None or now < self._next_snapshot:
            return
        if self._writer is not None and self._writer.is_alive():
            return  # the last file is still being written: skip rather than queue
        self._next_snapshot = now + self._every
        # A copy even on the CPU (where .cpu() would share memory that the optimizer updates
        # while the background thread writes); on CUDA one device→host copy, which syncs.
        arrays = {k: trainer.params[k].detach().to("cpu", copy=True).numpy() for k in KEYS}
        self._writer = threading.Thread(
            target=write_snapshot, args=(snapshot_path(self.meta, self.variant), arrays,
                                         int(trainer.step_done)), daemon=True)
        self._writer.start()
        self.snapshots += 1

    def close(self) -> None:
        """Waits for the last snapshot to be written."""
        if self._writer is not None:
            self._writer.join()
