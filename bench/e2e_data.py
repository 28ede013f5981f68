"""Prepares the end-to-end bench's data: a 48-frame plush-dog turn-around in .data/ (git-ignored).

The device machine has no ../shared, so the frames travel with the checkout (carry ".data").
The frames are those the preprocess stage would pick from all 102 photos (evenly over the
rings), kept at their 1500×1000 size and re-encoded as JPEG (~8 MB for 48).

    python bench/e2e_data.py [--frames 48] [--quality 90] [--dest .data/plush-dog-48]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SOURCE = ROOT.parent / "shared" / "data" / "plush-dog"


def prepare(source: Path, dest: Path, frames: int, quality: int) -> list[Path]:
    """Writes `frames` evenly sampled photos of source/images into dest; gives the files written."""
    from PIL import Image

    from gausynth_engine.stages.preprocess import sample_indices

    images = sorted(p for p in (source / "images").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if len(images) < frames:
        raise SystemExit(f"{source / 'images'}: {len(images)} images, fewer than --frames {frames}")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    written = []
    for i in sample_indices(len(images), frames):
        out = dest / f"{images[i].stem}.jpg"
        Image.open(images[i]).convert("RGB").save(out, quality=quality)
        written.append(out)
    if (source / "PROVENANCE.md").exists():  # the licence travels with the copy
        shutil.copy(source / "PROVENANCE.md", dest.parent / f"{dest.name}.PROVENANCE.md")
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=SOURCE)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--dest", type=Path, default=ROOT / ".data" / "plush-dog-48")
    args = ap.parse_args()
    if not (args.source / "images").is_dir():
        raise SystemExit(f"{args.source / 'images'}: not found (the shared data sits beside the checkout)")
    files = prepare(args.source, args.dest, args.frames, args.quality)
    size = sum(f.stat().st_size for f in files)
    print(f"{len(files)} frames in {args.dest} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
