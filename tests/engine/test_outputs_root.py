"""The CLI and the app agree on where runs live: one absolute outputs root, chosen the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from gausynth_engine.cli import main as cli


@pytest.fixture
def no_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("GAUSYNTH_OUTPUTS_ROOT", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path / "data" / "gausynth" / "runs"


def test_without_settings_runs_live_in_the_user_data_folder(no_env: Path, sample_video: Path, capsys) -> None:
    from gausynth_tui.app import make_app

    assert cli(["runs"]) == 0
    assert f"no runs under {no_env}/" in capsys.readouterr().out
    assert cli(["run", "original-only", "--set", f"run.input={sample_video}", "--dry-run"]) == 0
    assert f"plan for {no_env / 'original-only'}:" in capsys.readouterr().out
    assert make_app().store.outputs_root == no_env  # the app looks where the CLI writes


def test_the_environment_then_the_preset_then_the_flag_win(no_env: Path, sample_video: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from gausynth_tui.app import make_app

    monkeypatch.setenv("GAUSYNTH_OUTPUTS_ROOT", "relative-runs")  # taken from the current folder
    here = Path.cwd() / "relative-runs"
    base = ["run", "original-only", "--set", f"run.input={sample_video}", "--dry-run"]
    assert cli(base) == 0
    assert f"plan for {here / 'original-only'}:" in capsys.readouterr().out
    assert make_app().store.outputs_root == here
    assert cli([*base, "--set", f"run.outputs_root={tmp_path / 'p'}"]) == 0
    assert f"plan for {tmp_path / 'p' / 'original-only'}:" in capsys.readouterr().out
    assert cli([*base, "--set", f"run.outputs_root={tmp_path / 'p'}", "--outputs-root", str(tmp_path / 'f')]) == 0
    assert f"plan for {tmp_path / 'f' / 'original-only'}:" in capsys.readouterr().out
    assert not (tmp_path / "f").exists() and not here.exists()  # dry runs make nothing


def test_the_app_hands_its_outputs_root_to_the_runs_it_starts(tmp_path: Path, monkeypatch, capsys) -> None:
    import os

    from gausynth_tui import app as app_module

    monkeypatch.delenv("GAUSYNTH_OUTPUTS_ROOT", raising=False)
    seen = {}

    class Fake:
        return_code = 0

        def run(self) -> None:
            seen["env"] = os.environ.get("GAUSYNTH_OUTPUTS_ROOT")

    monkeypatch.setattr(app_module, "make_app", lambda root, **kw: seen.setdefault("root", root) and Fake())
    assert app_module.run_app(["--outputs-root", str(tmp_path / "mine")]) == 0
    assert seen == {"root": tmp_path / "mine", "env": str(tmp_path / "mine")}
