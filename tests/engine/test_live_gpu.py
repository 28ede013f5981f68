"""Live snapshots on a CUDA GPU: the training thread never waits for the GPU to take one, and
the file holds the model of the step it was taken at while training goes on."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

from gausynth_engine.viewer import live  # noqa: E402


class CudaTrainer:
    def __init__(self, n: int = 200_000) -> None:
        g = torch.Generator(device="cuda").manual_seed(0)
        self.params = {k: torch.randn(n, *shape, device="cuda", generator=g) for k, shape in
                       (("means", (3,)), ("scales", (3,)), ("quats", (4,)), ("opacities", ()),
                        ("sh0", (1, 3)))}
        self.step_done = 41

    def step(self) -> None:
        """Stand-in for an optimisation step: long GPU work, then in-place updates (+1)."""
        a = torch.rand(4096, 4096, device="cuda") / 4096
        for _ in range(20):
            a = torch.tanh(a @ a)
        with torch.no_grad():
            for v in self.params.values():
                v.add_(a[0, 0] * 0 + 1.0)  # a tensor: no host read of it
        self.step_done += 1


def test_a_snapshot_takes_no_synchronisation_and_holds_its_step(tmp_path):
    meta = tmp_path / ".gausynth"
    trainer = CudaTrainer()
    trainer.step()
    torch.cuda.synchronize()
    before = live.flatten(trainer.params).cpu().numpy()
    hook = live.LiveHook.for_training(meta / "checkpoints" / "orig")
    with live.Watch(meta, every=0.0):
        trainer.step()  # queued, in flight while the tick runs: the tick must not wait for it …
        hook._next_check = 0.0
        torch.cuda.set_sync_debug_mode("error")  # … any synchronising call here raises
        try:
            hook.tick(trainer)
        finally:
            torch.cuda.set_sync_debug_mode(0)
        for _ in range(3):  # training goes on, updating the parameters in place
            trainer.step()
        hook.close()
    assert not hook.errors and hook.snapshots == 1
    snap = live.read_snapshot(live.snapshot_path(meta, "orig"))
    assert int(snap["step"]) == 43  # the step in flight at the tick, in stream order
    rows = np.concatenate([snap[k].reshape(len(snap["means"]), -1) for k in live.KEYS], 1)
    np.testing.assert_allclose(rows, before + 1.0, rtol=0, atol=1e-5)
