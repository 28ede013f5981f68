"""The viewer bench's verdict: a lead reads PASS/FAIL off a confidence interval of the paired
viewed/alone ratios, not off how far single alone phases drift apart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))


def phases(alone: list[float], viewed: list[float]) -> list[dict]:
    """A B A B … A: len(alone) == len(viewed) + 1."""
    rows = []
    for a, b in zip(alone[:-1], viewed, strict=True):
        rows += [{"phase": "A", "its": a, "splats": 0}, {"phase": "B", "its": b, "splats": 5}]
    return rows + [{"phase": "A", "its": alone[-1], "splats": 0}]


def test_a_steady_viewer_passes_even_when_alone_phases_drift_apart() -> None:
    """The H200's clocks swing the alone phases by ±15 % (100 ↔ 120 it/s), while each viewed phase
    sits at 0.5 % below the mean of its two neighbours: the cost is clearly under 3 %."""
    import viewer

    alone = [100.0, 120.0] * 6 + [100.0]
    viewed = [0.995 * (alone[i] + alone[i + 1]) / 2 for i in range(12)]
    assert viewer.verdict(viewer.compare(phases(alone, viewed), "B")) == "PASS"


def test_a_viewer_that_costs_ten_percent_fails_and_a_noisy_one_is_inconclusive() -> None:
    import viewer

    alone = [100.0] * 13
    costly = [90.0, 91.0, 89.0, 90.5, 89.5, 90.0, 91.0, 89.0, 90.0, 90.0, 90.5, 89.5]
    assert viewer.verdict(viewer.compare(phases(alone, costly), "B")) == "FAIL"
    noisy = [85.0, 110.0, 90.0, 105.0, 88.0, 108.0]
    assert viewer.verdict(viewer.compare(phases(alone[:7], noisy), "B")).startswith("inconclusive")


def test_a_saved_run_is_scored_again_from_its_printed_json(tmp_path: Path) -> None:
    """`--score LOG` reads the JSON line a finished run printed and gives the verdict again."""
    alone = [100.0, 120.0] * 4 + [100.0]
    viewed = [0.99 * (alone[i] + alone[i + 1]) / 2 for i in range(8)]
    log = tmp_path / "viewer.log"
    result = {"device": "cuda", "gaussians": 273566, "size": 512, "every_s": 2.0, "phase_s": 8.0,
              "phases": phases(alone, viewed), "viewed": {"thread_ms_per_snapshot": 0.57},
              "snapshot_bytes": 15319952}
    log.write_text("  A alone 100 it/s\n" + json.dumps(result) + "\n", encoding="utf-8")
    done = subprocess.run([sys.executable, str(BENCH / "viewer.py"), "--score", str(log)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert "PASS" in last and "at most 1.0 % at 95 %" in last
