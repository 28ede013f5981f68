"""The engine stays headless and its public surface stays honest."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import gausynth_engine


def test_the_engine_never_imports_textual() -> None:
    modules = [m.name for m in pkgutil.walk_packages(gausynth_engine.__path__, "gausynth_engine.")
               if not m.name.endswith("__main__")]
    code = ("import sys, importlib\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'gausynth_tui'))\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the engine imported {out.stdout.strip()}"


def test_planning_imports_no_heavy_library() -> None:
    code = ("import sys, gausynth_engine, gausynth_engine.cli\n"
            "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'cv2', 'diffusers', 'pycolmap', 'rembg', 'transformers', 'gsplat'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_all_lists_exactly_what_exists() -> None:
    for name in gausynth_engine.__all__:
        assert hasattr(gausynth_engine, name), name
    public = {n for n in vars(gausynth_engine) if not n.startswith("_")}
    assert public - set(gausynth_engine.__all__) <= {"stages", "annotations"} | {
        n for n in public if isinstance(getattr(gausynth_engine, n), type(importlib))}
