"""The reimagine stage: SD-XL img2img of the model sheet, on tiny random models, on CPU, offline."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from gausynth_engine import Orchestrator, RunLayout, StageError, make_plan, parse_preset, read_manifest
from gausynth_engine._events import Artifact, Progress, StageFailed

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]
from conftest import small_overrides  # noqa: E402
from tiny_models import save_tiny_models  # noqa: E402

FAST = {"reimagine.sheet_size": 64, "reimagine.steps": 4, "reimagine.strength": 0.5}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models are all overhead: one CPU thread runs them 5–10× faster than two threads
    contending for a busy 2-core machine (the engine's workers inherit OMP_NUM_THREADS)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    """Tiny random SD-XL, ControlNet, IP-Adapter and image encoder, saved like the public repos."""
    return save_tiny_models(tmp_path_factory.mktemp("models"))


def model_sets(tiny, **extra: object) -> dict[str, object]:
    return {"reimagine.checkpoint": str(tiny.checkpoint), "reimagine.controlnet_model": str(tiny.controlnet),
            "reimagine.ip_adapter_model": str(tiny.ip_adapter), **FAST, **extra}


def run_engine(root: Path, video: Path, directory: str, sets: dict[str, object], **plan_options: object):
    """Runs the real engine (worker subprocesses) up to reimagine; gives (status, layout, events)."""
    overrides = small_overrides(video, directory, **{"run.outputs_root": str(root), **sets})
    preset = parse_preset("", "test", overrides)
    layout = RunLayout.for_run(root, directory)
    events: list = []
    plan = make_plan(preset, layout, until="reimagine", **plan_options)
    status = Orchestrator(preset, layout, on_event=events.append).run(plan)
    return status, layout, events


@pytest.fixture(scope="module")
def first_run(tiny, sample_video, tmp_path_factory):
    """A random-seed run with two candidates through the engine, as a user would start it."""
    root = tmp_path_factory.mktemp("outputs")
    status, layout, events = run_engine(root, sample_video, "run", model_sets(tiny, **{"reimagine.candidates": 2}))
    return status, layout, events, root


def params(tiny, **changes: object):
    """Gives reimagine Params on the tiny models (fast settings) with `changes` applied."""
    preset = parse_preset("", "test", small_overrides(Path("x.mp4"), **model_sets(tiny)))
    return dataclasses.replace(preset.reimagine, **changes), preset


_PIPELINES: dict = {}


def diffuse(tiny, sheet: np.ndarray, seeds: list[int], **changes: object) -> list[np.ndarray]:
    """Reimagines `sheet` in-process with the stage's own code; gives one sheet per seed.

    Pipelines are kept per set of models, so the tests load each combination only once.
    """
    from gausynth_engine.diffusion.pipeline import build_pipeline
    from gausynth_engine.stages.reimagine import generate, pipeline_sources

    p, preset = params(tiny, **changes)
    sources = pipeline_sources(dataclasses.replace(preset, reimagine=p))
    if sources not in _PIPELINES:
        _PIPELINES[sources] = build_pipeline(sources, "cpu", low_vram=False)
    return generate(_PIPELINES[sources], sheet, p, sources, seeds).sheets


@pytest.fixture(scope="module")
def test_sheet() -> np.ndarray:
    """A 96×96 sheet with structure: a bright square and a dark disc on grey."""
    import cv2

    img = np.full((96, 96, 3), 128, np.uint8)
    img[16:48, 16:48] = (230, 200, 40)
    cv2.circle(img, (66, 66), 18, (20, 40, 160), -1)
    return img


# --- through the engine -----------------------------------------------------------------------
def test_a_random_run_writes_candidates_key_frames_and_records_its_seeds(first_run):
    status, layout, events, _ = first_run
    assert status == "done", [e for e in events if isinstance(e, StageFailed)]
    rec = read_manifest(layout, "reimagine")["record"]
    sheet_rec = read_manifest(layout, "sheet")["record"]
    assert len(rec["seeds"]) == 2 and rec["seed"] == rec["seeds"][0] and rec["chosen"] == 1
    from gausynth_engine._media import read_image

    for k in (1, 2):
        assert read_image(layout.reimagine_sheets / f"sheet_{k}.png").shape == (64, 64, 3)
        tiles = sorted(p.name for p in (layout.reimagine_sheets / "candidates" / str(k)).iterdir())
        assert tiles == sorted(sheet_rec["key_frame_files"])
    # The chosen candidate's tiles are the key frames, named like the originals, at the tile size.
    for name in sheet_rec["key_frame_files"]:
        tile = read_image(layout.key_frames / name)
        assert tile.shape == (sheet_rec["tile_size"], sheet_rec["tile_size"], 3)
        assert np.array_equal(tile, read_image(layout.reimagine_sheets / "candidates" / "1" / name))
    assert not np.array_equal(read_image(layout.reimagine_sheets / "sheet_1.png"),
                              read_image(layout.reimagine_sheets / "sheet_2.png"))
    # Steps went to the journal; previews of the estimate live in the artifacts folder.
    steps = [e for e in events if isinstance(e, Progress) and e.stage == "reimagine" and e.unit == "steps"]
    assert steps and steps[-1].value == steps[-1].total == 2 * rec["steps_per_candidate"]
    previews = [Path(e.path) for e in events if isinstance(e, Artifact) and e.stage == "reimagine"
                and Path(e.path).parent == layout.artifacts]
    assert previews and previews[-1].exists()
    assert (layout.reimagine_sheets / "edges.png").exists()


def test_the_recorded_seed_reproduces_a_random_run(first_run, tiny):
    _, layout, _, _ = first_run
    from gausynth_engine._media import read_image

    seed = read_manifest(layout, "reimagine")["record"]["seed"]
    sheet = read_image(layout.orig_sheets / "sheet.png")
    again = diffuse(tiny, sheet, [seed], seed=seed)[0]
    assert np.array_equal(again, read_image(layout.reimagine_sheets / "sheet_1.png"))


def test_choosing_another_candidate_feeds_it_on_without_rerunning_reimagine(first_run, tiny, sample_video):
    _, layout, _, root = first_run
    from gausynth_engine._media import read_image
    from gausynth_engine.stages.reimagine import choose_candidate

    choose_candidate(layout, 2)
    for tile in (layout.reimagine_sheets / "candidates" / "2").iterdir():
        assert np.array_equal(read_image(layout.key_frames / tile.name), read_image(tile))
    assert json.loads(layout.choices.read_text()) == {"reimagine": 2}
    preset = parse_preset("", "test", small_overrides(
        sample_video, "run", **{"run.outputs_root": str(root), **model_sets(tiny, **{"reimagine.candidates": 2})}))
    plan = make_plan(preset, layout)
    assert plan["reimagine"].action == "skip"
    assert plan["propagate"].inputs["reimagine"].endswith("#choice=2")
    with pytest.raises(StageError, match="from 1 to 2"):
        choose_candidate(layout, 3)
    choose_candidate(layout, 1)
    assert json.loads(layout.choices.read_text()) == {}
    tile = next((layout.reimagine_sheets / "candidates" / "1").iterdir())
    assert np.array_equal(read_image(layout.key_frames / tile.name), read_image(tile))


def test_a_missing_model_fails_the_stage_with_a_clear_error(tiny, sample_video, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the worker inherits it: no download is tried
    status, _, events = run_engine(tmp_path, sample_video, "missing",
                                   model_sets(tiny, **{"reimagine.checkpoint": "nobody/no-such-sdxl"}))
    assert status == "failed"
    error = next(e.error for e in events if isinstance(e, StageFailed) and e.stage == "reimagine")
    assert "reimagine.checkpoint = 'nobody/no-such-sdxl'" in error
    assert "gausynth models fetch" in error and "HF_HUB_OFFLINE" in error


# --- the diffusion itself (in-process, the stage's own code) ----------------------------------
def test_same_seed_gives_the_same_sheet_and_another_seed_another(tiny, test_sheet):
    a, b, c = diffuse(tiny, test_sheet, [5, 5, 6])
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_weight_zero_really_switches_guidance_off(tiny, test_sheet):
    plain = diffuse(tiny, test_sheet, [5], controlnet=False, ip_adapter_weight=0.0)[0]
    # Weight 0 needs neither model: they point nowhere, and the result is the unguided one.
    zero = diffuse(tiny, test_sheet, [5], canny_weight=0.0, controlnet_model="/nowhere/cn",
                   ip_adapter_weight=0.0, ip_adapter_model="/nowhere/ip")[0]
    assert np.array_equal(zero, plain)
    guided = diffuse(tiny, test_sheet, [5])[0]
    assert not np.array_equal(guided, plain)


def test_stop_at_changes_the_result(tiny, test_sheet):
    # 4 steps × strength 0.5 = 2 steps: stop-at 0.5 guides the first only.
    both = diffuse(tiny, test_sheet, [5], canny_weight=1.0, canny_stop=1.0,
                   ip_adapter_weight=0.6, ip_adapter_stop=1.0)[0]
    ip_half = diffuse(tiny, test_sheet, [5], canny_weight=1.0, canny_stop=1.0,
                      ip_adapter_weight=0.6, ip_adapter_stop=0.5)[0]
    cn_half = diffuse(tiny, test_sheet, [5], canny_weight=1.0, canny_stop=0.5,
                      ip_adapter_weight=0.6, ip_adapter_stop=1.0)[0]
    assert not np.array_equal(both, ip_half)
    assert not np.array_equal(both, cn_half)
    assert not np.array_equal(ip_half, cn_half)


def test_the_ip_adapter_scale_drops_to_zero_after_its_stop():
    from gausynth_engine.diffusion import StepHooks

    class Pipe:
        scheduler = None
        scales: list[float] = []

        def set_ip_adapter_scale(self, s: float) -> None:
            self.scales.append(s)

    pipe, total = Pipe(), 10
    hooks = StepHooks(total, ip_weight=0.6, ip_stop=0.3)
    hooks.start(pipe)
    seen = []
    for i in range(total):
        seen.append(pipe.scales[-1])
        hooks(pipe, i, None, {"latents": np.zeros((1, 4, 2, 2))})
    assert seen == [0.6, 0.6, 0.6] + [0.0] * 7


# --- styles and sizes -------------------------------------------------------------------------
def test_the_sharp_cinematic_style_wraps_the_prompt_and_adds_its_negative(tiny):
    from gausynth_engine.stages.reimagine import styled_prompts

    p, _ = params(tiny, style="sharp-cinematic", prompt="a robot", negative_prompt="text")
    prompt, negative = styled_prompts(p)
    assert prompt.startswith("cinematic still a robot . ") and negative.endswith(", text")
    assert styled_prompts(dataclasses.replace(p, style="none")) == ("a robot", "text")


# --- models -----------------------------------------------------------------------------------
def test_models_in_the_hugging_face_cache_are_found_and_missing_ones_named(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf

    from gausynth_engine import models

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "models--diffusers--controlnet-canny-sdxl-1.0"
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    for name in models.CONTROLNET_FILES:
        (snapshot / name).write_text("{}")
    preset = parse_preset("", "test", ["reimagine.ip_adapter_weight=0"])
    rows = {r["key"]: r for r in models.models_list(preset)}
    assert rows["controlnet"]["present"] and rows["controlnet"]["path"] == str(snapshot)
    assert not rows["checkpoint"]["present"]
    missing = [m for m in models.missing_models(preset) if m.startswith("reimagine.")]
    assert len(missing) == 1 and "RunDiffusion/Juggernaut-XL-v9" in missing[0]
    assert any(m.startswith("upscale.model = ") for m in models.missing_models(preset))
    with pytest.raises(StageError, match="gausynth models fetch"):
        models.fetch(models.reimagine_models(preset)[0])
    # Turning guidance off drops its model from what the preset needs.
    off = parse_preset("", "test", ["reimagine.ip_adapter_weight=0", "reimagine.canny_weight=0"])
    assert [r.key for r in models.reimagine_models(off)] == ["checkpoint"]


def test_download_progress_is_forwarded_not_printed(capsys):
    from gausynth_engine.model_refs import _progress_class

    seen = []
    bar = _progress_class(lambda done, total, unit: seen.append((done, total, unit)))(total=10, unit="B")
    bar.update(4)
    bar.update(6)
    bar.close()
    assert seen == [(4.0, 10.0, "B"), (10.0, 10.0, "B")]
    assert capsys.readouterr().err == ""


def test_a_single_file_checkpoint_also_needs_the_sdxl_configs(tmp_path):
    from gausynth_engine import models

    ckpt = tmp_path / "juggernautXL_v9.safetensors"
    ckpt.write_bytes(b"")
    preset = parse_preset("", "test", [f"reimagine.checkpoint={str(ckpt)!r}"])
    refs = {r.key: r for r in models.reimagine_models(preset)}
    assert refs["checkpoint"].kind == "file" and models.is_present(refs["checkpoint"])
    assert refs["single_file_config"].source == models.SDXL_CONFIG_REPO


# --- PyraCanny --------------------------------------------------------------------------------
def test_pyracanny_finds_edges_on_the_outline_and_none_elsewhere(test_sheet):
    from gausynth_engine.edges import pyra_canny

    edges = pyra_canny(test_sheet, 100, 200)
    assert edges.shape == (96, 96) and edges.dtype == np.uint8
    # Strong edges along the square's sides and around the disc.
    assert edges[20:44, 14:18].max(axis=1).min() > 100 and edges[14:18, 20:44].max(axis=0).min() > 100
    assert edges[66, 45:51].max() > 100 and edges[45:51, 66].max() > 100
    # Nothing far from them: the flat background, the inside of the flat square and disc (the
    # coarsest scales leave at most a faint halo near an outline).
    assert edges[2:8, 70:94].max() == 0 and edges[80:94, 2:30].max() == 0
    assert edges[28:36, 28:36].max() < 16 and edges[62:70, 62:70].max() < 16


def test_pyracanny_on_a_flat_image_is_empty():
    from gausynth_engine.edges import pyra_canny

    assert pyra_canny(np.full((64, 80, 3), 77, np.uint8), 1, 2).max() == 0


def test_preview_edges_writes_the_map_of_the_runs_sheet(first_run, tiny, sample_video, tmp_path):
    _, layout, _, root = first_run
    from gausynth_engine._media import read_image
    from gausynth_engine.stages.reimagine import preview_edges

    preset = parse_preset("", "test", small_overrides(
        sample_video, "run", **{"run.outputs_root": str(root), **model_sets(tiny)}))
    out = preview_edges(preset, tmp_path / "edges.png")
    assert read_image(out).shape == (64, 64, 3)
    assert np.array_equal(read_image(out), read_image(layout.reimagine_sheets / "edges.png"))
    with pytest.raises(StageError, match="no model sheet yet"):
        preview_edges(dataclasses.replace(preset, run=dataclasses.replace(preset.run, directory="nope")),
                      tmp_path / "x.png")
