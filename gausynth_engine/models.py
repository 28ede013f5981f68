"""Every model a preset needs, present or missing, and fetching them (`gausynth models`, doctor).

Each stage says which models it loads (`stages.reimagine.reimagine_models`,
`stages.sync.sync_models`); the references themselves (`ModelRef`, `require`, `fetch`) live in
`model_refs`, below the stages, and are re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .model_refs import (  # noqa: F401 (re-exported: the references and the rules for them)
    CONTROLNET_FILES,
    SD15_CONFIG_FILES,
    SD15_PIPELINE_FILES,
    SDXL_CONFIG_FILES,
    SDXL_CONFIG_REPO,
    SDXL_PIPELINE_FILES,
    ModelRef,
    ProgressFn,
    fetch,
    image_encoder_subfolder,
    is_present,
    local_path,
    missing_files,
    missing_message,
    offline,
    require,
    source_kind,
)
from .stages.reimagine import reimagine_models
from .stages.sync import sync_models

if TYPE_CHECKING:
    from ._preset import Preset


def upscale_models(preset: Preset) -> list[ModelRef]:
    """Gives the Swin2SR model when the preset super-resolves."""
    if preset.run.pipeline != "reimagine":
        return []
    return [ModelRef("upscaler", "Swin2SR super-resolution model", "upscale.model", preset.upscale.model,
                     ("config.json", "model.safetensors|pytorch_model.bin"))]


def preset_models(preset: Preset) -> list[ModelRef]:
    """Gives every Hugging Face model a preset needs (rembg's models are listed apart)."""
    return reimagine_models(preset) + upscale_models(preset) + sync_models(preset)


def _needs_cutout(preset: Preset) -> bool:
    from .stages import BY_ID

    return BY_ID["blend"].off_reason(preset) is None


def missing_models(preset: Preset) -> list[str]:
    """Gives one line per model the preset needs that is not here (empty: all present)."""
    lines = [missing_message(ref, gone) for ref in preset_models(preset)
             if (gone := missing_files(ref))]
    if _needs_cutout(preset):
        import importlib.util

        from .cutout import MaskModel, locate_model, missing_model_error

        # Presence only, from the file system: importing rembg may compile for minutes.
        ref = preset.blend.model
        if importlib.util.find_spec("rembg") is None:
            lines.append(f"blend.model = {ref!r}: rembg is not installed here; pip install 'rembg[cpu]' "
                         "(or rembg[gpu])")
        elif locate_model(ref) is None:
            if ref.endswith(".onnx") or os.sep in ref:
                lines.append(f"blend.model = {ref!r}: no such file")
            else:
                lines.append(str(missing_model_error(MaskModel(ref, ref, None, None))))
    return lines


def models_list(preset: Preset) -> list[dict[str, Any]]:
    """Gives one row per model the preset needs: role, field, source, kind, present, path."""
    rows = []
    for ref in preset_models(preset):
        present = is_present(ref)
        rows.append({"key": ref.key, "role": ref.role, "field": ref.field, "source": ref.source, "kind": ref.kind,
                     "present": present, "path": str(local_path(ref)) if present else ""})
    if _needs_cutout(preset):
        from .cutout import locate_model

        found = locate_model(preset.blend.model)  # no rembg import: it may compile for minutes
        path = str(found) if found else ""
        rows.append({"key": "cutout", "role": "background-removal model", "field": "blend.model",
                     "source": preset.blend.model, "kind": "rembg", "present": bool(path), "path": path})
    return rows


def models_fetch(preset: Preset, progress: Callable[[ModelRef, float, float, str], None] | None = None,
                 ) -> list[Path]:
    """Downloads every model the preset needs that is missing; gives their local paths.

    `progress(ref, done, total, unit)` hears each download. Raises StageError for a local
    folder or file that does not exist, or a download that fails.
    """
    paths = []
    for ref in preset_models(preset):
        forward = (lambda d, t, u, ref=ref: progress(ref, d, t, u)) if progress else None
        paths.append(fetch(ref, forward))
    if _needs_cutout(preset):
        from .cutout import download_model

        paths.append(download_model(preset.blend.model))
    return paths
