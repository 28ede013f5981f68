"""Live snapshots of a training, written only while someone looks, at a rate the viewer takes.

The handshake lives in the run's `.gausynth/live/` folder:
- a viewer writes `watch-<pid>.json` while it runs and removes it when it stops (a watch file
  whose process is gone counts for nothing): {"pid", "every": seconds between snapshots it
  wants, "port", "clients": browsers connected (None: not counted, i.e. always wants),
  "shown": {variant: serial of the last snapshot it has passed on} (absent: takes any rate)};
- the trainer's hook (`LiveHook.tick`, one call per step) reads the watch files at most once a
  second. A snapshot is due when a viewer with clients wants one, `every` has passed, and that
  viewer has shown the previous snapshot (or STALE seconds passed): a viewer that cannot keep
  up slows the snapshots down instead of queueing them.

What the training thread pays for a snapshot, and why it is so little: on CUDA it queues one
device-side concatenation of the drawn attributes (a consistent copy at this step; ~17 MB for
300k Gaussians, microseconds on the GPU) and records an event — no synchronisation, no host
copy. A writer thread makes the training stream's work visible to a side stream (an event
wait on the GPU), copies the concatenation into pinned host memory on that side stream, waits
for it there (the wait releases the GIL) and writes the bytes with one `write` call (which
releases the GIL too). Nothing is serialised by the training thread. Without a viewer a tick
costs one clock read.

A snapshot file (`<variant>.gsnap`) is a JSON header line padded to 64 bytes, then float32
rows [N, 14] (means 3, scales 3, quats 4, opacities 1, sh0 3), written to a temp name and
renamed, so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._journal import pid_alive

LIVE = "live"
CHECK_EVERY = 1.0  # seconds between looks for a watch file
DEFAULT_EVERY = 2.0  # seconds between snapshots while watched
STALE = 15.0  # a viewer that has not shown the last snapshot after this long gets a new one
KEYS = ("means", "scales", "quats", "opacities", "sh0")  # what a viewer draws (no higher SH)
WIDTHS = (3, 3, 4, 1, 3)  # columns of each key in a snapshot row
COLUMNS = sum(WIDTHS)
MAGIC = "gausynth-snapshot 1"
HEADER = 256  # bytes: the JSON header line, padded


def live_folder(meta: Path) -> Path:
    return Path(meta) / LIVE


def snapshot_path(meta: Path, variant: str) -> Path:
    """Gives `.gausynth/live/<variant>.gsnap`."""
    return live_folder(meta) / f"{variant}.gsnap"


def viewers(meta: Path) -> list[dict[str, Any]]:
    """Gives the watch records (see the module doc) of the viewers still running."""
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


def wanting(meta: Path) -> list[dict[str, Any]]:
    """Gives the watch records of the viewers that want snapshots now (someone looks at them)."""
    return [v for v in viewers(meta) if v.get("clients") is None or int(v["clients"]) > 0]


def watching(meta: Path) -> float | None:
    """Gives the snapshot interval a wanting viewer asked for (the shortest), or None."""
    every = [float(v.get("every", DEFAULT_EVERY)) for v in wanting(meta)]
    return min(every) if every else None


class Watch:
    """A viewer's request for snapshots, held while the context is open; `update` tells the
    trainer how many browsers look, what was shown, and the rate the viewer can take."""

    def __init__(self, meta: Path, every: float = DEFAULT_EVERY, port: int | None = None,
                 clients: int | None = None) -> None:
        self.path = live_folder(meta) / f"watch-{os.getpid()}.json"
        self.record: dict[str, Any] = {"pid": os.getpid(), "every": every, "port": port}
        if clients is not None:
            self.record |= {"clients": clients, "shown": {}}
        self._lock = threading.Lock()  # viser calls back from its own thread

    def __enter__(self) -> Watch:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.record = {}
        self.path.unlink(missing_ok=True)

    def update(self, **fields: Any) -> None:
        """Rewrites the record with `fields` changed (clients=, every=, shown={variant: serial})."""
        with self._lock:
            if not self.record:  # closed
                return
            if "shown" in fields:
                fields["shown"] = {**self.record.get("shown", {}), **fields["shown"]}
            self.record |= fields
        self._write()

    def _write(self) -> None:
        with self._lock:
            if not self.record:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(self.record), encoding="utf-8")
            os.replace(tmp, self.path)


def write_snapshot(path: Path, rows: np.ndarray, step: int, serial: int = 0) -> None:
    """Writes float32 rows [N, 14] (+ the step and serial) to `path` atomically."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != COLUMNS:
        raise ValueError(f"snapshot rows of shape {rows.shape}; accepted: [N, {COLUMNS}]")
    head = json.dumps({"format": MAGIC, "step": int(step), "serial": int(serial),
                       "count": len(rows), "keys": dict(zip(KEYS, WIDTHS, strict=True))})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(head.encode().ljust(HEADER - 1) + b"\n")
        f.write(memoryview(rows).cast("B"))  # one write, the GIL released in it
    os.replace(tmp, path)


