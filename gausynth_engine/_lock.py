"""One active run per run folder: an `flock` on `.gausynth/lock`, held by the orchestrator and
inherited by its workers, so that a worker orphaned by a killed orchestrator still holds it.

The kernel drops an `flock` when the last process holding the open file dies, so a dead run
never leaves a stale lock to recover and two starters can never both take it. The file's text
only names the holder (pid, start time, host) for messages and for `cancel`; it decides nothing.

Processes are named by identity (`ProcessId`: pid + start time + host), never by bare pid: a
pid that was reused after a reboot, or one from another machine on a shared disk, is not ours.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path


class RunLockedError(RuntimeError):
    """Another live process is running this run folder."""


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> str | None:
    """Gives a process's start time (clock ticks since boot) to tell a reused pid apart."""
    stat = _stat(pid)
    return stat[19] if stat and len(stat) > 19 else None


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


HOST = socket.gethostname()


@dataclass(frozen=True)
class ProcessId:
    """A process as the journal and the lock record it: pid + start time + host (+ boot)."""

    pid: int
    start: str | None
    host: str
    boot: str = ""

    @classmethod
    def of(cls, pid: int) -> ProcessId:
        return cls(pid, _start_time(pid), HOST, _boot_id())

    @classmethod
    def from_dict(cls, data: dict) -> ProcessId | None:
        try:
            pid = int(data.get("pid") or 0)
        except (TypeError, ValueError):
            return None
        if pid <= 0:
            return None
        start = data.get("start")
        return cls(pid, str(start) if start is not None else None, str(data.get("host") or ""),
                   str(data.get("boot") or ""))

    def as_dict(self) -> dict:
        return {"pid": self.pid, "start": self.start, "host": self.host, "boot": self.boot}

    @property
    def local(self) -> bool:
        return self.host == HOST

    def alive(self) -> bool | None:
        """Gives True/False for a process of this machine, None for another host's (unknowable)."""
        if not self.local:
            return None
        if self.boot and self.boot != _boot_id():
            return False  # recorded before a reboot: whatever has this pid now is a stranger
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        stat = _stat(self.pid)
        if stat and stat[0] in ("Z", "X"):
            return False  # a zombie that nobody reaped has ended: it holds nothing any more
        now = stat[19] if stat and len(stat) > 19 else None
        if self.start is None or now is None:
            return now is not None or self.start is None
        return now == self.start

    def signal_group(self, sig: int) -> str | None:
        """Sends `sig` to this process's group if it is provably this process and leads its group.

        Gives None when sent, else why not (one line)."""
        if not self.local:
            return f"process {self.pid} runs on host {self.host}, not {HOST}: stop it there"
        if self.alive() is not True or self.start is None:
            return f"process {self.pid} is gone (or its pid now names another process)"
        try:
            if os.getpgid(self.pid) != self.pid:
                return f"process {self.pid} does not lead its own process group: not signalled"
            os.killpg(self.pid, sig)
            if sig in (signal.SIGTERM, signal.SIGINT):
                os.killpg(self.pid, signal.SIGCONT)  # a stopped group must wake to see it
        except ProcessLookupError:
            return f"process {self.pid} is gone"
        except PermissionError:
            return f"process {self.pid} belongs to another user: not signalled"
        return None

    def signal(self, sig: int) -> str | None:
        """Sends `sig` to this one process if it is provably this process; gives why not, or None."""
        if not self.local:
            return f"process {self.pid} runs on host {self.host}, not {HOST}: stop it there"
        if self.alive() is not True or self.start is None:
            return f"process {self.pid} is gone (or its pid now names another process)"
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            return f"process {self.pid} is gone"
        except PermissionError:
            return f"process {self.pid} belongs to another user: not signalled"
        return None


def holder_alive(info: dict) -> bool:
    """Gives whether the process a lock record names may still run (another host's: assumed so)."""
    who = ProcessId.from_dict(info)
    if who is None:
        return False
    alive = who.alive()
    return True if alive is None else alive


@dataclass(frozen=True)
class LockState:
    """What a look at a run's lock found (without taking it)."""

    held: bool  # some live process holds the flock (the orchestrator or an orphan worker)
    holder: ProcessId | None  # who the file names (may be dead while its workers hold on)
    since: float | None = None


def probe(path: Path) -> LockState:
    """Gives whether a run's lock is held, by trying a shared flock for an instant."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return LockState(False, None)
    try:
        info = _read_fd(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            held = True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            held = False
    finally:
        os.close(fd)
    return LockState(held, ProcessId.from_dict(info) if info else None,
                     info.get("since") if isinstance(info.get("since"), (int, float)) else None)


def _read_fd(fd: int) -> dict:
    try:
        data = json.loads(os.pread(fd, 1 << 16, 0).decode("utf-8") or "{}")
    except (ValueError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


class RunLock:
    """An exclusive flock on a run folder, held by this process (and its workers) until `release()`.

    `fd` is the open lock file; pass it to workers (`pass_fds`) so that they hold the lock too.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def read(self) -> dict | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                info = _read_fd(fd)
                os.close(fd)
                who = ProcessId.from_dict(info)
                if (who is None or who.alive() is False) and attempt < 19:
                    time.sleep(0.01)  # a viewer's probe, or a starter between open and write
                    continue
                raise RunLockedError(self.busy_message(info)) from None
            # The file may have been released and unlinked between our open and our flock: then
            # we hold a lock on a name nobody else will open. Take it again on the current file.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            me = ProcessId.of(os.getpid())
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps({**me.as_dict(), "since": time.time()}).encode(), 0)
            except OSError as e:  # a full disk: say which file, hold nothing
                self.path.unlink(missing_ok=True)
                os.close(fd)
                raise OSError(e.errno, e.strerror, str(self.path)) from None
            self.fd = fd
            return
        raise RunLockedError(f"{self.path}: could not take the run lock")

    def busy_message(self, info: dict) -> str:
        run = self.path.parent.parent
        who = ProcessId.from_dict(info)
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.get("since", 0) or 0))
        if who is not None and who.alive() is False:
            return (f"{run} is still held by worker(s) of run process {who.pid}, which died; "
                    "stop them with `gausynth cancel`, or wait for them to end")
        if who is None:
            return f"{run} is locked by another process; see `gausynth status`"
        where = "" if who.local else f" on host {who.host}"
        return (f"{run} is being run by process {who.pid}{where} since {since}; watch it with "
                "`gausynth watch`, or stop it with `gausynth cancel`")

    def release(self) -> None:
        if self.fd is None:
            return
        # Unlink while still holding it: a starter blocked on the old file then sees it is gone.
        try:
            if os.fstat(self.fd).st_ino == os.stat(self.path).st_ino:
                self.path.unlink()
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


__all__ = ["LockState", "ProcessId", "RunLock", "RunLockedError", "holder_alive", "probe"]
