"""Model references a preset names: where each lives, whether it is here, how to fetch it.

A reference is a Hugging Face id (`owner/name`, kept in the local Hugging Face cache), a local
folder, or a single `.safetensors` file. Stages resolve every reference to a local path before
loading anything: present → the path; missing while offline → one `StageError` naming the model
and the command that fetches it; missing while online → fetched with progress in the journal.
Only `huggingface_hub` is imported here (no torch), so checks stay fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import StageError

if TYPE_CHECKING:
    from ._preset import Preset

# Called as progress(done, total, unit) while fetching; `unit` names what is counted.
ProgressFn = Callable[[float, float, str], None]

# The files of a diffusers SD-XL pipeline repository that our pipelines load.
SDXL_PIPELINE_FILES = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    *(f"{t}/{f}" for t in ("tokenizer", "tokenizer_2")
      for f in ("tokenizer_config.json", "vocab.json", "merges.txt")),
    *(f"{m}/{f}" for m in ("text_encoder", "text_encoder_2") for f in ("config.json", "model.safetensors")),
    *(f"{m}/{f}" for m in ("unet", "vae") for f in ("config.json", "diffusion_pytorch_model.safetensors")),
)
# What a single-file checkpoint needs besides itself: the SD-XL base configs and tokenizers.
SDXL_CONFIG_REPO = "stabilityai/stable-diffusion-xl-base-1.0"
SDXL_CONFIG_FILES = tuple(f for f in SDXL_PIPELINE_FILES if not f.endswith(".safetensors"))
CONTROLNET_FILES = ("config.json", "diffusion_pytorch_model.safetensors")


@dataclass(frozen=True)
class ModelRef:
    """One model a preset needs.

    `source` is what the preset says (an id, a folder, a file); `files` are the paths inside a
    Hugging Face repository that must be cached (ignored for folders and files).
    """

    key: str  # what it is to the code: "checkpoint", "controlnet", ...
    role: str  # in people's words: "SD-XL checkpoint", "canny ControlNet", ...
    field: str  # the preset field that names it, e.g. "reimagine.checkpoint"
    source: str
    files: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """Gives "file" (a single .safetensors), "folder" or "hub" (a Hugging Face id)."""
        return source_kind(self.source)


def source_kind(source: str) -> str:
    """Gives how a model reference is meant: "file", "folder" or "hub"."""
    path = Path(source).expanduser()
    if source.endswith((".safetensors", ".ckpt")):
        return "file"
    if path.exists() or source.startswith(("/", ".", "~")) or source.count("/") != 1:
        return "folder"
    return "hub"


def offline() -> bool:
    """Gives True when downloads are switched off (HF_HUB_OFFLINE)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _cached_file(repo: str, filename: str) -> Path | None:
    """Gives the cached path of one file of a Hugging Face repository, or None."""
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo, filename)
    return Path(hit) if isinstance(hit, str) else None


def missing_files(ref: ModelRef) -> list[str]:
    """Gives what of `ref` is not here (empty when it can be loaded without a download).

    An entry "a|b" of `files` is satisfied by either file (weights saved in either format).
    """
    if ref.kind in ("file", "folder"):
        return [] if Path(ref.source).expanduser().exists() else [ref.source]
    return [f for f in ref.files
            if all(_cached_file(ref.source, alt) is None for alt in f.split("|"))]


def is_present(ref: ModelRef) -> bool:
    return not missing_files(ref)


def local_path(ref: ModelRef) -> Path:
    """Gives the local file or folder to load `ref` from (a hub id's cached snapshot folder).

    Raises StageError when something is missing: it names the model, the preset field and how
    to get it.
    """
    gone = missing_files(ref)
    if gone:
        raise StageError(missing_message(ref, gone))
    if ref.kind != "hub":
        return Path(ref.source).expanduser().absolute()
    first = _cached_file(ref.source, ref.files[0])
    assert first is not None
    return first.parents[len(Path(ref.files[0]).parts) - 1]


def missing_message(ref: ModelRef, gone: list[str]) -> str:
    """Gives the one-line explanation for a model that is not here."""
    if ref.kind != "hub":
        return (f"{ref.field} = {ref.source!r}: no such {ref.kind} ({ref.role}); accepted: a Hugging "
                f"Face id, a local folder or a .safetensors file that exists")
    what = gone[0] + (f" and {len(gone) - 1} more file(s)" if len(gone) > 1 else "")
    return (f"{ref.field} = {ref.source!r}: the {ref.role} is not in the local Hugging Face cache "
            f"(missing {what}) and downloads are off (HF_HUB_OFFLINE=1); get it with "
            f"`gausynth models fetch PRESET` while online, or point {ref.field} at a local copy")


def fetch(ref: ModelRef, progress: ProgressFn | None = None) -> Path:
    """Downloads what of `ref` is missing into the Hugging Face cache; gives its local path.

    `progress(done, total, unit)` hears the bytes as they arrive (the files when the size is
    unknown). Folders and files cannot be fetched: a missing one raises StageError.
    """
    if ref.kind != "hub" or is_present(ref):
        return local_path(ref)
    if offline():
        raise StageError(missing_message(ref, missing_files(ref)))
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(ref.source, allow_patterns=[a for f in ref.files for a in f.split("|")],
                          tqdm_class=_progress_class(progress) if progress else None)
    except Exception as e:  # noqa: BLE001 - network and hub errors all mean the same to people
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise StageError(f"{ref.field} = {ref.source!r}: could not download the {ref.role} "
                         f"({first}); check the id and the network") from e
    gone = missing_files(ref)
    if gone:
        raise StageError(f"{ref.field} = {ref.source!r}: the repository has no {gone[0]}; accepted: a "
                         f"diffusers-format {ref.role} repository (or a local folder / .safetensors file)")
    return local_path(ref)


