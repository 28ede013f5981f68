"""A stand-in for nvidia-ml-py: the GPUs are read from the JSON file named by GAUSYNTH_FAKE_GPUS.

The queue's tests put this folder first on PYTHONPATH (for the runner's process) or into
sys.modules (in-process): NVML is faked here and nowhere else. Each GPU is
{"name": …, "total": bytes, "used": bytes}; the file may change while a test runs.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace


class NVMLError(Exception):
    pass


def _gpus() -> list[dict]:
    path = os.environ.get("GAUSYNTH_FAKE_GPUS")
    if not path:
        raise NVMLError("NVML Shared Library Not Found")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def nvmlInit() -> None:
    _gpus()


def nvmlDeviceGetCount() -> int:
    return len(_gpus())


def nvmlDeviceGetHandleByIndex(index: int) -> int:
    if not 0 <= index < len(_gpus()):
        raise NVMLError("Invalid Argument")
    return index


def nvmlDeviceGetName(handle: int) -> str:
    return _gpus()[handle]["name"]


def nvmlDeviceGetUUID(handle: int) -> str:
    return f"GPU-fake-{handle:04d}"


def nvmlDeviceGetMemoryInfo(handle: int) -> SimpleNamespace:
    g = _gpus()[handle]
    return SimpleNamespace(total=g["total"], used=g["used"], free=g["total"] - g["used"])


def nvmlDeviceGetUtilizationRates(handle: int) -> SimpleNamespace:
    return SimpleNamespace(gpu=g["util"]) if "util" in (g := _gpus()[handle]) else _unsupported()


def _unsupported():
    raise NVMLError("Not Supported")
