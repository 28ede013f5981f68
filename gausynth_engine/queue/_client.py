"""The orchestrator's side of the queue: asks where each stage runs (`Orchestrator(place=…)`).

A run started by the queue runner finds GAUSYNTH_QUEUE (the outputs root), GAUSYNTH_QUEUE_JOB
and, on a cluster, GAUSYNTH_QUEUE_CLUSTER in its environment. Locally each stage claims its
place from the runner over a Unix socket and keeps the connection open while it runs; if the
runner dies meanwhile, the claim is re-announced to its successor (`hold`), so the GPU stays
reserved. On a Ray cluster the stage's worker runs as a Ray task instead (see `_ray.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from .._orchestrator import Placement, PlaceStage
from .._plan import StagePlan
from .._preset import Preset
from ._gpus import wants_gpu
from ._journal import QueueJournal

RECONNECT = 0.5  # seconds between attempts to reach a runner that is (re)starting


def placement_from_env(preset: Preset) -> PlaceStage | None:
    """Gives the queue's placement hook when this run was started by the queue runner."""
    root, job = os.environ.get("GAUSYNTH_QUEUE"), os.environ.get("GAUSYNTH_QUEUE_JOB")
    if not root or not job:
        return None
    journal = QueueJournal(Path(root))
    cluster = os.environ.get("GAUSYNTH_QUEUE_CLUSTER", "")
    if cluster:
        from ._ray import ray_placement

        return ray_placement(cluster, preset)
    return LocalPlacement(journal, job, preset)


class LocalPlacement:
    """Claims each stage's GPU and cores from this machine's queue runner."""

    def __init__(self, journal: QueueJournal, job: str, preset: Preset) -> None:
        self.journal, self.job, self.preset = journal, job, preset

    def __call__(self, step: StagePlan) -> contextlib.AbstractAsyncContextManager[Placement]:
        return self._claim(step)

    @contextlib.asynccontextmanager
    async def _claim(self, step: StagePlan) -> AsyncIterator[Placement]:
        hello = {"op": "claim", "job": self.job, "stage": step.stage.id, "gpu": wants_gpu(step, self.preset)}
        reader, writer = await self._connect(hello)
        line = await reader.readline()
        while not line:  # the runner went away before answering: ask its successor
            writer.close()
            reader, writer = await self._connect(hello)
            line = await reader.readline()
        grant: dict[str, Any] = json.loads(line)
        keeper = asyncio.ensure_future(self._keep(reader, writer, step.stage.id, grant))
        try:
            yield Placement(env=dict(grant["env"]), gpus=tuple(grant["gpus"]))
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await keeper
            _, writer = self._conn
            with contextlib.suppress(OSError):
                writer.write(b'{"op": "release"}\n')
                await writer.drain()
            writer.close()

    async def _connect(self, hello: dict[str, Any]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.journal.socket))
                writer.write((json.dumps(hello) + "\n").encode())
                await writer.drain()
                self._conn = (reader, writer)
                return reader, writer
            except OSError:
                await asyncio.sleep(RECONNECT)  # no runner now; one restarting picks us up

    async def _keep(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stage: str,
                    grant: dict[str, Any]) -> None:
        """Re-announces the held place to each new runner while the stage runs."""
        while True:
            with contextlib.suppress(OSError):
                await reader.read()  # only the runner's end closes this: it died
            writer.close()
            print(f"queue runner gone while {stage} runs; re-announcing its place", file=sys.stderr)
            reader, writer = await self._connect({"op": "hold", "job": self.job, "stage": stage,
                                                  "grant": grant})
