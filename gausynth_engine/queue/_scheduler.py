"""Where each stage of the queue runs on this machine: GPUs by free VRAM, CPU stages by cores.

Pure bookkeeping (no processes, no NVML calls): the runner feeds it NVML's view and the claims.
A GPU stage whose need is known (a peak recorded in a manifest of an earlier run) is packed
onto the fullest GPU where it still fits; one whose need is unknown gets a GPU to itself.
What other processes use (NVML) plus our reservations never exceeds a GPU's total.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .._layout import RunLayout
from ._gpus import Gpu

GIB = 2**30
VRAM_MARGIN = 1.25  # torch's recorded peak leaves out its cache and fragmentation
VRAM_OVERHEAD = 1 * GIB  # the CUDA context of a worker process
# Cores a CPU stage asks for, as a share of the budget (SfM parallelises; the rest hardly).
CPU_SHARE = {"sfm": 0.5}


@dataclass(frozen=True)
class Need:
    job: str
    stage: str
    gpu: bool  # wants one GPU
    vram: int | None  # bytes it will use on it; None: unknown, so a GPU of its own
    cores: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.job, self.stage)


@dataclass(frozen=True)
class Grant:
    gpus: tuple[int, ...]  # NVML indices
    uuids: tuple[str, ...]
    cores: int
    vram: int  # bytes reserved on the GPU (its total when exclusive)
    exclusive: bool = False

    def env(self) -> dict[str, str]:
        """Gives the worker's pinning: its GPU (by UUID, immune to CUDA's own ordering), its threads."""
        threads = str(max(1, self.cores))
        return {"CUDA_VISIBLE_DEVICES": ",".join(self.uuids), "OMP_NUM_THREADS": threads,
                "MKL_NUM_THREADS": threads}


class Ledger:
    """What is reserved on each GPU and of the core budget, by (job, stage)."""

    def __init__(self, cores: int) -> None:
        self.cores = max(1, cores)
        self.held: dict[tuple[str, str], Grant] = {}
        self.baseline: dict[int, int] = {}  # bytes other processes used on a GPU before ours came

    def cores_for(self, stage: str, gpu: bool) -> int:
        """Gives the cores a stage asks for (a GPU stage one, to feed its GPU)."""
        if gpu:
            return 1
        return max(1, int(self.cores * CPU_SHARE.get(stage, 0)) or 1)

    def reserved(self, index: int) -> int:
        return sum(g.vram for g in self.held.values() if index in g.gpus)

    def cores_used(self) -> int:
        return sum(g.cores for g in self.held.values())

    def room(self, gpu: Gpu) -> int:
        """Gives the bytes still free for our stages on `gpu`.

        Other processes' use is what NVML showed while none of ours was placed there (or more,
        if it grew since: all use beyond our reservations counts as theirs). Our stages may not
        have allocated yet, so their reservations count in full, whatever NVML shows now.
        """
        reserved = self.reserved(gpu.index)
        if reserved == 0:
            self.baseline[gpu.index] = gpu.used
        others = max(self.baseline.setdefault(gpu.index, max(0, gpu.used - reserved)), gpu.used - reserved)
        return max(0, gpu.total - reserved - others)

    def try_grant(self, need: Need, gpus: list[Gpu]) -> Grant | None:
        """Gives a grant for `need` now, recorded as held; None when it must wait."""
        cores = min(need.cores, self.cores)
        if self.cores_used() + cores > self.cores and self.held:
            return None
        if not need.gpu:
            grant = Grant((), (), cores, 0)
            self.held[need.key] = grant
            return grant
        fitting: list[tuple[int, Gpu]] = []
        for gpu in gpus:  # a GPU given whole is reserved whole: no room is left on it
            room = self.room(gpu)
            if need.vram is None:
                if self.reserved(gpu.index) == 0:  # a GPU of its own: nothing of ours on it
                    fitting.append((-room, gpu))  # the emptiest first
            elif need.vram <= room:
                fitting.append((room - need.vram, gpu))  # best fit: the least room left over
        if not fitting:
            return None
        # Packing small stages tightly keeps whole GPUs free for big or unknown ones.
        _, gpu = min(fitting, key=lambda f: (f[0], f[1].index))
        vram = gpu.total if need.vram is None else need.vram
        grant = Grant((gpu.index,), (gpu.uuid,), cores, vram, exclusive=need.vram is None)
        self.held[need.key] = grant
        return grant

    def hold(self, key: tuple[str, str], grant: Grant) -> None:
        """Records a grant made before (by a runner that died), so nothing else lands on it."""
        self.held[key] = grant

    def release(self, key: tuple[str, str]) -> Grant | None:
        grant = self.held.pop(key, None)
        for index in grant.gpus if grant else ():
            if self.reserved(index) == 0:
                self.baseline.pop(index, None)  # measured afresh when the next stage comes
        return grant


def vram_estimate(stage: str, run: RunLayout, outputs_root: Path) -> int | None:
    """Gives the bytes a stage should reserve, from recorded peaks; None when none is recorded.

    The run's own manifest wins (a rerun of the same settings); otherwise the largest peak of
    that stage in any run under the outputs root (conservative: sizes differ between runs).
    """
    own = _peak(run.manifest(stage))
    if own is None:
        peaks = [p for m in Path(outputs_root).glob(f"*/.gausynth/manifests/{stage}.json")
                 if (p := _peak(m)) is not None]
        own = max(peaks) if peaks else None
    if own is None:
        return None
    return int(own * VRAM_MARGIN) + VRAM_OVERHEAD


def _peak(manifest: Path) -> int | None:
    try:
        value = json.loads(manifest.read_text(encoding="utf-8")).get("peak_vram")
    except (FileNotFoundError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, (int, float)) and value >= 0 else None  # 0: used none
