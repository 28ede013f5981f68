"""The GPUs of this machine through NVML (nvidia-ml-py): any call may fail, none may crash.

Tests fake NVML here and only here: they put a `pynvml` module of their own on the path.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    index: int  # NVML's index (PCI bus order; CUDA's own order may differ, hence the UUID)
    name: str
    uuid: str  # what CUDA_VISIBLE_DEVICES is given
    total: int  # bytes
    used: int  # bytes, by every process on it
    utilization: float | None = None  # percent

    @property
    def free(self) -> int:
        return max(0, self.total - self.used)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def list_gpus() -> tuple[list[Gpu], str]:
    """Gives (the GPUs NVML sees, why there are none); an empty list where NVML cannot say."""
    try:
        import pynvml

        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
    except Exception as e:  # noqa: BLE001 - no driver, no library: no GPUs, and why
        return [], f"NVML: {type(e).__name__}: {e}"[:160]
    gpus: list[Gpu] = []
    for i in range(count):
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name, uuid = _text(pynvml.nvmlDeviceGetName(handle)), _text(pynvml.nvmlDeviceGetUUID(handle))
        except Exception:  # noqa: BLE001 - a GPU NVML cannot describe is not one we can place on
            continue
        try:
            util: float | None = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except Exception:  # noqa: BLE001
            util = None
        gpus.append(Gpu(i, name, uuid, int(mem.total), int(mem.used), util))
    return gpus, "" if gpus else "NVML sees no GPU"


def describe(gpu: Gpu) -> str:
    from .._console import human_bytes

    util = "N/A" if gpu.utilization is None else f"{gpu.utilization:.0f}%"
    return (f"{gpu.index}: {gpu.name}, {human_bytes(gpu.used)} / {human_bytes(gpu.total)} used, "
            f"utilisation {util}")
