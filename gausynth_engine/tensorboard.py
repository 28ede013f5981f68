"""TensorBoard event files of a run's training curves, written from its journal (off by default).

Nothing is written unless asked (`gausynth tensorboard RUN`): the curves are the `metric`
events the stages already journal (loss, PSNR, Gaussians, it/s, evaluations), so the training
pays nothing and past runs work too. One folder per stage under `<run>/tensorboard/`; open it
with `tensorboard --logdir <run>/tensorboard`. The writer is tensorboardX (no TensorFlow;
`torch.utils.tensorboard` would need the `tensorboard` package itself).
"""

from __future__ import annotations

from pathlib import Path

from ._events import Metric, RunFinished
from ._journal import JournalReader


def write_curves(journal: Path, out: Path, follow: bool = False, poll: float = 1.0) -> dict[str, int]:
    """Writes every metric event of the journal as scalars `<name>` of `out/<stage>/`; with
    `follow`, keeps writing new ones until the run finishes. Gives the count per stage."""
    import time

    from tensorboardX import SummaryWriter

    writers: dict[str, SummaryWriter] = {}
    counts: dict[str, int] = {}
    reader = JournalReader(journal)
    try:
        while True:
            events = reader.read_new()
            for e in events:
                if isinstance(e, Metric):
                    if e.stage not in writers:
                        writers[e.stage] = SummaryWriter(logdir=str(Path(out) / e.stage))
                    writers[e.stage].add_scalar(e.name, e.value, global_step=e.step, walltime=e.t)
                    counts[e.stage] = counts.get(e.stage, 0) + 1
            for w in writers.values():
                w.flush()
            if not follow or any(isinstance(e, RunFinished) for e in events):
                return counts
            if not events:
                time.sleep(poll)
    finally:
        for w in writers.values():
            w.close()
