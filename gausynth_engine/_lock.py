"""One active run per run folder: a lock file naming its holder, recovered when the holder died."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path


class RunLockedError(RuntimeError):
    """Another live process is running this run folder."""


def _start_time(pid: int) -> str | None:
    """Gives a process's start time (clock ticks since boot) to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def holder_alive(info: dict) -> bool:
    """Gives whether the process named in a lock file still runs (same host, same start)."""
    if info.get("host") != socket.gethostname():
        return True  # another machine's lock on a shared disk: not ours to judge
    pid = int(info.get("pid", 0))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = _start_time(pid)
    return started is None or info.get("start") in (None, started)


class RunLock:
    """An exclusive lock on a run folder, held by this process until `release()`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.held = False

    def read(self) -> dict | None:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "start": _start_time(os.getpid()),
                "since": time.time()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                other = self.read()
                if other is not None and holder_alive(other):
                    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(other.get("since", 0)))
                    raise RunLockedError(
                        f"{self.path.parent.parent} is being run by process {other.get('pid')} "
                        f"since {since}; watch it with `gausynth watch`, or stop it with "
                        "`gausynth cancel`") from None
                self.path.unlink(missing_ok=True)  # a dead holder's lock: recover it
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(info, f)
            self.held = True
            return
        raise RunLockedError(f"{self.path}: could not take the run lock")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
