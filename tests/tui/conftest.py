"""Fixtures for the app's tests: recorded runs with a fixed clock, and the generated sample."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from gausynth_tui.app import make_app

from .journals import NOW, make_runs


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Three recorded runs under ./runs, and `app(...)`: a still app over them (no timers, no blink).

    Times show in UTC and "now" is fixed, so every screen draws the same on every machine.
    """
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    runs = make_runs(tmp_path / "runs")
    monkeypatch.chdir(tmp_path)

    def app(attach: str | None = None, **options):
        return make_app("runs", attach=Path("runs") / attach if attach else None, live=False,
                        clock=lambda: NOW, alive=lambda pid: True, **options)

    yield SimpleNamespace(root=tmp_path / "runs", runs=runs, app=app)
    monkeypatch.undo()
    time.tzset()
