"""Typed messages between the tailing worker, the app and its screens."""

from __future__ import annotations

from textual.message import Message

from gausynth_engine import Event


class JournalBatch(Message):
    """New journal events, per run folder, read by the tailing worker in one poll."""

    def __init__(self, batches: dict[str, list[Event]], added: list[str]) -> None:
        super().__init__()
        self.batches = batches
        self.added = added  # run folders that appeared under the outputs root


class RunsChanged(Message):
    """Runs whose state changed; screens redraw from the store.

    A newer message replaces a queued one that it covers, so a busy screen redraws once for
    many polls instead of once per poll.
    """

    def __init__(self, keys: frozenset[str]) -> None:
        super().__init__()
        self.keys = keys

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsChanged) and message.keys <= self.keys


class RunLaunched(Message):
    """A detached run started (or failed to); `folder` is the run folder when known."""

    def __init__(self, ok: bool, message: str, folder: str | None) -> None:
        super().__init__()
        self.ok = ok
        self.message = message
        self.folder = folder
