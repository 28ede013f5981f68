"""The command line around runs: model listing, choosing a candidate, edge previews."""

from __future__ import annotations

from pathlib import Path

from gausynth_engine.cli import main


def test_original_only_needs_no_weights(capsys) -> None:
    assert main(["models", "list", "original-only"]) == 0
    assert "needs no model weights" in capsys.readouterr().out


def test_a_missing_local_model_is_listed_as_missing(tmp_path: Path, capsys) -> None:
    gone = tmp_path / "no-such-checkpoint"
    code = main(["models", "list", "quick", "--set", f"reimagine.checkpoint={gone}"])
    out = capsys.readouterr().out
    assert code == 1
    line = next(x for x in out.splitlines() if "reimagine.checkpoint" in x)
    assert line.startswith("✘") and str(gone) in line and "not on disk" in line


def test_choosing_before_reimagine_ran_is_refused(engine_run, sample_video: Path, capsys) -> None:
    from conftest import small_overrides

    _, layout, _ = engine_run(small_overrides(sample_video), until="sheet")
    assert main(["choose", str(layout.root), "reimagine", "2"]) == 1
    assert "reimagine has not finished" in capsys.readouterr().err
    assert not layout.lock.exists()


def test_edges_preview_needs_no_model(engine_run, sample_video: Path, capsys) -> None:
    from conftest import small_overrides

    from gausynth_engine._media import read_image

    sets = small_overrides(sample_video)
    engine_run(sets, until="sheet")
    out = Path("edges.png").absolute()
    args = ["preview-edges", "default", "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    edges = read_image(out)
    assert edges.shape[:2] == (1024, 1024) and edges.max() > 0  # the sheet as diffusion sees it
