"""blend: fill the reimagined frames into the original object's silhouette (the 2D route).

The original's masks come from the mask stage (`orig_transparent/`, RGBA at the SfM frames'
size), cut to the diffusion square at the recorded `sd_box`. Outputs, one file per frame:
- `ebsynth_transparent/`: the propagated reimagined frame (RGBA, diffusion size) whose alpha is
  the original's mask times its own: the reimagined object seen through the original outline.
- `blend_transparent/`: RGB over white at the diffusion size: the reimagined object inside the
  original silhouette, holes filled from the original (upscale brings it to the SfM size).
The reimagined frame's own mask needs the rembg model (`blend.model`); without its weights the
original silhouette alone is used, and the log says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._media import frame_workers, in_order
from .._params import param
from .._stage import Stage, StageContext, StageError
from ..preview_timing import record_fps
from ._common import off_without_reimagine

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np


@dataclass(frozen=True)
class Params:
    model: str = param("u2net", "Background-removal model: a rembg model name or a local .onnx file.",
                       choices=("u2net", "isnet-general-use", "birefnet-general",
                                "birefnet-general-lite", "bria-rmbg"), open_choices=True)
    clip_model: str = param("openai/clip-vit-base-patch32",
                            "CLIP model for the text–image score of the 2D stages (a Hugging Face "
                            "id or a local folder); skipped when its weights are not on this machine.")


# The three comparisons blend scores: what each compares (its output folder, its reference).
OUTPUTS = {"propagate": "ebsynth_all", "propagate_cutout": "ebsynth_transparent", "blend": "blend_transparent"}
REFERENCES = {"propagate": "filtered_frames_sd (original frames, uncut)",
              "propagate_cutout": "original cut-out at the diffusion size",
              "blend": "original cut-out at the diffusion size"}


class PreviewVideo:
    """Encodes frames into new_videos/<name>.mp4 in a thread as the stage makes them, in order
    (the frames written to PNG are lossless, so this is the video that reading them back gives)."""

    def __init__(self, ctx: StageContext, name: str, fps: float) -> None:
        import queue
        import threading

        from .._media import write_video

        self.ctx, self.path = ctx, ctx.out.video(name)
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._error: BaseException | None = None

        def frames() -> Iterator[np.ndarray]:
            while (frame := self._queue.get()) is not None:
                yield frame

        def encode() -> None:
            try:
                write_video(self.path, frames(), fps=fps)
            except BaseException as e:  # noqa: BLE001 - raised again in the stage's thread
                self._error = e
                while self._queue.get() is not None:  # let the stage finish putting its frames
                    pass

        self._thread = threading.Thread(target=encode, name=f"video-{name}", daemon=True)
        self._thread.start()

    def add(self, frame: np.ndarray) -> None:
        self._queue.put(frame)

    def __enter__(self) -> PreviewVideo:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and kind is None:
            raise self._error
        if kind is None:
            self.ctx.artifact(self.path, "video")


def write_preview(ctx: StageContext, name: str, files: list[Path], fps: float) -> None:
    """Encodes the written frames `files` into new_videos/<name>.mp4, reading them back one by one."""
    from .._media import read_image, write_video

    write_video(ctx.out.video(name), (read_image(f) for f in files), fps=fps)
    ctx.artifact(ctx.out.video(name), "video")


def _frame_pairs(ctx: StageContext) -> list[str]:
    """Gives the frame names, checking that every folder the stage reads has each of them."""
    from .._media import list_images

    names = [f.name for f in list_images(ctx.layout.filtered_frames_sd)]
    if not names:
        raise StageError(f"{ctx.layout.filtered_frames_sd}: no frames; rerun preprocess")
    for folder in (ctx.layout.ebsynth_all,):
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise StageError(f"{folder / missing[0]}: missing ({len(missing)} of {len(names)} frames); "
                             f"every frame of filtered_frames_sd needs one of the same name there")
    return names


def run(ctx: StageContext) -> None:
    from functools import partial

    import numpy as np

    from .. import metrics2d
    from .._media import read_image, write_image
    from ..compositing import fill_silhouette, on_white, rgba
    from ..framing import box_of, cut_square
    from .mask import choose_method

    p: Params = ctx.params
    names = _frame_pairs(ctx)
    method, why = choose_method(ctx.preset.mask, p.model)
    session = None
    if method == "model":
        from ..cutout import MaskSession

        started = time.perf_counter()
        session = MaskSession(p.model, ctx.device, ctx.log)  # one session for every frame
        ctx.record(load_seconds=round(time.perf_counter() - started, 3))
    else:
        ctx.log(f"the reimagined frames keep the original silhouette ({why})")
    record = ctx.upstream("preprocess").record
    prompt = ctx.preset.reimagine.prompt
    scores, skipped = metrics2d.learned_scorers(ctx, p.clip_model, prompt)
    resized_note = False
    masked = ctx.layout.orig_transparent.is_dir()
    if not masked:
        ctx.log("no object masks (mask.method = 'off'): the whole frame is the object", "warning")

    def read(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gives (orig [S, S, 3], its alpha [S, S], reimagined [S, S, 3]) of one frame."""
        nonlocal resized_note
        orig = read_image(ctx.layout.filtered_frames_sd / name)[..., :3]
        side = orig.shape[0]
        if masked:
            cut = read_image(ctx.layout.orig_transparent / name)
            if cut.shape[2] != 4:
                raise StageError(f"{ctx.layout.orig_transparent / name}: no alpha channel; rerun mask")
            box = box_of(record, cut.shape[1], cut.shape[0])
            alpha = cut_square(cut[..., 3], box, side, fill=0).astype(np.float32) / 255.0
        else:
            alpha = np.ones(orig.shape[:2], np.float32)
        reim = read_image(ctx.layout.ebsynth_all / name)[..., :3]
        if reim.shape[:2] != orig.shape[:2]:
            import cv2

            if not resized_note:
                ctx.log(f"ebsynth_all frames are {reim.shape[1]}×{reim.shape[0]}, not the "
                        f"diffusion size {side}×{side}: resizing them to line up", "warning")
                resized_note = True
            reim = cv2.resize(reim, (side, side), interpolation=cv2.INTER_AREA)
        return orig, alpha, reim

    def finish(name: str, orig: np.ndarray, alpha: np.ndarray, reim: np.ndarray,
               alpha_reim: np.ndarray) -> tuple[str, dict[str, dict], dict[str, np.ndarray]]:
        """Composites, writes and scores one frame (in a worker thread); gives its rows."""
        cut_reim = rgba(reim, alpha * alpha_reim)
        blended = fill_silhouette(orig, reim, alpha, alpha_reim)
        write_image(ctx.out.ebsynth_transparent / name, cut_reim)
        write_image(ctx.out.blend_transparent / name, blended)
        orig_cut = on_white(orig, alpha)
        reim_cut = on_white(reim, alpha * alpha_reim)
        rows = {"propagate": scores.measure(orig, reim), "propagate_cutout": scores.measure(orig_cut, reim_cut),
                "blend": scores.measure(orig_cut, blended)}
        return name, rows, {"original": orig_cut, "propagate": reim_cut, "blend": blended}

    def jobs() -> Iterator[Callable[[], tuple]]:
        for name in names:  # reading and the mask model here, in order; the rest in threads
            orig, alpha, reim = read(name)
            alpha_reim = session.mask(reim) if session is not None else np.ones_like(alpha)
            yield partial(finish, name, orig, alpha, reim, alpha_reim)

    fps = record_fps(record, len(names), fallback=30.0)
    with PreviewVideo(ctx, "blend_transparent", fps) as video:
        for n, (name, rows, shown) in enumerate(in_order(jobs(), frame_workers())):
            for comp, row in rows.items():
                scores.add(comp, name, row, output=OUTPUTS[comp], reference=REFERENCES[comp])
            ctx.metric("blend.frame_ssim", rows["blend"]["ssim"], step=n)
            scores.clip_score(name, shown)
            video.add(shown["blend"])
            ctx.progress(n + 1, len(names), "frames")
    ctx.record(model=p.model if session is not None else None,
               providers=session.providers if session is not None else [], frames=names)
    metrics2d.publish(ctx, "blend", scores, skipped)


STAGE = Stage(
    id="blend",
    title="Cut out and blend",
    section="blend",
    after=("preprocess", "propagate", "mask"),
    outputs=("ebsynth_transparent", "blend_transparent", "new_videos/blend_transparent.mp4",
             "metrics.json"),
    version=2,
    run=run,
    reads=("mask.method",),
    gpu=True,
    off_when=off_without_reimagine,
    params=Params,
)
