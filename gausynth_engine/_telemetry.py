"""GPU telemetry through NVML (nvidia-ml-py): every call may be unsupported, none may crash."""

from __future__ import annotations

from ._events import Telemetry


class GpuSampler:
    """Samples device VRAM and utilisation of GPU `index`; N/A wherever NVML cannot say."""

    def __init__(self, index: int = 0) -> None:
        self.handle = None
        self.index = index
        self.name = "N/A"
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(self.handle)
            self.name = name.decode() if isinstance(name, bytes) else str(name)
        except Exception as e:  # noqa: BLE001 - no driver, no GPU, no library: all mean N/A
            self.name = f"N/A ({type(e).__name__}: {e})"[:120]

    @property
    def available(self) -> bool:
        return self.handle is not None

    def sample(self) -> Telemetry:
        if self.handle is None:
            return Telemetry(device=self.name)
        used = total = util = None
        try:
            mem = self._nvml.nvmlDeviceGetMemoryInfo(self.handle)
            used, total = int(mem.used), int(mem.total)
        except Exception:  # noqa: BLE001
            pass
        try:
            util = float(self._nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)
        except Exception:  # noqa: BLE001
            pass
        return Telemetry(device=self.name, vram_used=used, vram_total=total, utilization=util,
                         gpu=self.index)
