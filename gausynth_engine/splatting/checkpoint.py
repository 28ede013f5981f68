"""Resumable training state on disk: Gaussians, optimizers, strategy state, step and RNGs.

Written to a temporary name and renamed over the previous one, so a worker killed at any moment
leaves either the old checkpoint or the new one, never half of one. A checkpoint carries the
`key` of the training it belongs to (settings + inputs); another training ignores it.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT = "last.pt"


def rng_state() -> dict[str, Any]:
    """Gives the state of every random generator the trainer may touch."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(folder: Path, data: dict[str, Any]) -> Path:
    """Writes `data` as the folder's checkpoint atomically; gives its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CHECKPOINT
    tmp = folder / f".{CHECKPOINT}.{os.getpid()}.tmp"
    torch.save(data, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load(folder: Path, key: str) -> dict[str, Any] | None:
    """Gives the folder's checkpoint (tensors on the CPU) if it belongs to training `key`."""
    path = Path(folder) / CHECKPOINT
    if not path.exists():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
        found = data.get("key")
    except Exception as e:  # noqa: BLE001 - a damaged checkpoint only costs the resume: say so
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        print(f"checkpoint {path} unreadable: {first}; starting from step 0", file=sys.stderr, flush=True)
        return None
    return data if found == key else None


def clear(folder: Path) -> None:
    """Removes the folder's checkpoint (after the training it belongs to finished)."""
    for p in Path(folder).glob(f"*{CHECKPOINT}*"):
        p.unlink(missing_ok=True)
