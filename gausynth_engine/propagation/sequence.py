"""Carrying restyled key frames to every frame of a clip: two keys per frame, blended by trust.

The clip is cut into segments between neighbouring keys (cyclic: the last segment runs from the
last key round to key 0). Inside a segment each frame gets the earlier key carried forward and
the later key carried backward along chained optical flow; they are blended by temporal
distance times per-pixel trust (forward–backward flow consistency along the chain, and how
well the original key frame carried the same way matches the frame); where neither is trusted
the frame's own picture, recoloured like the keys (Reinhard Lab transfer), fills in.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .chain import Chain
from .colour import ColourTransfer, recolour
from .flow import METHODS, gray, pair_flows


@dataclass(frozen=True)
class Segment:
    """Unwrapped positions first..last (inclusive; position p is frame p mod F) and which ends are keys."""

    first: int
    last: int
    key_first: bool
    key_last: bool


def segments(frame_count: int, key_indices: Sequence[int], cyclic: bool) -> list[Segment]:
    """Gives the segments that cover every non-key frame once, in the order frames are needed."""
    order = sorted(key_indices)
    spans = [Segment(a, b, True, True) for a, b in zip(order, order[1:], strict=False) if b - a > 1]
    head, tail = order[0], order[-1]
    if cyclic:
        wrap = Segment(tail, head + frame_count, True, True)
        if wrap.last - wrap.first > 1:
            # Frames before the first key are needed first when key 0 is not frame 0.
            spans = [wrap, *spans] if head > 0 else [*spans, wrap]
    else:
        if head > 0:
            spans.insert(0, Segment(0, head, False, True))
        if tail < frame_count - 1:
            spans.append(Segment(tail, frame_count - 1, True, False))
    return spans


def check_inputs(frames: Sequence[np.ndarray], keys: Mapping[int, np.ndarray], flow: str) -> None:
    """Raises ValueError naming what is wrong with the frames, keys or flow method."""
    if flow not in METHODS:
        raise ValueError(f"flow = {flow!r}; accepted: {', '.join(METHODS)}")
    if not frames:
        raise ValueError("no frames to propagate onto")
    if not keys:
        raise ValueError("no key frames: at least one restyled key is needed")
    shape = frames[0].shape[:2]
    for i, frame in enumerate(frames):
        if frame.shape[:2] != shape or frame.ndim != 3:
            raise ValueError(f"frame {i} is {frame.shape}, the first frame is {frames[0].shape}")
    for k, image in keys.items():
        if not 0 <= k < len(frames):
            raise ValueError(f"key frame index {k} is outside the clip (0..{len(frames) - 1})")
        if image.shape[:2] != shape or image.ndim != 3:
            raise ValueError(f"key frame {k} is {image.shape}; the frames are {shape[1]}×{shape[0]}")


def propagate(frames: Sequence[np.ndarray], keys: Mapping[int, np.ndarray], *, flow: str = "dis",
              cyclic: bool = True, tolerance_px: float = 1.0, colour_tolerance: float = 25.0,
              workers: int | None = None, fallback: dict[int, float] | None = None,
              fill: Callable[[int], np.ndarray] | None = None) -> Iterator[np.ndarray]:
    """Yields every frame restyled like the keys: RGB uint8 [H, W, 3], frame 0 first.

    frames: the original clip, RGB uint8 [H, W, 3] each. keys: frame index → the restyled frame,
    RGB uint8 [H, W, 3]; keys come out unchanged. cyclic: the clip is a closed loop (frames after
    the last key blend towards the first). tolerance_px: forward–backward flow error (pixels)
    tolerated before a warp loses trust. colour_tolerance: colour difference (0..255) between a
    frame and its original key carried onto it at which the carried restyle loses most trust.
    workers: threads to use (default: one per core, at most 8). fallback: when given, gets
    frame index → the share of its pixels (0..1) that came from the recoloured frame itself
    rather than from a carried key (0 for keys), as each frame is yielded. fill: frame index →
    RGB [H, W, 3] (0..255) that fills what no carried key is trusted for, instead of the frame
    recoloured like its keys (the 3D transfer's reprojection, for `transfer.method = "flow"`).
    """
    check_inputs(frames, keys, flow)
    count = len(frames)
    grays = [gray(f) for f in frames]
    transfers = {k: ColourTransfer.learn(frames[k][..., :3], keys[k][..., :3]) for k in keys}
    todo = deque(segments(count, list(keys), cyclic))
    # Segments are independent and OpenCV/NumPy release the GIL: a few run side by side, each
    # with its share of the cores for its flows; results are still yielded in frame order.
    cores = workers or min(8, os.cpu_count() or 1)
    side_by_side = max(1, min(cores, len(todo)))
    flow_threads = max(1, cores // side_by_side)

    def blend(seg: Segment) -> list[tuple[int, np.ndarray, float]]:
        return list(_blend_segment(frames, grays, keys, transfers, seg, flow, tolerance_px,
                                   colour_tolerance, flow_threads, fill))

    ready: dict[int, tuple[np.ndarray, float]] = {}
    with ThreadPoolExecutor(side_by_side) as pool:
        running: deque[Future[list[tuple[int, np.ndarray, float]]]] = deque()
        for t in range(count):
            while todo and len(running) < side_by_side:
                running.append(pool.submit(blend, todo.popleft()))
            if t in keys:
                if fallback is not None:
                    fallback[t] = 0.0
                yield np.ascontiguousarray(keys[t][..., :3], dtype=np.uint8)
                continue
            while t not in ready:
                ready.update((p % count, (image, share)) for p, image, share in running.popleft().result())
            image, share = ready.pop(t)
            if fallback is not None:
                fallback[t] = share
            yield image


def _blend_segment(frames: Sequence[np.ndarray], grays: Sequence[np.ndarray],
                   keys: Mapping[int, np.ndarray], transfers: Mapping[int, ColourTransfer],
                   seg: Segment, flow: str, tolerance_px: float, colour_tolerance: float,
                   workers: int | None, fill: Callable[[int], np.ndarray] | None = None
                   ) -> Iterator[tuple[int, np.ndarray, float]]:
    """Yields (position, RGB uint8 [H, W, 3], share of pixels from the fallback) for the
    non-key frames of one segment."""
    count = len(frames)
    at = lambda p: p % count  # noqa: E731 - positions past the end wrap to the clip's start
    # Kept as float16 (0.06 px steps up to 128 px of motion): long segments hold many of them.
    flows = [(f.astype(np.float16), b.astype(np.float16)) for f, b in
             pair_flows([grays[at(p)] for p in range(seg.first, seg.last + 1)], flow, workers)]
    inner = range(seg.first + seg.key_first, seg.last + 1 - seg.key_last)
    h, w = grays[0].shape

    # The later key, carried backward (flow p → p+1 is flows[p - first][0]), kept compact until
    # the forward sweep meets it: uint8 [H, W, 3] and float16 trust [H, W] per frame.
    late: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if seg.key_last:
        styled, original = _key_pair(frames, keys, at(seg.last))
        chain = Chain.start(h, w)
        for p in reversed(inner):
            fwd, bwd = flows[p - seg.first]
            chain = chain.step(fwd.astype(np.float32), bwd.astype(np.float32), tolerance_px)
            image, trust = _carry(chain, styled, original, frames[at(p)][..., :3].astype(np.float32),
                                  colour_tolerance)
            late[p] = (np.clip(image + 0.5, 0, 255).astype(np.uint8), trust.astype(np.float16))

    chain = Chain.start(h, w)
    if seg.key_first:
        styled, original = _key_pair(frames, keys, at(seg.first))
    span = seg.last - seg.first
    for p in inner:
        frame = frames[at(p)][..., :3]
        zero = np.zeros((h, w), np.float32)
        if seg.key_first:
            fwd, bwd = flows[p - 1 - seg.first]
            chain = chain.step(bwd.astype(np.float32), fwd.astype(np.float32), tolerance_px)
            early_img, early_conf = _carry(chain, styled, original, frame.astype(np.float32), colour_tolerance)
        else:
            early_img, early_conf = None, zero
        late_img, late_conf = late.pop(p, (None, zero))
        late_conf = late_conf.astype(np.float32)
        # Temporal weights: all to the one key when the segment has only one.
        if seg.key_first and seg.key_last:
            t_early, t_late = (seg.last - p) / span, (p - seg.first) / span
        else:
            t_early, t_late = float(seg.key_first), float(seg.key_last)
        mix = [(transfers[at(seg.first)], t_early)] if seg.key_first else []
        mix += [(transfers[at(seg.last)], t_late)] if seg.key_last else []
        fallback = recolour(frame, mix) if fill is None else np.asarray(fill(at(p)), np.float32)
        # The two carried keys mix by temporal distance × trust; the recoloured frame fills in
        # only as far as neither key is trusted (1 − both fail), so no holes and no smears.
        w_early, w_late = t_early * early_conf, t_late * late_conf
        warped = np.zeros((h, w, 3), np.float32)
        if early_img is not None:
            warped += early_img * w_early[..., None]
        if late_img is not None:
            warped += late_img.astype(np.float32) * w_late[..., None]
        warped /= (w_early + w_late + 1e-6)[..., None]
        covered = (1.0 - (1.0 - early_conf) * (1.0 - late_conf))[..., None]
        out = covered * warped + (1.0 - covered) * fallback
        yield p, np.clip(out + 0.5, 0, 255).astype(np.uint8), float(1.0 - covered.mean())


def _key_pair(frames: Sequence[np.ndarray], keys: Mapping[int, np.ndarray],
              k: int) -> tuple[np.ndarray, np.ndarray]:
    """Gives (restyled key, original key frame), float32 RGB [H, W, 3]."""
    return keys[k][..., :3].astype(np.float32), frames[k][..., :3].astype(np.float32)


def _carry(chain: Chain, styled: np.ndarray, original: np.ndarray, frame: np.ndarray,
           colour_tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Gives (restyled key warped onto `frame`, float32 RGB [H, W, 3]; trust, float32 [H, W]).

    Trust is the chain's flow confidence times how well the original key, warped the same way,
    matches the frame (colour difference 0..255, Gaussian falloff at `colour_tolerance`).
    """
    import cv2

    diff = np.abs(chain.warp(original) - frame).mean(axis=2)
    diff = cv2.GaussianBlur(diff, (0, 0), 1.5)
    trust = chain.confidence * np.exp(-((diff / colour_tolerance) ** 2))
    return chain.warp(styled), trust
