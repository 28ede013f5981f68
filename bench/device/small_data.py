"""Writes small copies of the real sets into .data/ (git-ignored) so that they travel to the GPU
device machine with the bundles (.data/ is in .gitignore): plush-dog's 102 photos at 1000 px JPEG q90 (EXIF kept) and its
reference intrinsics, kermit as it is (0.5 MB), the apple video as it is (1.2 MB).

    python bench/device/small_data.py [--side 1000] [--quality 90] [--sets plush-dog kermit apple-video]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"


def shrink_photos(source: Path, dest: Path, side: int, quality: int) -> int:
    """Writes every photo of source into dest with its long side at most `side`; gives bytes."""
    from PIL import Image

    dest.mkdir(parents=True, exist_ok=True)
    total = 0
    for photo in sorted(source.iterdir()):
        if photo.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        with Image.open(photo) as im:
            scale = min(1.0, side / max(im.size))
            size = (round(im.width * scale), round(im.height * scale))
            small = im.convert("RGB").resize(size, Image.Resampling.LANCZOS) if scale < 1 else im.convert("RGB")
            out = dest / f"{photo.stem}.jpg"
            small.save(out, quality=quality, exif=im.info.get("exif", b""))
        total += out.stat().st_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=1000)
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--sets", nargs="+", default=["plush-dog", "kermit", "apple-video"])
    args = parser.parse_args()
    data = ROOT / ".data"
    for name in args.sets:
        src = SHARED / name
        if name == "plush-dog":
            size = shrink_photos(src / "images", data / name / "images", args.side, args.quality)
            shutil.copytree(src / "reference", data / name / "reference", dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.ply"))
        else:
            shutil.copytree(src, data / name, dirs_exist_ok=True)
            size = sum(p.stat().st_size for p in (data / name).rglob("*") if p.is_file())
        print(f"{data / name}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
