"""Stages that do not need each other run at the same time (`run.parallel_stages`): SfM beside
the diffusion, the original 3DGS beside the upscale. What a stage needs still comes first, a
failure stops only what depends on it, and a cancel stops everything.

The stages' workers are stood in for at the orchestrator's boundary (`_run_stage`: one stage in
its subprocess), so that these tests see the scheduling alone, in the order asyncio gives it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gausynth_engine import Orchestrator, RunLayout, make_plan, parse_preset
from gausynth_engine._journal import read_journal


class StandIn:
    """Plays each stage's worker: a few turns of the event loop, then its outcome."""

    def __init__(self, orchestrator: Orchestrator, fail: str = "", cancel_in: str = "",
                 slow: str = "") -> None:
        self.orchestrator, self.fail, self.cancel_in, self.slow = orchestrator, fail, cancel_in, slow
        self.running: set[str] = set()
        self.together: list[frozenset[str]] = []  # who was running whenever a stage started
        self.started: list[str] = []
        self.finished: list[str] = []
        self.timeline: list[tuple[str, str]] = []  # ("start" | "end", stage) as they happened

    async def __call__(self, step, placement) -> str:
        sid = step.stage.id
        self.started.append(sid)
        self.timeline.append(("start", sid))
        self.running.add(sid)
        self.together.append(frozenset(self.running))
        try:
            for turn in range(200 if sid == self.slow else 5):
                await asyncio.sleep(0)
                if sid == self.cancel_in and turn == 2:
                    self.orchestrator.cancel()
                if self.orchestrator.cancelled:
                    return "cancelled"
            self.finished.append(sid)
            return "failed" if sid == self.fail else "done"
        finally:
            self.running.discard(sid)
            self.timeline.append(("end", sid))


def run_reimagine(tmp_path: Path, video: Path, at_once: int, route: str = "reimagine", **stand_in: str):
    preset = parse_preset("", "test", [f"run.input={video}", f"run.parallel_stages={at_once}",
                                       f"run.pipeline={route}"])
    layout = RunLayout(tmp_path / "run")
    plan = make_plan(preset, layout)
    orchestrator = Orchestrator(preset, layout)
    fake = StandIn(orchestrator, **stand_in)
    orchestrator._run_stage = fake  # the boundary: one stage's worker process
    status = orchestrator.run(plan)
    return status, plan, fake, layout


def test_sfm_runs_beside_the_diffusion_and_every_stage_waits_for_what_it_needs(tmp_path, sample_video):
    status, plan, fake, _ = run_reimagine(tmp_path, sample_video, at_once=2)

    assert status == "done"
    assert sorted(fake.finished) == sorted(s.stage.id for s in plan.to_run)
    assert frozenset({"sheet", "sfm"}) in fake.together  # both began as soon as preprocess ended
    assert max(len(t) for t in fake.together) == 2  # never more than run.parallel_stages
    for step in plan.to_run:  # …and none began before the stages it comes after had ended
        began = fake.timeline.index(("start", step.stage.id))
        for up in (u for u in step.inputs if u in fake.finished):
            assert fake.timeline.index(("end", up)) < began, (up, step.stage.id)


def test_one_at_a_time_keeps_the_plan_order(tmp_path, sample_video):
    status, plan, fake, _ = run_reimagine(tmp_path, sample_video, at_once=1)

    assert status == "done"
    assert fake.started == fake.finished == [s.stage.id for s in plan.to_run]
    assert all(len(t) == 1 for t in fake.together)


def test_a_failed_stage_stops_what_depends_on_it_and_nothing_else(tmp_path, sample_video):
    status, _, fake, layout = run_reimagine(tmp_path, sample_video, at_once=2, fail="sheet")

    assert status == "failed"
    assert {"sfm", "mask", "splat_orig"} <= set(fake.finished)  # the branch that needs no sheet
    assert not {"reimagine", "propagate", "blend", "upscale", "splat_reim"} & set(fake.started)
    said = {e.stage: e.error for e in read_journal(layout.journal) if e.type == "stage_failed"}
    assert said["reimagine"] == "not run: upstream sheet failed"
    assert said["splat_reim"].startswith("not run: upstream")


def test_a_cancel_stops_every_running_stage_and_starts_no_other(tmp_path, sample_video):
    status, _, fake, _ = run_reimagine(tmp_path, sample_video, at_once=2, cancel_in="sfm")

    assert status == "cancelled"
    assert fake.started == ["preprocess", "sheet", "sfm"]  # sheet and sfm were both running
    assert fake.finished == ["preprocess"]


def test_the_2d_routes_reimagined_3dgs_trains_beside_the_original_and_the_3d_routes_after_it(
        tmp_path, sample_video):
    """On the H200 the default preset's reimagined 3DGS waited 67 s after its frames were ready
    for the original 3DGS to finish, though in the 2D route it grows from the SfM points."""
    status, plan, fake, _ = run_reimagine(tmp_path / "2d", sample_video, at_once=2, slow="splat_orig")
    assert status == "done" and "splat_orig" not in plan["splat_reim"].inputs
    assert frozenset({"splat_orig", "splat_reim"}) in fake.together

    status, plan, fake, _ = run_reimagine(tmp_path / "3d", sample_video, at_once=2, route="reimagine-3d",
                                          slow="splat_orig")
    assert status == "done" and "splat_orig" in plan["splat_reim"].inputs  # it fine-tunes it
    assert fake.timeline.index(("end", "splat_orig")) < fake.timeline.index(("start", "splat_reim"))


def test_a_2d_run_trained_before_that_change_says_why_its_reimagined_3dgs_retrains(tmp_path, sample_video):
    from gausynth_engine._manifest import write_json_atomic

    preset = parse_preset("", "test", [f"run.input={sample_video}", "run.pipeline=reimagine"])
    layout = RunLayout(tmp_path / "run")
    for step in make_plan(preset, layout).steps:
        if step.action != "off":
            inputs = dict(step.inputs)
            if step.stage.id == "splat_reim":  # as recorded when it waited for the original
                inputs["splat_orig"] = make_plan(preset, layout)["splat_orig"].fingerprint
            write_json_atomic(layout.manifest(step.stage.id), {
                "stage": step.stage.id, "version": step.stage.version, "outputs": [], "record": {},
                "fingerprint": step.fingerprint + ("-old" if step.stage.id == "splat_reim" else ""),
                "params": step.params, "inputs": inputs})

    plan = make_plan(preset, layout)
    assert [s.stage.id for s in plan.to_run] == ["splat_reim"]
    assert plan["splat_reim"].reason == "no longer reads splat_orig"
