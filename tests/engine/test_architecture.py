"""The shape of the house holds: the app sees only the engine's public face, imports go one way."""

from __future__ import annotations

import ast
import dataclasses
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

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


def test_no_import_circle_inside_the_engine() -> None:
    # Every import counts (at module level or inside a function), except under TYPE_CHECKING.
    import grimp

    graph = grimp.build_graph("gausynth_engine", exclude_type_checking_imports=True)
    edges = {m: {i for i in graph.find_modules_directly_imported_by(m) if i.startswith("gausynth_engine")}
             for m in graph.modules if m.startswith("gausynth_engine")}
    circles = []
    for start in sorted(edges):
        # a circle through `start`: `start` reachable again from one of its imports
        seen, todo, back = set(), list(edges[start]), {}
        while todo:
            m = todo.pop()
            if m in seen:
                continue
            seen.add(m)
            for i in edges.get(m, ()):
                back.setdefault(i, m)
                todo.append(i)
        if start in seen:
            path, m = [start], back[start]
            while m != start and m not in path:
                path.append(m)
                m = back.get(m, start)
            circles.append(" → ".join([start, *reversed(path[1:]), start]))
    assert circles == [], "import circles:\n" + "\n".join(circles[:5])


# --- stages declare themselves -------------------------------------------------------------------
def _stage(sid: str, after: tuple[str, ...] = (), outputs: tuple[str, ...] = ("out",), **kw):
    from gausynth_engine._stage import Stage

    return Stage(id=sid, title=sid, section=sid, after=after, outputs=outputs, version=1, run=None, **kw)


def test_the_run_order_is_the_list_order_with_each_stage_after_its_upstreams() -> None:
    from gausynth_engine.stages import DECLARED, STAGES, run_order

    a, b, c, d = _stage("a"), _stage("b", ("c",)), _stage("c", ("a",)), _stage("d", ("a",))
    assert [s.id for s in run_order((a, b, c, d))] == ["a", "c", "b", "d"]
    with pytest.raises(ValueError, match="wait on each other"):
        run_order((_stage("x", ("y",)), _stage("y", ("x",))))
    assert [s.id for s in STAGES] == [s.id for s in run_order(DECLARED)]
    assert [s.id for s in STAGES] == ["preprocess", "sheet", "reimagine", "propagate", "sfm", "mask", "blend",
                                      "upscale", "splat_orig", "transfer", "sync", "splat_reim"]


def test_the_preset_schema_is_built_from_the_stage_declarations() -> None:
    from gausynth_engine import ALL_SECTIONS, Preset, schema
    from gausynth_engine.stages import DECLARED, EXTRA_SECTIONS, SECTIONS, _sections

    assert list(SECTIONS) == list(dict.fromkeys(s.section for s in DECLARED)) + list(EXTRA_SECTIONS)
    assert all(SECTIONS[s.section] is s.params for s in DECLARED)
    assert [f.name for f in dataclasses.fields(Preset)] == list(ALL_SECTIONS)
    assert {f.section for f in schema()} == set(ALL_SECTIONS)
    with pytest.raises(TypeError, match="declares no params"):
        _sections((_stage("lonely"),))


def test_a_stage_reads_only_its_upstreams_through_its_context(tmp_path: Path) -> None:
    from gausynth_engine import RunLayout, parse_preset
    from gausynth_engine._manifest import write_json_atomic
    from gausynth_engine._stage import StageContext, StageError
    from gausynth_engine.stages import BY_ID, upstream_of

    layout = RunLayout(tmp_path / "run")
    write_json_atomic(layout.manifest("preprocess"), {"fingerprint": "abc", "outputs": ["filtered_frames_sd"],
                                                      "record": {"fps": 24.0, "input_frames": 48}})
    assert upstream_of("upscale") >= {"blend", "propagate", "reimagine", "sheet", "preprocess", "mask", "sfm"}
    ctx = StageContext(BY_ID["upscale"], parse_preset("", "t"), layout, layout.staging_for("upscale"),
                       lambda e: None, "cpu", upstreams=upstream_of("upscale"))
    pre = ctx.upstream("preprocess")  # upstream of blend, so of upscale too
    assert pre.ran and pre.fingerprint == "abc" and pre.record == {"fps": 24.0, "input_frames": 48}
    assert pre.outputs == ("filtered_frames_sd",)
    assert not ctx.upstream("blend").ran and ctx.upstream("blend").record == {}
    with pytest.raises(StageError, match="upscale reads splat_orig, which is not upstream of it"):
        ctx.upstream("splat_orig")


def test_declared_outputs_are_enforced(tmp_path: Path) -> None:
    from gausynth_engine._stage import StageError, check_outputs

    stage = _stage("s", outputs=("frames", "new_videos/s.mp4"), may_write=("exports",))
    staged = tmp_path / "staged"
    (staged / "frames").mkdir(parents=True)
    (staged / "frames" / "0000.png").write_bytes(b"png")
    with pytest.raises(StageError, match="did not write its declared output new_videos/s.mp4"):
        check_outputs(stage, staged)
    (staged / "new_videos").mkdir()
    (staged / "new_videos" / "s.mp4").write_bytes(b"mp4")
    (staged / "exports" / "empty").mkdir(parents=True)  # named, never written: nothing
    check_outputs(stage, staged)
    (staged / "exports" / "model.ply").write_bytes(b"ply")  # allowed: may_write
    check_outputs(stage, staged)
    (staged / "new_videos" / "other.mp4").write_bytes(b"mp4")
    with pytest.raises(StageError, match="wrote new_videos/other.mp4, which it does not declare"):
        check_outputs(stage, staged)
