"""Side by side: the reimagined and the original 3DGS of one run, as a video and a table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

VARIANTS = ("reim", "orig")


def latest_run(gs: Path, variant: str) -> Path | None:
    """Gives the newest finished `gs/{variant}_{iters}-{stamp}/` (one with results.json)."""
    if not Path(gs).is_dir():
        return None
    done = [p for p in Path(gs).glob(f"{variant}_*-*") if (p / "results.json").is_file()]
    return max(done, key=lambda p: p.name.split("-", 1)[1], default=None)


def summary(folder: Path) -> dict[str, Any]:
    """Gives the last evaluation of one training: step, PSNR, SSIM, number of Gaussians."""
    evals = json.loads((folder / "results.json").read_text(encoding="utf-8"))["evaluations"]
    last = max(evals.values(), key=lambda e: e["step"])
    return {"folder": folder.name, "step": last["step"], "psnr": last.get("psnr"),
            "ssim": last.get("ssim"), "num_gaussians": last.get("num_gaussians")}


def table(rows: dict[str, dict[str, Any]]) -> str:
    """Gives a Markdown table of the variants' metrics."""
    def num(v: Any, fmt: str) -> str:
        return "—" if v is None else format(v, fmt)

    lines = ["| variant | folder | step | test PSNR (dB) | test SSIM | Gaussians |",
             "| --- | --- | --- | --- | --- | --- |"]
    for variant, r in rows.items():
        lines.append(f"| {variant} | {r['folder']} | {r['step']} | {num(r['psnr'], '.2f')} | "
                     f"{num(r['ssim'], '.4f')} | {r['num_gaussians']} |")
    return "\n".join(lines) + "\n"


def side_by_side(left: Path, right: Path) -> Iterator[np.ndarray]:
    """Yields [H, 2W, 3] frames: the renders both folders share by name, left | right."""
    import cv2

    from .._media import list_images, read_image

    names = {p.name for p in list_images(right)}
    for path in list_images(left):
        if path.name in names:
            a, b = read_image(path)[..., :3], read_image(right / path.name)[..., :3]
            if b.shape != a.shape:
                b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
            yield np.concatenate([a, b], axis=1)


def compare(reim: Path, orig: Path, video: Path, table_path: Path, fps: float) -> int:
    """Writes the side-by-side video (reimagined | original) and the metrics table; gives the
    number of frames in the video."""
    from .._media import write_video

    rows = {"reim": summary(reim), "orig": summary(orig)}
    table_path.parent.mkdir(parents=True, exist_ok=True)
    table_path.write_text(table(rows), encoding="utf-8")
    (table_path.with_suffix(".json")).write_text(json.dumps(rows, indent=1), encoding="utf-8")

    def renders(folder: Path) -> Path:
        return max(folder.glob("renders_*"), key=lambda p: int(p.name.split("_")[1]))

    return write_video(video, side_by_side(renders(reim), renders(orig)), fps)
