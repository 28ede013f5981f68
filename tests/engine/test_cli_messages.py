"""What the command line says to a new user: help, wrong names, new runs, refusals, the result card."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gausynth_engine.cli import main


def test_help_lists_the_app_and_attach_and_reads_as_sentences(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "attach" in out and "app" in out.split("positional arguments")[1]
    assert "make another reimagination candidate feed the stages after reimagine" in " ".join(out.split())


def test_an_unknown_preset_lists_the_bundled_ones(capsys) -> None:
    assert main(["run", "nosuchpreset", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "nosuchpreset" in err and "default" in err and "original-only" in err and "quick" in err


def test_preset_problems_come_in_file_order(tmp_path: Path, capsys) -> None:
    preset = tmp_path / "bad.toml"
    preset.write_text("[splat]\niterations = 5\n[preprocess]\nnum_frames = -1\n[sheet]\ngrid = 7\n",
                      encoding="utf-8")
    assert main(["run", str(preset), "--dry-run"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    numbers = [int(line.split(":")[1]) for line in lines if line.startswith(str(preset) + ":")]
    assert len(numbers) == 3 and numbers == sorted(numbers)


def test_doctor_wraps_long_details_under_themselves(monkeypatch, capsys) -> None:
    import gausynth_engine._doctor as doctor

    detail = "missing: " + ", ".join(f"model-{i} = some/long-hub-id-{i}" for i in range(60))
    monkeypatch.setattr(doctor, "checks", lambda build_gsplat=False: iter([("models (quick)", False, detail)]))
    assert main(["doctor"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 10 and max(len(line) for line in lines) <= 100
    assert " ".join(line.strip() for line in lines).endswith(detail)  # nothing lost in the wrap


def test_presence_checks_never_import_rembg() -> None:
    code = ("import sys; from gausynth_engine.cli import demo_preset_choice, main; "
            "demo_preset_choice(None); main(['models', 'list', 'quick']); "
            "sys.exit(3 if 'rembg' in sys.modules else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert proc.returncode != 3, "a presence check imported rembg (minutes of numba compiling, once)"
    assert "not on disk" in proc.stdout


def test_the_first_rembg_import_says_what_happens_first(monkeypatch) -> None:
    from gausynth_engine import cutout

    said = []
    monkeypatch.setattr(cutout, "rembg_compiled", lambda: False)
    monkeypatch.delitem(sys.modules, "rembg", raising=False)
    cutout.import_rembg(said.append)
    assert said == [cutout.FIRST_IMPORT_NOTICE] and "once" in said[0]


def test_models_list_gives_sizes_of_what_is_on_disk(tmp_path: Path, capsys) -> None:
    onnx = tmp_path / "mask.onnx"
    onnx.write_bytes(b"\0" * 3 * 1024 * 1024)
    main(["models", "list", "quick", "--set", f"blend.model='{onnx}'"])
    out = capsys.readouterr().out
    assert next(line for line in out.splitlines() if "blend.model" in line).split()[4:6] == ["3.0", "MiB"]
    assert "not on disk" in next(line for line in out.splitlines() if "reimagine.checkpoint" in line)


def _write_run(root: Path, name: str, video: Path) -> Path:
    folder = root / name / ".gausynth"
    folder.mkdir(parents=True)
    (folder / "preset.toml").write_text(
        f'[run]\ninput = "{video}"\ndirectory = "{name}"\noutputs_root = "{root}"\n'
        '[preprocess]\nnum_frames = 12\nsd_size = 64\ncolmap_size = 128\n', encoding="utf-8")
    return folder.parent


def test_status_of_a_new_run_says_what_run_would_do(tmp_path: Path, sample_video: Path, capsys) -> None:
    run = _write_run(tmp_path, "fresh", sample_video)
    assert main(["status", str(run)]) == 0
    out = capsys.readouterr().out
    assert "status: new" in out and "nothing has run here yet" in out and "would run" in out
    assert "preprocess" in out and "not run yet" in out


def test_too_few_images_fail_when_planning_in_one_line(tmp_path: Path, capsys) -> None:
    from gausynth_engine._media import write_image

    photos = tmp_path / "photos"
    import numpy as np

    for i in range(5):
        write_image(photos / f"IMG_{i}.png", np.full((32, 32, 3), 40 * i, np.uint8))
    args = ["run", "original-only", "--set", f"run.input='{photos}'", "--set",
            f"run.outputs_root='{tmp_path / 'out'}'", "--set", "preprocess.num_frames=12"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "holds 5 image(s), fewer than preprocess.num_frames = 12" in err
    assert not (tmp_path / "out").exists()  # refused before anything was made


def test_a_run_folder_of_another_input_is_not_reused_silently(tmp_path: Path, sample_video: Path,
                                                              capsys) -> None:
    _write_run(tmp_path, "clip", sample_video)
    other = tmp_path / "other.mp4"
    other.write_bytes(sample_video.read_bytes())
    args = ["run", "original-only", "--dry-run", "--set", f"run.input='{other}'", "--set",
            f"run.outputs_root='{tmp_path}'", "--set", "run.directory=clip"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(sample_video) in err and str(other) in err
    assert "--set run.directory=" in err and "--force" in err
    assert main([*args, "--force"]) == 0  # replacing it is a choice


def test_a_detached_start_of_a_running_run_names_the_holder(tmp_path: Path, sample_video: Path,
                                                           capsys) -> None:
    from gausynth_engine._lock import RunLock

    run = _write_run(tmp_path, "busy", sample_video)
    lock = RunLock(run / ".gausynth" / "lock")
    lock.acquire()
    try:
        args = ["run", str(run / ".gausynth" / "preset.toml"), "--detach"]
        assert main(args) == 3
    finally:
        lock.release()
    err = capsys.readouterr().err
    assert f"process {os.getpid()}" in err and "gausynth watch" in err and "gausynth cancel" in err


def test_the_result_card_gives_metrics_paths_and_the_next_command(tmp_path: Path) -> None:
    from gausynth_engine._layout import RunLayout
    from gausynth_engine._result import result_card

    layout = RunLayout(tmp_path / "dog")
    train = layout.gs / "orig_1000-abc"
    (train / "point_cloud" / "iteration_500").mkdir(parents=True)
    (train / "point_cloud" / "iteration_1000").mkdir(parents=True)
    (train / "point_cloud" / "iteration_1000" / "point_cloud.ply").write_bytes(b"ply")
    (train / "point_cloud" / "iteration_500" / "point_cloud.ply").write_bytes(b"ply")
    (train / "renders_1000").mkdir()
    layout.new_videos.mkdir(parents=True)
    layout.video("gs_orig").write_bytes(b"mp4")
    layout.manifests.mkdir(parents=True)
    layout.manifest("splat_orig").write_text(json.dumps(
        {"fingerprint": "f", "record": {"folder": "gs/orig_1000-abc", "psnr": 27.914, "ssim": 0.9123}}),
        encoding="utf-8")
    card = result_card(layout)
    assert "3DGS original: PSNR 27.91 dB · SSIM 0.912" in card
    assert "gs/orig_1000-abc/point_cloud/iteration_1000/point_cloud.ply" in card
    assert "gs/orig_1000-abc/renders_1000/" in card and "new_videos/gs_orig.mp4" in card
    assert f"gausynth attach {layout.root}" in card
