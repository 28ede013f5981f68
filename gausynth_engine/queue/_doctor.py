"""`gausynth doctor`'s lines about the queue: every GPU NVML sees, and the Ray cluster if configured."""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterator

from ._gpus import describe, list_gpus


def queue_checks() -> Iterator[tuple[str, bool | None, str]]:
    gpus, why = list_gpus()
    if not gpus:
        yield "GPUs (NVML)", None, f"none: {why}; the queue runs every stage on the CPU cores"
    for gpu in gpus:
        yield f"GPU {gpu.index}", True, f"{describe(gpu)}, {gpu.uuid}"
    try:
        version = importlib.metadata.version("ray")
    except importlib.metadata.PackageNotFoundError:
        yield "Ray", None, "not installed; only `queue start --cluster` needs it: pip install 'gausynth[ray]'"
        return
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        yield "Ray", None, f"{version}; no cluster configured (set RAY_ADDRESS, or give `queue start --cluster`)"
        return
    try:
        from ._ray import cluster_summary

        yield "Ray cluster", True, f"{address}: {cluster_summary(address)} (ray {version})"
    except Exception as e:  # noqa: BLE001 - an unreachable cluster is a finding, not a crash
        yield "Ray cluster", False, f"{address}: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
