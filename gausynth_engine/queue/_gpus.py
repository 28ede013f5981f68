"""The GPUs of this machine through NVML (nvidia-ml-py): any call may fail, none may crash.

Tests fake NVML here and only here: they put a `pynvml` module of their own on the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._plan import StagePlan
    from .._preset import Preset


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
    except ImportError:
        return _from_nvidia_smi()
    try:
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


def _from_nvidia_smi() -> tuple[list[Gpu], str]:
    """The same facts from `nvidia-smi` (NVML's own tool) where nvidia-ml-py is not installed."""
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi is None:
        return [], "nvidia-ml-py is not installed (pip install nvidia-ml-py) and there is no nvidia-smi"
    try:
        out = subprocess.run([smi, "--query-gpu=index,name,uuid,memory.total,memory.used,utilization.gpu",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return [], f"nvidia-smi: {e}"
    gpus = []
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        try:
            util = float(parts[5]) if parts[5].replace(".", "", 1).isdigit() else None
            gpus.append(Gpu(int(parts[0]), parts[1], parts[2], int(float(parts[3])) * 2**20,
                            int(float(parts[4])) * 2**20, util))
        except (IndexError, ValueError):
            continue
    return gpus, "" if gpus else f"nvidia-smi sees no GPU ({out.stderr.strip()[:100]})"


def wants_gpu(step: StagePlan, preset: Preset) -> bool:
    """Gives whether a stage's worker is placed on a GPU (a GPU stage, unless the run is on CPU)."""
    return step.stage.gpu and preset.run.device != "cpu"