def read_snapshot(path: Path) -> dict[str, np.ndarray]:
    """Gives the raw Gaussians of a snapshot (sh0 [N, 1, 3]; no shN), "step" and "serial"."""
    with open(path, "rb") as f:
        head = json.loads(f.read(HEADER))
        if head.get("format") != MAGIC:
            raise ValueError(f"{path}: not a GauSynth live snapshot (format {head.get('format')!r})")
        rows = np.fromfile(f, np.float32, count=int(head["count"]) * COLUMNS)
    if rows.size != int(head["count"]) * COLUMNS:
        raise ValueError(f"{path}: {rows.size} floats; {int(head['count']) * COLUMNS} expected")
    rows = rows.reshape(-1, COLUMNS)
    out: dict[str, np.ndarray] = {}
    at = 0
    for key, width in zip(KEYS, WIDTHS, strict=True):
        out[key] = rows[:, at:at + width]
        at += width
    out["opacities"] = out["opacities"].reshape(-1)
    out["sh0"] = out["sh0"].reshape(-1, 1, 3)
    out["step"], out["serial"] = np.int64(head["step"]), np.int64(head["serial"])
    return out


def flatten(params: dict[str, Any]) -> Any:
    """Gives one tensor [N, 14] of the drawn attributes (a new tensor, on their device)."""
    import torch

    n = len(params["means"])
    with torch.no_grad():
        return torch.cat([params[k].detach().reshape(n, -1) for k in KEYS], 1).float()


class LiveHook:
    """The trainer's side: `tick(trainer)` once per step (see the module doc)."""

    def __init__(self, meta: Path | None, variant: str) -> None:
        self.meta, self.variant = (Path(meta) if meta is not None else None), variant
        self._next_check = 0.0
        self._next_snapshot = 0.0
        self._last_written = 0.0  # monotonic time of the last snapshot taken
        self._every: float | None = None
        self._jobs: queue.Queue = queue.Queue(maxsize=1)
        self._idle = threading.Event()
        self._idle.set()
        self._writer: threading.Thread | None = None
        self._pinned: Any = None  # reusable pinned host buffer (CUDA), grown with headroom
        self.serial = 0  # snapshots taken
        self.seconds = 0.0  # time the training thread spent taking them
        self.errors: list[str] = []

    @property
    def snapshots(self) -> int:
        return self.serial

    @classmethod
    def for_training(cls, work_dir: Path | None) -> LiveHook:
        """Gives the hook of a training whose work folder is `.gausynth/checkpoints/<variant>`
        (off for any other work folder, or none)."""
        if work_dir is None or Path(work_dir).parent.name != "checkpoints":
            return cls(None, "")
        work_dir = Path(work_dir)
        return cls(work_dir.parent.parent, work_dir.name)

    def _due(self, now: float) -> bool:
        if now >= self._next_check:
            self._next_check = now + CHECK_EVERY
            want = wanting(self.meta)
            ready = [v for v in want if "shown" not in v or self.serial == 0
                     or int(v["shown"].get(self.variant, -1)) >= self.serial]
            # A viewer still showing the last snapshot holds the next back (up to STALE).
            if not ready and want and now - self._last_written >= STALE:
                ready = want
            self._every = min((float(v.get("every", DEFAULT_EVERY)) for v in ready), default=None)
        return self._every is not None and now >= self._next_snapshot and self._idle.is_set()

    def tick(self, trainer: Any) -> None:
        """Takes a snapshot of `trainer.params` when a viewer wants one and one is due."""
        if self.meta is None:
            return
        now = time.monotonic()
        if not self._due(now):
            return
        t0 = time.perf_counter()
        self._begin(now)
        flat = flatten(trainer.params)  # a copy: the optimizer updates the parameters in place
        ready = None
        if flat.is_cuda:
            import torch

            ready = torch.cuda.Event()
            ready.record()  # on the training stream, after the copy above
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name="live-snapshots", daemon=True)
            self._writer.start()
        self._jobs.put((flat, ready, int(trainer.step_done), self.serial))
        self.seconds += time.perf_counter() - t0

    def _begin(self, now: float) -> int:
        """Books a snapshot taken now; gives its serial."""
        self._idle.clear()
        self._next_snapshot = now + self._every
        self._last_written = now
        self._every = None  # the watch files are read again when the next one can be due
        self._next_check = self._next_snapshot
        self.serial += 1
        return self.serial

    def _write_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                self._write(*job)
            except Exception as e:  # noqa: BLE001 - a viewer's snapshot must never stop a training
                self.errors.append(f"{type(e).__name__}: {e}")
            finally:
                del job
                self._idle.set()

    def _write(self, flat: Any, ready: Any, step: int, serial: int) -> None:
        if ready is not None:
            import torch

            with torch.cuda.device(flat.device):
                side = torch.cuda.Stream(device=flat.device)
                side.wait_event(ready)  # on the GPU: no host wait, the training stream goes on
                n = flat.numel()
                if self._pinned is None or self._pinned.numel() < n:
                    self._pinned = torch.empty(int(n * 1.25) + 1024, dtype=torch.float32, pin_memory=True)
                host = self._pinned[:n].view(flat.shape)
                with torch.cuda.stream(side):
                    host.copy_(flat, non_blocking=True)
                    done = torch.cuda.Event()
                    done.record(side)
                done.synchronize()  # releases the GIL while it waits
            rows = host.numpy()
        else:
            rows = flat.numpy()
        del flat  # its device memory goes back to the pool only once the side stream is done
        write_snapshot(snapshot_path(self.meta, self.variant), rows, step, serial)

    def close(self) -> None:
        """Waits for the last snapshot to be written; stops the writer thread."""
        if self._writer is not None:
            self._jobs.put(None)
            self._writer.join()
            self._writer = None
