"""What a run made, in a few lines: test metrics, the PLY, renders and videos, what to do next.

Read from the run folder alone (splat manifests, the standard layout), so the CLI prints it when
a run ends and every viewer (the app's board, `gausynth status`) shows the same card.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ._journal import RunView
from ._layout import RunLayout
from ._manifest import read_manifest

SPLAT_STAGES = (("splat_reim", "reimagined"), ("splat_orig", "original"))


@dataclass(frozen=True)
class Trained:
    """One finished 3DGS training of the run."""

    stage: str
    label: str  # "reimagined" or "original"
    psnr: float | None  # dB on the held-out test views
    ssim: float | None
    ply: Path | None
    renders: Path | None
    object_psnr: float | None = None  # dB on the object's pixels alone (masked trainings)


@dataclass(frozen=True)
class ResultCard:
    """The facts of the card; `lines()` words them."""

    root: Path
    status: str
    trained: list[Trained] = field(default_factory=list)
    videos: list[Path] = field(default_factory=list)
    failed: str = ""  # "stage: error" of the failure that stopped the run

    def lines(self, show=str) -> list[str]:
        """Gives the card's lines; `show(path)` words the run folder (a viewer may shorten it)."""
        root = show(self.root)
        lines = [f"── result: {self.root.name} ({self.status}) ──"]
        for t in self.trained:
            metrics = " · ".join(m for m in (f"PSNR {t.psnr:.2f} dB" if t.psnr is not None else "",
                                             f"SSIM {t.ssim:.3f}" if t.ssim is not None else "",
                                             f"object {t.object_psnr:.2f} dB"
                                             if t.object_psnr is not None else "") if m)
            lines.append(f"3DGS {t.label}: {metrics or 'no test metrics (no test views)'}")
            if t.ply is not None:
                lines.append(f"  PLY      {self._short(t.ply)}")
            if t.renders is not None:
                lines.append(f"  renders  {self._short(t.renders)}/")
        if self.videos:
            lines.append("videos   " + ", ".join(self._short(v) for v in self.videos))
        if self.failed:
            lines.append(f"failed   {self.failed}")
        if not self.trained and not self.videos and not self.failed:
            lines.append("nothing made yet")
        lines.append(f"folder   {root}")
        if self.status == "failed":
            lines.append(f"next     gausynth status {root}   (the error in full), then run again")
        elif self.status == "running":
            lines.append(f"next     gausynth watch {root}   or   gausynth attach {root}")
        else:
            lines.append(f"next     gausynth attach {root}   (board, previews, training curves)")
        return lines

    def _short(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def read_card(layout: RunLayout, view: RunView | None = None) -> ResultCard:
    """Gives the card of a run folder (its journal is read when `view` is not given)."""
    view = view if view is not None else RunView.from_journal(layout.journal)
    trained = []
    for stage, label in SPLAT_STAGES:
        record = (read_manifest(layout, stage) or {}).get("record", {})
        if not record.get("folder"):
            continue
        folder = layout.root / record["folder"]
        trained.append(Trained(stage, label, record.get("psnr"), record.get("ssim"), _latest_ply(folder),
                               _latest(folder.glob("renders_*")), record.get("object_psnr")))
    videos = sorted(layout.new_videos.glob("*.mp4")) if layout.new_videos.is_dir() else []
    failed = next((f"{s.id}: {s.error}" for s in view.stages.values()
                   if s.state == "failed" and s.error and not s.error.startswith("not run: upstream")), "")
    return ResultCard(layout.root, view.status, trained, videos, failed)


def result_card(layout: RunLayout, view: RunView | None = None) -> str:
    """Gives the card as text, a handful of lines (what the CLI prints when a run ends)."""
    return "\n".join(read_card(layout, view).lines())


def _latest_ply(folder: Path) -> Path | None:
    plys = [p for p in folder.glob("point_cloud/iteration_*/point_cloud.ply")]
    return max(plys, key=lambda p: _step(p.parent.name)) if plys else None


def _latest(paths) -> Path | None:
    found = [p for p in paths if p.is_dir()]
    return max(found, key=lambda p: _step(p.name)) if found else None


def _step(name: str) -> int:
    tail = name.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else -1
