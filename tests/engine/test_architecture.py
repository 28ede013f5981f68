"""The shape of the house holds: the app sees only the engine's public face, imports go one way."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import gausynth_engine

ROOT = Path(__file__).resolve().parents[2]


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]


def test_the_import_contracts_hold() -> None:
    # lint-imports reads [tool.importlinter] in pyproject.toml; from the repo root it sees this tree.
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "broken" in out.stdout and " 0 broken" in out.stdout


def test_the_app_contract_names_every_private_module() -> None:
    # import-linter has no `_*` wildcard, so the list is spelled out; a new private module joins it.
    private = {m.name for m in pkgutil.walk_packages(gausynth_engine.__path__, "gausynth_engine.")
               if any(p.startswith("_") and not p.startswith("__") for p in m.name.split(".")[1:])}
    app = next(c for c in _contracts() if c["source_modules"] == ["gausynth_tui"])
    listed = set(app["forbidden_modules"])
    assert private - listed == set(), "add these to the app's forbidden_modules in pyproject.toml"
    assert {"gausynth_engine.cli", "gausynth_engine.stages"} <= listed


def test_the_app_imports_from_the_engine_only_names_in_all() -> None:
    used: set[str] = set()
    for path in (ROOT / "gausynth_tui").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "gausynth_engine":
                used |= {a.name for a in node.names}
    assert used, "the app imports nothing from the engine?"
    assert used - set(gausynth_engine.__all__) == set()
    # and every public name is a real thing of the engine, not a module that happens to be loaded
    for name in gausynth_engine.__all__:
        assert not isinstance(getattr(gausynth_engine, name), type(sys)), name
