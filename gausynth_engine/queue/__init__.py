"""A queue of runs: every GPU of this machine (NVML), or a Ray cluster beyond it.

`gausynth queue add/list/show/move/cancel/retry/start/stop`. Public surface: the journal's
state (`QueueJournal`, `QueueView`, `Job`) and the runner's hook into the orchestrator.
"""

from ._journal import QUEUE_FOLDER, GpuSample, Job, QueueJournal, QueueView

__all__ = ["QUEUE_FOLDER", "GpuSample", "Job", "QueueJournal", "QueueView"]
