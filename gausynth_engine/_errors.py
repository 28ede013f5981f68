"""Errors for people, at the bottom of the house: `StageError`, and OS errors as one line.

Every library and stage raises `StageError`; this module imports nothing of the engine, so a
library needs nothing from the stages to report a failure.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

_WHAT = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the filesystem is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "not permitted",
    errno.ENOTDIR: "a part of this path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOENT: "no such file or folder",
    errno.EEXIST: "already exists",
    errno.ENAMETOOLONG: "the name is too long",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EIO: "input/output error (a failing disk?)",
}

_HINT = {
    errno.ENOSPC: "; free some space and rerun",
    errno.EDQUOT: "; free some space and rerun",
    errno.EROFS: "; choose a writable outputs root (--outputs-root or GAUSYNTH_OUTPUTS_ROOT)",
    errno.EACCES: "; choose a folder you may write to",
}


class StageError(RuntimeError):
    """A failure explained for people: name the file or field, the value, what would work."""


def os_error_line(e: OSError, doing: str = "") -> str:
    """Gives 'PATH: what went wrong[; what to do]' for an OSError (one line, no traceback)."""
    path = e.filename if e.filename is not None else ""
    if e.filename2 is not None:
        path = f"{path} → {e.filename2}"
    what = _WHAT.get(e.errno or 0) or (e.strerror or str(e) or type(e).__name__)
    head = f"{path}: " if path else ""
    while_ = f" (while {doing})" if doing else ""
    return f"{head}{what}{while_}{_HINT.get(e.errno or 0, '')}".replace("\n", " ")


def disk_nearly_full(folder: Path, margin: int = 1 << 20) -> bool:
    """Gives whether the filesystem holding `folder` has less than `margin` bytes free."""
    for p in (Path(folder), *Path(folder).parents):
        try:
            return shutil.disk_usage(p).free < margin
        except OSError:
            continue
    return False
