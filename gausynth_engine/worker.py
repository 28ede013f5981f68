"""One stage in its own process: `python -m gausynth_engine.worker RUN_FOLDER STAGE`.

The orchestrator starts it in a new session with stdout/stderr going to the stage's log file and
a pipe (fd in GAUSYNTH_EVENT_FD) for structured events, one JSON object per line.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from ._errors import os_error_line
from ._layout import RunLayout
from ._preset import load_preset
from ._stage import StageContext, StageError, check_outputs
from .stages import BY_ID, upstream_of


class Channel:
    """Writes events as JSON lines to the orchestrator (thread-safe)."""

    def __init__(self, fd: int | None) -> None:
        self._file = os.fdopen(fd, "w", buffering=1, encoding="utf-8") if fd is not None else None
        self._lock = threading.Lock()
        self.sent: list[dict[str, Any]] = []  # kept when there is no pipe (in-process runs)

    def emit(self, event: dict[str, Any]) -> None:
        event = {"t": time.time(), **event}
        if self._file is None:
            self.sent.append(event)
            return
        line = json.dumps(event, ensure_ascii=False, default=str)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()


def resolve_device(wanted: str) -> str:
    """Gives "cuda" or "cpu" for the preset's run.device."""
    if wanted == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if wanted == "cuda":
        raise StageError("run.device = 'cuda' but torch sees no CUDA GPU here; accepted: 'auto' or 'cpu'")
    return "cpu"


def peak_vram() -> int | None:
    """Gives the most bytes torch allocated on the GPU in this process: 0 where a GPU was in
    sight and the stage never touched it (the queue then packs it beside others instead of
    giving it a whole GPU), None where no GPU was in sight or onnxruntime's CUDA provider (whose
    memory torch does not see) may have run."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    if torch.cuda.is_initialized():
        return int(torch.cuda.max_memory_allocated())
    ort = sys.modules.get("onnxruntime")
    if ort is not None and "CUDAExecutionProvider" in ort.get_available_providers():
        return None
    return 0


def describe_failure(e: BaseException, layout: RunLayout) -> str:
    """Gives one line for people about an unexpected failure."""
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return f"disk full while writing {e.filename or 'outputs'}; free space under {layout.root} and rerun"
    if isinstance(e, OSError):
        return os_error_line(e)
    if isinstance(e, MemoryError):
        return "out of memory (host RAM); lower the frame count or sizes in the preset"
    if type(e).__name__ == "OutOfMemoryError":  # torch's CUDA OOM, without importing torch here
        return ("out of GPU memory; another stage of the run may share the GPU (set "
                "run.parallel_stages = 1), else lower this stage's sizes in the preset")
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first}"


def run_stage(layout: RunLayout, stage_id: str, channel: Channel) -> int:
    """Runs one stage into its staging folder; gives the process exit code."""
    stage = BY_ID[stage_id]
    try:
        preset = load_preset(layout.preset_snapshot)
        if stage.run is None:
            raise StageError(f"stage {stage_id} is not implemented yet ({stage.pending_issue})")
        device = resolve_device(preset.run.device) if stage.gpu else "cpu"
        out = layout.staging_for(stage_id)
        ctx = StageContext(stage, preset, layout, out, channel.emit, device, upstreams=upstream_of(stage_id))
        ctx.record(worker_ready=round(time.time(), 3))  # the benches' start-up: spawn → here
        stage.run(ctx)
        check_outputs(stage, out.root)
    except StageError as e:
        channel.emit({"type": "failed", "error": str(e)})
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BaseException as e:  # noqa: BLE001 - a stage's bug must still reach the journal
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        traceback.print_exc()
        channel.emit({"type": "failed", "error": describe_failure(e, layout),
                      "detail": traceback.format_exc()})
        return 1
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    channel.emit({"type": "done", "record": ctx.record_data, "peak_vram": peak_vram(),
                  "peak_rss": rss, "device": device})
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m gausynth_engine.worker RUN_FOLDER STAGE", file=sys.stderr)
        return 2
    fd = os.environ.get("GAUSYNTH_EVENT_FD")
    channel = Channel(int(fd) if fd else None)
    code = run_stage(RunLayout(Path(args[0])), args[1], channel)
    if fd is None:
        for event in channel.sent:
            print(json.dumps(event, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
