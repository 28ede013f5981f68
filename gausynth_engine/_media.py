"""Reading videos and image folders, writing frames and H.264 previews (no system ffmpeg), and
the threads that decode, encode and score frames beside the work (`in_order`)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ._errors import StageError

if TYPE_CHECKING:
    import numpy as np

T = TypeVar("T")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class InputInfo:
    """What the run's input holds."""

    path: Path
    kind: str  # "video" or "images"
    frame_count: int
    fps: float | None  # None for an image folder
    width: int
    height: int


def natural_key(name: str) -> list[object]:
    """Gives a sort key that orders 'img2' before 'img10'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_images(folder: Path) -> list[Path]:
    """Gives the image files of `folder` in natural order."""
    files = [p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(files, key=lambda p: natural_key(p.name))


def probe_input(path: Path) -> InputInfo:
    """Gives the frame count, rate and size of a video file or an image folder."""
    import cv2

    path = Path(path)
    if not path.exists():
        raise StageError(f"{path}: no such file or folder (run.input)")
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise StageError(f"{path}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        first = read_image(files[0])
        return InputInfo(path, "images", len(files), None, first.shape[1], first.shape[0])
    if path.stat().st_size == 0:
        raise StageError(f"{path}: the file is empty (0 bytes)")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise StageError(f"{path}: not a readable video (OpenCV could not open it)")
        fps = cap.get(cv2.CAP_PROP_FPS) or None
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        count = 0
        while cap.grab():  # the header's frame count is often wrong: count what decodes
            count += 1
    finally:
        cap.release()
    if count == 0 or width == 0:
        raise StageError(f"{path}: the video has no decodable frames")
    return InputInfo(path, "video", count, fps, width, height)


def read_frames(info: InputInfo, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Yields (index, RGB uint8 [H, W, 3]) for the wanted frame indices, in increasing order."""
    import cv2

    wanted = sorted(set(indices))
    if info.kind == "images":
        files = list_images(info.path)
        for i in wanted:
            yield i, read_image(files[i])
        return
    cap = cv2.VideoCapture(str(info.path))
    try:
        pos = 0
        for i in wanted:
            while pos < i:
                if not cap.grab():
                    raise StageError(f"{info.path}: the video ends at frame {pos}, before frame {i}")
                pos += 1
            ok, bgr = cap.read()
            pos += 1
            if not ok:
                raise StageError(f"{info.path}: frame {i} could not be decoded")
            yield i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def read_image(path: Path) -> np.ndarray:
    """Gives an image as RGB uint8 [H, W, 3], or RGBA [H, W, 4] when the file has alpha.

    8- and 16-bit, grey, grey+alpha, colour and colour+alpha files are all converted; anything
    else (or a file that is not an image) raises a StageError naming the file.
    """
    import cv2
    import numpy as np

    try:
        data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        raise StageError(f"{path}: not a readable image ({str(e).strip().splitlines()[-1]})") from None
    if data is None:
        what = "a folder, not an image" if Path(path).is_dir() else "not a readable image"
        raise StageError(f"{path}: {what}")
    if data.dtype == np.uint16:
        data = (data >> 8).astype(np.uint8)  # the high byte: exact for 8-bit data stored as 16
    elif data.dtype in (np.float32, np.float64):
        data = (np.clip(np.nan_to_num(data), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif data.dtype != np.uint8:
        raise StageError(f"{path}: {data.dtype} pixels are not supported; accepted: 8- or 16-bit "
                         "integer or float images")
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        return cv2.cvtColor(data, cv2.COLOR_GRAY2RGB)
    if data.ndim != 3 or data.shape[2] not in (2, 3, 4):
        raise StageError(f"{path}: an image of shape {data.shape} is not supported; accepted: grey, "
                         "RGB or RGBA")
    if data.shape[2] == 2:  # grey + alpha
        return np.dstack([data[..., 0]] * 3 + [data[..., 1]])
    code = cv2.COLOR_BGRA2RGBA if data.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(data, code)


def write_image(path: Path, image: np.ndarray) -> None:
    """Writes RGB [H, W, 3] or RGBA [H, W, 4] uint8 to `path` (format from the suffix)."""
    import cv2
    import numpy as np

    code = cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(image), code)):
        from ._errors import disk_nearly_full

        if disk_nearly_full(Path(path).parent):
            raise StageError(f"disk full while writing {path}; free some space and rerun")
        raise StageError(f"{path}: could not write the image (not writable?)")


def frame_name(index: int, count: int, suffix: str = ".png") -> str:
    """Gives the zero-padded file name of frame `index` out of `count` (at least 4 digits)."""
    return f"{index:0{max(4, len(str(count - 1)))}d}{suffix}"


def _opaque(frame: np.ndarray) -> np.ndarray:
    """Gives an RGB frame; RGBA is shown over white, as the cut-outs are meant to be seen."""
    from .compositing import flatten

    return flatten(frame)


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Encodes RGB(A) uint8 frames to an H.264 mp4 with PyAV; gives the number of frames written.

    Without PyAV (a bare GPU box) it falls back to OpenCV's MPEG-4 Part 2 encoder and says so.
    """
    import numpy as np

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        import av
    except ImportError:
        return _write_video_opencv(path, frames, fps)
    count = 0
    with av.open(str(path), "w") as container:
        stream = None
        for frame in frames:
            frame = _opaque(frame)
            if stream is None:
                stream = container.add_stream("libx264", rate=max(1, round(fps)))
                stream.height, stream.width = (frame.shape[0] // 2) * 2, (frame.shape[1] // 2) * 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "20", "preset": "veryfast"}
            frame = np.ascontiguousarray(frame[: stream.height, : stream.width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
            count += 1
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return count


def _write_video_opencv(path: Path, frames: Iterable[np.ndarray], fps: float) -> int:
    import sys

    import cv2

    print(f"PyAV is not installed: {path} is MPEG-4 Part 2, not H.264 (pip install av)", file=sys.stderr)
    writer, count = None, 0
    for frame in frames:
        frame = _opaque(frame)
        if writer is None:
            size = (frame.shape[1], frame.shape[0])
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), max(1.0, fps), size)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        count += 1
    if writer is not None:
        writer.release()
    return count


def frame_workers() -> int:
    """Gives how many threads finish frames beside the model (PNG codecs and SSIM release the GIL)."""
    return max(1, min(6, (os.cpu_count() or 2) - 1))


def in_order(jobs: Iterable[Callable[[], T]], workers: int) -> Iterator[T]:
    """Runs the jobs in `workers` threads, at most 2 × workers ahead, and yields their results in
    the jobs' order. `jobs` is consumed lazily: whatever makes the next job (the model on the
    GPU) runs while the threads write and score the frames before it."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers, thread_name_prefix="frames") as pool:
        pending: deque = deque()
        for job in jobs:
            pending.append(pool.submit(job))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
