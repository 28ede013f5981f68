"""Model references: where each model lives, whether it is here, how to fetch it.

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
from typing import Any

from ._errors import StageError

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


def image_encoder_subfolder(subfolder: str, encoder: str) -> str:
    """Gives the image encoder's folder inside the IP-Adapter repository, as diffusers reads it.

    A bare name ("image_encoder") lives inside the adapter's subfolder; a path with a slash
    ("models/image_encoder") is relative to the repository root.
    """
    return encoder if "/" in encoder else subfolder_file(subfolder, encoder)


def subfolder_file(folder: str, name: str) -> str:
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
