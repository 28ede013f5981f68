"""Bad input of every kind ends in one line for people: presets, videos, image folders, paths, models.

Each case asserts the exit code, exactly one error line naming the file or field, no traceback,
and that the outputs of an earlier finished run are untouched.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from gausynth_engine import RunLayout, parse_preset
from gausynth_engine._preset import PresetError, schema
from gausynth_engine._sample import SampleSpec, make_sample
from gausynth_engine.cli import main as cli


@dataclass
class World:
    """The module's folder: a clip, an earlier finished run, and helpers that make bad things."""

    dir: Path
    clip: Path
    root: Path  # the outputs root of every run here
    earlier: RunLayout

    def file(self, name: str, data: bytes | str) -> Path:
        path = self.dir / "made" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def images(self, name: str, frames: list[np.ndarray], suffix: str = ".png") -> Path:
        import cv2

        folder = self.dir / "made" / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(frames):
            assert cv2.imwrite(str(folder / f"{i:03d}{suffix}"), frame)
        return folder


def run(w: World, *sets: str, directory: str = "case", preset: str = "original-only",
        extra: tuple[str, ...] = ()) -> list[str]:
    """Gives a tiny preprocess-only run command line in the module's outputs root."""
    argv = ["run", preset, "--until", "preprocess", "--outputs-root", str(w.root),
            "--set", f"run.directory={directory}", "--set", "preprocess.num_frames=4",
            "--set", "preprocess.sd_size=64", "--set", "preprocess.colmap_size=64"]
    if not any(s.startswith("run.input=") for s in sets):
        argv += ["--set", f"run.input={w.clip}"]
    for s in sets:
        argv += ["--set", s]
    return argv + list(extra)


def ramp(h: int = 48, w: int = 64, dtype=np.uint8, channels: int = 3) -> list[np.ndarray]:
    """Gives 4 distinct frames (a moving ramp) of the given type and channel count."""
    top = np.iinfo(dtype).max
    frames = []
    for k in range(4):
        x = (np.linspace(0, 1, w)[None, :] + 0.1 * k) % 1.0
        grey = np.repeat(x, h, axis=0) * top
        img = grey.astype(dtype)
        frames.append(img if channels == 1 else np.dstack([img] * channels))
    return frames


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[World], list[str] | Callable[[], object]]  # a CLI argv, or a library call
    code: int  # the exit code (library calls: 1 = raises StageError, 0 = returns)
    says: tuple[str, ...] = ()  # fragments the one error line holds ("{dir}" = the module folder)
    marks: tuple = field(default_factory=tuple)


def preset_file(name: str, text: str | bytes) -> Callable[[World], list[str]]:
    def make(w: World) -> list[str]:
        path = w.file(f"presets/{name}.toml", text)
        return ["run", str(path), "--outputs-root", str(w.root), "--set", f"run.input={w.clip}"]
    return make


def read_only_root(w: World) -> list[str]:
    mount = w.dir / "ro"
    mount.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here ({done.stderr.strip() or 'not root'})")
    argv = run(w)
    argv[argv.index("--outputs-root") + 1] = str(mount)
    return argv


def lock_is_a_folder(w: World) -> list[str]:
    layout = RunLayout(w.root / "lockdir")
    layout.lock.mkdir(parents=True, exist_ok=True)
    return run(w, directory="lockdir")


def manifests_is_a_file(w: World) -> list[str]:
    layout = RunLayout(w.root / "manifile")
    layout.meta.mkdir(parents=True, exist_ok=True)
    layout.manifests.write_text("not a folder")
    return run(w, directory="manifile")


def link_out(w: World) -> list[str]:
    (w.dir / "elsewhere").mkdir(exist_ok=True)
    link = w.root / "linked"
    if not link.is_symlink():
        link.symlink_to(w.dir / "elsewhere")
    return run(w, directory="linked")


def superres_load(ref: Callable[[World], str]):
    def make(w: World):
        from gausynth_engine import superres

        return lambda: superres.load(ref(w), 4)
    return make


def cutout_model(ref: str):
    def make(w: World):
        from gausynth_engine import cutout

        return lambda: cutout.resolve_model(ref)
    return make


