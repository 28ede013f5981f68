"""A user opens the queue from the runs list, sees each job with its GPU, reorders, cancels, retries."""

from __future__ import annotations

from pathlib import Path

from gausynth_engine.queue._journal import (
    GpuSample,
    JobAdded,
    JobCancelled,
    JobFinished,
    JobMoved,
    JobRetried,
    JobStarted,
    QueueJournal,
    StagePlaced,
)
from gausynth_tui.app import make_app
from gausynth_tui.screens.queue import QueueScreen

GIB = 2**30


def screen_text(app) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def recorded_queue(root: Path) -> QueueJournal:
    journal = QueueJournal(root)
    jobs = ["cat", "dog", "owl", "elk"]
    journal.append(*(JobAdded(job=f"q00{i + 1}", preset="/p/original-only.toml", sets=(), directory=name)
                     for i, name in enumerate(jobs)))
    journal.append(JobStarted(job="q001", pid=4_000_001, start=None, host="box"),
                   StagePlaced(job="q001", stage="splat_orig", gpus=(1,), cores=1, vram=80 * GIB, host="box"),
                   JobStarted(job="q002", pid=4_000_002, start=None, host="box"),
                   JobFinished(job="q002", status="failed", error="sfm: registered 3/12 frames"),
                   GpuSample(gpu=0, vram_used=2 * GIB, vram_total=80 * GIB, utilization=0.0),
                   GpuSample(gpu=1, vram_used=31 * GIB, vram_total=80 * GIB, utilization=97.0))
    return journal


async def test_the_queue_screen_shows_jobs_and_sends_commands_to_the_journal(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    journal = recorded_queue(root)
    app = make_app(root, live=False, alive=lambda pid: False)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("Q")
        assert isinstance(app.screen, QueueScreen)
        text = screen_text(app)
        rows = {line.split()[1] if line.split()[0].isdigit() else line.split()[0]: line
                for line in text.splitlines() if " q00" in line or line.strip().startswith("q00")
                for line in [line.strip()]}
        assert "running" in rows["q001"] and " 1 " in rows["q001"] and "splat_orig" in rows["q001"]
        assert "failed" in rows["q002"] and rows["q003"].startswith("1 ") and rows["q004"].startswith("2 ")
        assert "1: 31.0 GiB/80.0 GiB 97%" in text and "no runner" in text
        await pilot.press("down", "down", "down")  # onto q004, the second waiting job
        await pilot.press("left_square_bracket")
        await pilot.press("x")
        await pilot.press("up")  # onto q002 (failed): q004 now stands before q003
        await pilot.press("r")
        events = journal.reader().read_new()
        assert [type(e) for e in events[-3:]] == [JobMoved, JobCancelled, JobRetried]
        assert (events[-3].job, events[-3].before) == ("q004", "q003")
        assert events[-2].job == "q004" and events[-1].job == "q002"
        order = [line.split()[0] if line.strip().startswith("q") else line.split()[1]
                 for line in screen_text(app).splitlines() if "q00" in line]
        assert order == ["q001", "q002", "q004", "q003"]
