"""Presets: the bundled ones load, broken ones are explained field by field, overrides apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from gausynth_engine import PresetError, load_preset, parse_preset, schema
from gausynth_engine._preset import Preset, changed_fields, preset_table
from gausynth_engine.cli import presets_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["default", "quick", "original-only"])
def test_bundled_presets_load(name: str) -> None:
    preset = load_preset(presets_dir() / f"{name}.toml")
    assert isinstance(preset, Preset)


def test_default_preset_holds_the_reference_defaults() -> None:
    p = load_preset(presets_dir() / "default.toml")
    assert (p.preprocess.num_frames, p.sheet.grid, p.preprocess.sd_size, p.preprocess.colmap_size) == (
        48, 3, 512, 2048)
    assert (p.reimagine.strength, p.reimagine.steps, p.reimagine.guidance, p.reimagine.seed) == (
        0.7, 60, 4.0, -1)
    assert (p.reimagine.canny_weight, p.reimagine.canny_stop, p.reimagine.canny_low,
            p.reimagine.canny_high) == (0.6, 0.8, 200, 220)
    assert (p.reimagine.ip_adapter_weight, p.reimagine.ip_adapter_stop) == (0.6, 0.8)
    assert (p.upscale.scale, p.splat.iterations, p.splat.sh_degree, p.splat.background,
            p.splat.test_every) == (4, 10000, 3, "white", 8)  # SH 3: +0.4 dB on plush-dog (issue 11)
    assert p.run.outputs_root == ""  # empty: $GAUSYNTH_OUTPUTS_ROOT, else the user data folder


def test_original_only_needs_no_diffusion() -> None:
    p = load_preset(presets_dir() / "original-only.toml")
    assert p.run.pipeline == "original" and p.mask.method == "auto"


# Each broken preset, with the line it must be reported on and words the message must hold.
BROKEN = [
    ("[reimagine]\nstrength = 1.5\n", 2, ["reimagine.strength", "1.5", "0.3 to 1"]),
    ("[reimagine]\nstrenght = 0.5\n", 2, ["reimagine.strenght", "did you mean reimagine.strength"]),
    ("[reimagin]\nsteps = 3\n", 1, ["reimagin", "did you mean reimagine"]),
    ("[sheet]\ngrid = 5\n", 2, ["sheet.grid", "5", "2, 3, 4"]),
    ("[splat]\niterations = \"many\"\n", 2, ["splat.iterations", "'many'", "whole number"]),
    ("[splat]\niterations = 100\n", 2, ["splat.iterations", "100", "1000 to 30000"]),
    ("[reimagine]\ncontrolnet = \"yes\"\n", 2, ["reimagine.controlnet", "true or false"]),
    ("[reimagine]\ncanny_low = 230\ncanny_high = 220\n", 2, ["reimagine.canny_low", "230", "low ≤ high"]),
    ("[run]\ndirectory = \"../../etc\"\n", 2, ["run.directory", "../../etc", "plain folder name"]),
    ("[run]\npipeline = \"fast\"\n", 2, ["run.pipeline", "'fast'", "'reimagine', 'reimagine-3d', 'reimagine-sync', 'original'"]),
    ("[splat]\neval_at = [7000, 99999]\n", 2, ["splat.eval_at", "99999"]),
    ("run = 3\n", 1, ["run", "expected a [section] table"]),
    ("[run\ninput = 1\n", 1, ["not valid TOML"]),
]


@pytest.mark.parametrize(("text", "line", "words"), BROKEN)
def test_a_broken_preset_is_explained(tmp_path: Path, text: str, line: int, words: list[str]) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(PresetError) as err:
        load_preset(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: "), message
    for w in words:
        assert w in message, f"{w!r} not in {message!r}"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "many.toml"
    path.write_text("[sheet]\ngrid = 7\n[splat]\nsh_degree = 9\nbogus = 1\n")
    with pytest.raises(PresetError) as err:
        load_preset(path, ["reimagine.steps=0"])
    paths = sorted(p.path for p in err.value.problems)
    assert paths == ["reimagine.steps", "sheet.grid", "splat.bogus", "splat.sh_degree"]
    assert all(str(p).count("\n") == 0 for p in err.value.problems)  # one line each


def test_overrides_apply_and_keep_types() -> None:
    p = parse_preset("[reimagine]\nstrength = 0.7\n", overrides=[
        "reimagine.strength=0.5", "run.input=clip.mp4", "splat.eval_at=[1000, 2000]",
        "reimagine.controlnet=false", "reimagine.prompt=a red fox"])
    assert p.reimagine.strength == 0.5
    assert p.run.input == "clip.mp4"
    assert p.splat.eval_at == (1000, 2000)
    assert p.reimagine.controlnet is False
    assert p.reimagine.prompt == "a red fox"
    assert changed_fields(parse_preset(""), p)[0][0] == "run.input"


def test_malformed_override_is_named() -> None:
    with pytest.raises(PresetError) as err:
        parse_preset("", overrides=["strength0.5"])
    assert "--set" in str(err.value) and "section.field=value" in str(err.value)


def test_the_snapshot_round_trips() -> None:
    p = parse_preset("", overrides=["reimagine.seed=1234", "splat.eval_at=[3000]"])
    again = parse_preset(p.to_toml())
    assert again == p


def test_every_field_is_documented_and_the_readme_table_is_current() -> None:
    for f in schema():
        assert f.spec.doc.strip(), f"{f.path} has no doc"
        assert f.spec.choices or f.kind in (str, bool) or f.spec.min is not None, f"{f.path} has no range"
    readme = (REPO / "README.md").read_text()
    assert preset_table() in readme, "README's preset table is stale: paste `gausynth schema`"