def corrupt_onnx(w: World):
    from gausynth_engine.cutout import MaskSession

    path = w.file("models/broken.onnx", b"\x00not an onnx graph" * 10)
    return lambda: MaskSession(str(path), "cpu")


CASES = [
    # --- presets: files ----------------------------------------------------------------------
    Case("toml-syntax", preset_file("syntax", "[run]\ndirectory = \n"), 2, ("syntax.toml:2", "not valid TOML")),
    Case("not-utf8", preset_file("latin", b"[run]\ndirectory = '\xe9'\n"), 2, ("latin.toml", "cannot be read")),
    Case("binary-preset", lambda w: ["run", str(w.file("presets/bin.toml", b"\xff\xfe\x00")),
                                     "--outputs-root", str(w.root)], 2, ("bin.toml", "cannot be read")),
    Case("preset-is-folder", lambda w: ["run", str(w.dir / "made"), "--outputs-root", str(w.root)],
         2, ("made", "cannot be read")),
    Case("preset-missing", lambda w: ["run", str(w.dir / "nope.toml")], 2, ("nope.toml", "no such preset file")),
    Case("section-not-table", preset_file("flat", "run = 3\n"), 2, ("flat.toml:1", "run", "[section] table")),
    Case("unknown-section", preset_file("sect", "[preprocesss]\nfps = 1.0\n"), 2,
         ("sect.toml:1", "preprocesss", "did you mean preprocess")),
    Case("nan-in-file", preset_file("nan", "[reimagine]\nstrength = nan\n"), 2,
         ("nan.toml:2", "reimagine.strength", "not a finite number")),
    Case("inf-in-file", preset_file("inf", "[preprocess]\nfps = inf\n"), 2,
         ("inf.toml:2", "preprocess.fps", "not a finite number")),
    Case("text-for-int", preset_file("txt", "[preprocess]\nnum_frames = 'many'\n"), 2,
         ("txt.toml:2", "preprocess.num_frames", "whole number")),
    Case("bad-list", preset_file("list", "[splat]\neval_at = [1000, 'x']\n"), 2,
         ("list.toml:2", "splat.eval_at", "list of whole numbers")),
    # --- presets: --set ----------------------------------------------------------------------
    Case("set-nan-strength", lambda w: run(w, "reimagine.strength=nan"), 2,
         ("--set", "reimagine.strength", "not a finite number")),
    Case("set-nan-fps", lambda w: run(w, "preprocess.fps=nan"), 2, ("preprocess.fps", "not a finite number")),
    Case("set-inf-fps", lambda w: run(w, "preprocess.fps=inf"), 2, ("preprocess.fps", "finite")),
    Case("set-minus-inf", lambda w: run(w, "reimagine.guidance=-inf"), 2,
         ("reimagine.guidance", "finite")),
    Case("negative-frames", lambda w: run(w, "preprocess.num_frames=-1"), 2,
         ("preprocess.num_frames", "out of range")),
    Case("fractional-frames", lambda w: run(w, "preprocess.num_frames=1.5"), 2,
         ("preprocess.num_frames", "whole number")),
    Case("unknown-pipeline", lambda w: run(w, "run.pipeline='magic'"), 2, ("run.pipeline", "'magic'", "one of")),
    Case("unknown-device", lambda w: run(w, "run.device='tpu'"), 2, ("run.device", "'tpu'")),
    Case("typo-field", lambda w: run(w, "preprocess.num_frame=3"), 2,
         ("preprocess.num_frame", "did you mean preprocess.num_frames")),
    Case("unknown-set-section", lambda w: run(w, "render.size=3"), 2, ("render.size", "unknown section")),
    Case("set-without-equals", lambda w: run(w, "preprocess.fps"), 2, ("preprocess.fps", "section.field=value")),
    Case("canny-crossed", lambda w: run(w, "reimagine.canny_low=200", "reimagine.canny_high=100"), 2,
         ("reimagine.canny_low", "above reimagine.canny_high")),
    Case("too-few-iterations", lambda w: run(w, "splat.iterations=10"), 2, ("splat.iterations", "out of range")),
    Case("number-for-bool", lambda w: run(w, "mask.grabcut=3"), 2,
         ("mask.grabcut", "true or false")),
    Case("keep-zero-trainings", lambda w: run(w, "run.keep_trainings=0"), 2, ("run.keep_trainings", "out of range")),
    # --- paths ---------------------------------------------------------------------------------
    Case("outputs-root-is-a-file", lambda w: run(w, extra=("--outputs-root", str(w.file("rootfile", "x")))), 2,
         ("run.outputs_root", "rootfile", "is a file, not a folder")),
    Case("outputs-root-under-a-file",
         lambda w: run(w, extra=("--outputs-root", str(w.file("rootfile2", "x") / "sub"))), 2,
         ("rootfile2", "is a file, not a folder")),
    Case("outputs-root-read-only", read_only_root, 1, ("{dir}/ro", "read-only")),
    Case("directory-escapes", lambda w: run(w, directory="../escape"), 2, ("run.directory", "'../escape'")),
    Case("directory-too-long", lambda w: run(w, directory="a" * 200), 2, ("run.directory", "plain folder name")),
    Case("run-folder-is-a-link-out", link_out, 2, ("linked", "resolves outside")),
    Case("input-empty", lambda w: run(w, "run.input=''"), 2, ("run.input", "is empty")),
    Case("input-missing", lambda w: run(w, f"run.input={w.dir / 'gone.mp4'}"), 2,
         ("run.input", "gone.mp4", "no such file or folder")),
    Case("input-broken-link", lambda w: run(w, f"run.input={_broken_link(w)}"), 2,
         ("run.input", "dangling.mp4", "no such file")),
    Case("only-without-upstream", lambda w: run(w, directory="fresh", extra=("--only", "sfm")), 2,
         ("sfm needs preprocess", "fresh")),
    Case("status-of-nothing", lambda w: ["status", "no-such-run", "--outputs-root", str(w.root)], 2,
         ("no-such-run", "no run folder", "runs/")),
    Case("cancel-of-nothing", lambda w: ["cancel", str(w.dir / "made"), "--outputs-root", str(w.root)], 2,
         ("made", "no run folder")),
    Case("lock-is-a-folder", lock_is_a_folder, 1, ("lockdir/.gausynth/lock", "is a folder, not a file")),
    Case("manifests-is-a-file", manifests_is_a_file, 1,
         ("✘ preprocess", "manifile/.gausynth/manifests", "is a file, not a folder")),
    Case("choose-without-reimagine", lambda w: ["choose", str(w.earlier.root), "reimagine", "2"], 1,
         ("reimagine has not finished", "earlier")),
    # --- videos --------------------------------------------------------------------------------
    Case("empty-video", lambda w: run(w, f"run.input={w.file('empty.mp4', b'')}", directory="v1"), 1,
         ("✘ preprocess", "empty.mp4", "empty (0 bytes)")),
    Case("garbage-video", lambda w: run(w, f"run.input={w.file('noise.mp4', os.urandom(4096))}", directory="v2"),
         1, ("✘ preprocess", "noise.mp4", "not a readable video")),
    Case("text-as-video", lambda w: run(w, f"run.input={w.file('notes.txt', 'hello' * 100)}", directory="v3"),
         1, ("✘ preprocess", "notes.txt")),  # ffmpeg reads text as a video: refused all the same
    Case("truncated-video",
         lambda w: run(w, f"run.input={w.file('cut.mp4', w.clip.read_bytes()[:1500])}", directory="v4"),
         1, ("✘ preprocess", "cut.mp4")),
    Case("odd-name-video", lambda w: run(w, f"run.input={_odd_name(w)}", directory="v5"), 0),
    # --- image folders -------------------------------------------------------------------------
    Case("folder-without-images", lambda w: run(w, f"run.input={_no_images(w)}", directory="f1"), 2,
         ("run.input", "only-text", "holds no images")),
    Case("corrupt-png-in-folder", lambda w: run(w, f"run.input={_corrupt_png(w)}", directory="f2"), 1,
         ("✘ preprocess", "with-bad/002.png", "not a readable image")),
    Case("subfolder-named-png", lambda w: run(w, f"run.input={_subfolder_png(w)}", directory="f3"), 0),
    Case("grey-16-bit", lambda w: run(w, f"run.input={w.images('g16', ramp(dtype=np.uint16, channels=1))}",
                                      directory="f4"), 0),
    Case("colour-16-bit", lambda w: run(w, f"run.input={w.images('c16', ramp(dtype=np.uint16))}",
                                        directory="f5"), 0),
    Case("grey-8-bit", lambda w: run(w, f"run.input={w.images('g8', ramp(channels=1))}", directory="f6"), 0),
    Case("rgba-16-bit", lambda w: run(w, f"run.input={w.images('a16', ramp(dtype=np.uint16, channels=4))}",
                                      directory="f7"), 0),
    # --- models --------------------------------------------------------------------------------
    Case("superres-missing-folder", superres_load(lambda w: str(w.dir / "no-model")), 1,
         ("upscale.model", "no-model")),
    Case("superres-broken-folder", superres_load(lambda w: str(w.file("models/sr/config.json", "{").parent)), 1,
         ("upscale.model", "models/sr", "cannot load the model")),
    Case("cutout-missing-onnx", cutout_model("/no/such/mask.onnx"), 1, ("blend.model", "mask.onnx", "no such file")),
    Case("cutout-unknown-name", cutout_model("u3net"), 1, ("blend.model", "'u3net'", "not a rembg model")),
    Case("cutout-corrupt-onnx", corrupt_onnx, 1, ("blend.model", "broken.onnx", "could not open the model")),
    Case("models-fetch-offline", lambda w: ["models", "fetch", "quick"], 1,
         ("reimagine.checkpoint", "downloads are off")),
]