def require(ref: ModelRef, log: Callable[[str], None] | None = None,
            progress: ProgressFn | None = None) -> Path:
    """Gives the local path of `ref`, fetching it first (with progress) when online and missing."""
    gone = missing_files(ref)
    if not gone:
        return local_path(ref)
    if ref.kind != "hub" or offline():
        raise StageError(missing_message(ref, gone))
    if log:
        log(f"downloading the {ref.role} {ref.source} ({len(gone)} file(s) missing)")
    return fetch(ref, progress)


def _progress_class(progress: ProgressFn) -> type:
    """Gives a tqdm class that forwards its counts to `progress` instead of a terminal."""
    from tqdm.auto import tqdm

    class Forward(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = False
            kwargs["file"] = open(os.devnull, "w")  # noqa: SIM115 - closed with the bar
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            out = super().update(n)
            progress(float(self.n), float(self.total or self.n), str(self.unit or "it"))
            return out

        def close(self) -> None:
            f = self.fp
            super().close()
            f.close()

    return Forward


# --- what the reimagine stage needs -----------------------------------------------------------
def reimagine_models(preset: Preset) -> list[ModelRef]:
    """Gives the models the reimagine stage of `preset` will load (none for guidance set to 0)."""
    from .stages.reimagine import CHECKPOINTS, controlnet_on, ip_adapter_on

    p = preset.reimagine
    if preset.run.pipeline in ("original", "reimagine-sync"):  # the sync route loads sync_models
        return []
    source = CHECKPOINTS.get(p.checkpoint, p.checkpoint)
    refs = [ModelRef("checkpoint", "SD-XL checkpoint", "reimagine.checkpoint", source, SDXL_PIPELINE_FILES)]
    if source_kind(source) == "file":
        refs.append(ModelRef("single_file_config", "SD-XL configs and tokenizers (for a single-file checkpoint)",
                             "reimagine.checkpoint", SDXL_CONFIG_REPO, SDXL_CONFIG_FILES))
    if controlnet_on(p):
        refs.append(ModelRef("controlnet", "canny ControlNet", "reimagine.controlnet_model", p.controlnet_model,
                             CONTROLNET_FILES))
    if ip_adapter_on(p):
        encoder = image_encoder_subfolder(p.ip_adapter_subfolder, p.image_encoder)
        refs.append(ModelRef("ip_adapter", "IP-Adapter with its image encoder", "reimagine.ip_adapter_model",
                             p.ip_adapter_model,
                             (_join(p.ip_adapter_subfolder, p.ip_adapter_weight_name),
                              f"{encoder}/config.json", f"{encoder}/model.safetensors")))
    return refs


def image_encoder_subfolder(subfolder: str, encoder: str) -> str:
    """Gives the image encoder's folder inside the IP-Adapter repository, as diffusers reads it.

    A bare name ("image_encoder") lives inside the adapter's subfolder; a path with a slash
    ("models/image_encoder") is relative to the repository root.
    """
    return encoder if "/" in encoder else _join(subfolder, encoder)


def _join(folder: str, name: str) -> str:
    return f"{folder.strip('/')}/{name}" if folder.strip("/") else name


# The files of a diffusers SD 1.5 pipeline repository (no safety checker: it is not loaded).
SD15_PIPELINE_FILES = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    *(f"tokenizer/{f}" for f in ("tokenizer_config.json", "vocab.json", "merges.txt")),
    "text_encoder/config.json", "text_encoder/model.safetensors",
    *(f"{m}/{f}" for m in ("unet", "vae") for f in ("config.json", "diffusion_pytorch_model.safetensors")),
)
SD15_CONFIG_FILES = tuple(f for f in SD15_PIPELINE_FILES if not f.endswith(".safetensors"))


def sync_models(preset: Preset) -> list[ModelRef]:
    """Gives the models the sync stage of `preset` loads (none off the synchronised route)."""
    from .stages.sync import ROUTE, SD15_CHECKPOINT, checkpoint_source, controlnet_source, ip_adapter_files

    if preset.run.pipeline != ROUTE:
        return []
    p = preset.sync
    source = checkpoint_source(preset)
    field = "sync.checkpoint" if p.checkpoint or p.family == "sd15" else "reimagine.checkpoint"
    sd15 = p.family == "sd15"
    name = "SD 1.5 checkpoint" if sd15 else "SD-XL checkpoint"
    refs = [ModelRef("checkpoint", name, field, source, SD15_PIPELINE_FILES if sd15 else SDXL_PIPELINE_FILES)]
    if source_kind(source) == "file":
        refs.append(ModelRef("single_file_config", f"{name[:-11]} configs and tokenizers (for a single-file "
                             "checkpoint)", field, SD15_CHECKPOINT if sd15 else SDXL_CONFIG_REPO,
                             SD15_CONFIG_FILES if sd15 else SDXL_CONFIG_FILES))
    controlnet = controlnet_source(p)
    if controlnet:
        refs.append(ModelRef("controlnet", f"{p.control} ControlNet", "sync.controlnet_model", controlnet,
                             CONTROLNET_FILES))
    files = ip_adapter_files(preset)
    if files:
        sub, weight, encoder = files
        folder = image_encoder_subfolder(sub, encoder)
        refs.append(ModelRef("ip_adapter", "IP-Adapter with its image encoder", "reimagine.ip_adapter_model",
                             preset.reimagine.ip_adapter_model,
                             (_join(sub, weight), f"{folder}/config.json", f"{folder}/model.safetensors")))
    return refs


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
