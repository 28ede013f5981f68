"""The reference's propagation scheme, kept as the baseline our `propagate` is measured against.

Not part of the product: bench/propagate.py, bench/reimagine3d.py and tests/stages/test_propagate.py
import it (bench/ on sys.path).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from gausynth_engine.propagation.chain import Chain
from gausynth_engine.propagation.flow import dense_flow, gray
from gausynth_engine.propagation.sequence import check_inputs


def propagate_forward_only(frames: Sequence[np.ndarray], keys: Mapping[int, np.ndarray], *,
                           flow: str = "dis") -> Iterator[np.ndarray]:
    """Yields every frame the reference's way: each key warped forward alone up to the next key.

    No blending of two keys, no trust, no wrap-around (frames before the first key are warped
    back from it). The baseline of `bench/propagate.py` and tests/stages/test_propagate.py; same types as `propagate`.
    """
    check_inputs(frames, keys, flow)
    count = len(frames)
    grays = [gray(f) for f in frames]
    h, w = grays[0].shape
    first = min(keys)
    before: dict[int, np.ndarray] = {}
    chain = Chain.start(h, w)
    for t in range(first - 1, -1, -1):
        chain = chain.follow(dense_flow(grays[t], grays[t + 1], flow))
        before[t] = chain.warp(keys[first][..., :3].astype(np.float32))
    key = None
    for t in range(count):
        if t in keys:
            key, chain = keys[t][..., :3].astype(np.float32), Chain.start(h, w)
            yield np.ascontiguousarray(keys[t][..., :3], dtype=np.uint8)
            continue
        if key is None:
            image = before.pop(t)
        else:
            chain = chain.follow(dense_flow(grays[t], grays[t - 1], flow))
            image = chain.warp(key)
        yield np.clip(image + 0.5, 0, 255).astype(np.uint8)