def _broken_link(w: World) -> Path:
    link = w.dir / "made" / "dangling.mp4"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(w.dir / "nowhere.mp4")
    return link


def _odd_name(w: World) -> Path:
    path = w.dir / "made" / "my clip — ü.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(w.clip.read_bytes())
    return path


def _no_images(w: World) -> Path:
    folder = w.dir / "made" / "only-text"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "readme.txt").write_text("no frames here")
    return folder


def _corrupt_png(w: World) -> Path:
    folder = w.images("with-bad", ramp())
    (folder / "002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"broken" * 20)
    return folder


def _subfolder_png(w: World) -> Path:
    folder = w.images("with-subfolder", ramp())
    (folder / "extra.png").mkdir(exist_ok=True)
    return folder


# --- the corpus -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("bad-input")
    clip = make_sample(folder / "clip", SampleSpec(frames=12, width=64, height=48))
    w = World(folder, clip, folder / "runs", RunLayout(folder / "runs" / "earlier"))
    assert cli(run(w, directory="earlier")) == 0
    yield w
    if os.path.ismount(folder / "ro"):
        subprocess.run(["umount", "-l", str(folder / "ro")], check=False)


def stamps(layout: RunLayout) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(layout.root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(layout.root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def earlier_stamps(world: World) -> dict[str, tuple[int, int]]:
    return stamps(world.earlier)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_ends_in_one_line(case: Case, world: World, earlier_stamps, capsys,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from gausynth_engine._stage import StageError

    monkeypatch.chdir(world.dir)
    made = case.make(world)
    says = [s.replace("{dir}", str(world.dir)) for s in case.says if s]
    capsys.readouterr()
    if callable(made):  # a library call: a StageError of one line, or nothing
        if case.code == 0:
            made()
            return
        with pytest.raises(StageError) as raised:
            made()
        lines = [str(raised.value)]
        assert "\n" not in lines[0]
    else:
        code = cli(made)
        out, err = capsys.readouterr()
        assert code == case.code, (out, err)
        assert "Traceback" not in out + err
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("warning:", "["))]
        lines += [ln for ln in out.splitlines() if ln.startswith("✘")]
        if case.code == 0:
            assert not lines, (out, err)
        else:
            assert len(lines) == 1, (out, err)
    for fragment in says:
        assert fragment in lines[0], (fragment, lines[0])
    assert stamps(world.earlier) == earlier_stamps  # nothing of the earlier run changed


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


FLOATS = [f.path for f in schema() if f.kind is float]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_every_float_field_refuses_non_finite_numbers(value: str) -> None:
    for path in FLOATS:
        with pytest.raises(PresetError) as raised:
            parse_preset("", "test", [f"{path}={value}"])
        assert str(raised.value).count("\n") == 0
        assert path in str(raised.value) and "not a finite number" in str(raised.value)
