"""`gausynth doctor`: what this machine can run, each check answering N/A rather than crashing."""

from __future__ import annotations

import importlib.metadata
import shutil
from collections.abc import Iterator
from pathlib import Path

Check = tuple[str, bool | None, str]  # (name, ok / failed / not applicable, detail)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def checks(build_gsplat: bool = False) -> Iterator[Check]:
    """Yields one check at a time (some take seconds)."""
    from ._console import human_bytes

    try:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            yield "CUDA", True, f"{props.name}, {human_bytes(props.total_memory)} VRAM, torch {torch.__version__}"
        else:
            yield "CUDA", False, f"no CUDA GPU (torch {torch.__version__}); GPU stages run on the CPU, slowly"
    except Exception as e:  # noqa: BLE001
        yield "CUDA", False, f"torch does not import: {e}"
    from ._telemetry import GpuSampler

    sampler = GpuSampler()
    yield "NVML telemetry", sampler.available, sampler.name
    from .queue._doctor import queue_checks

    yield from queue_checks()
    yield from _gsplat(build_gsplat)
    try:
        import pycolmap

        yield "pycolmap", True, f"{pycolmap.__version__} (CUDA: {getattr(pycolmap, 'has_cuda', 'N/A')})"
        if not getattr(pycolmap, "has_cuda", False) and _cuda_gpu():
            yield "CUDA SIFT", None, ("a GPU is here but pycolmap is the CPU build: for CUDA SIFT "
                                      "see README 'SfM on the GPU' (pycolmap-cuda12)")
    except Exception as e:  # noqa: BLE001
        yield "pycolmap", False, f"does not import: {e}"
    try:
        import onnxruntime

        yield "onnxruntime", True, f"{onnxruntime.__version__}, providers {onnxruntime.get_available_providers()}"
    except Exception as e:  # noqa: BLE001
        yield "onnxruntime", False, f"does not import: {e}"
    try:
        import av

        yield "H.264 encoder", "libx264" in av.codecs_available, f"PyAV {av.__version__}"
    except Exception as e:  # noqa: BLE001
        yield "H.264 encoder", False, f"PyAV does not import: {e}"
    yield from _models()
    free = shutil.disk_usage(Path.cwd()).free
    yield "disk", free > 5 * 2**30, f"{human_bytes(free)} free in {Path.cwd()}"
    yield "textual", _version("textual") is not None, _version("textual") or "not installed"


def _cuda_gpu() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def _gsplat(build: bool) -> Iterator[Check]:
    version = _version("gsplat")
    if version is None:
        yield "gsplat", False, "not installed; 3DGS uses the pure-PyTorch rasterizer"
        return
    try:
        import torch
    except Exception:  # noqa: BLE001
        yield "gsplat", False, "torch missing"
        return
    if not torch.cuda.is_available():
        yield "gsplat", None, f"{version}; no CUDA here, so 3DGS uses the pure-PyTorch rasterizer"
        return
    if not build:
        yield "gsplat", None, f"{version}; kernels compile on first use (~1 min); check with --build-gsplat"
        return
    try:
        from gsplat.cuda._backend import _C  # noqa: F401 - importing compiles the kernels

        yield "gsplat", _C is not None, f"{version}, CUDA kernels built"
    except Exception as e:  # noqa: BLE001
        yield "gsplat", False, f"{version}, kernels failed to build: {e}"


def _models() -> Iterator[Check]:
    try:
        from .models import missing_models
    except ImportError:
        yield "models", None, "no model-backed stage in this build"
        return
    from ._preset import load_preset
    from ._runs import presets_dir

    for name in ("default", "quick"):
        missing = missing_models(load_preset(presets_dir() / f"{name}.toml"))
        yield (f"models ({name})", not missing,
               "all present locally" if not missing else "missing: " + ", ".join(missing))
