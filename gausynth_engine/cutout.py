"""Background removal with one rembg session per stage, and the alpha compositing of the cut-outs.

A model is a rembg model name (found in rembg's own cache) or a local .onnx file. Nothing is
downloaded without saying so: offline (HF_HUB_OFFLINE=1) a missing model is
one StageError that names it and says how to get it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._errors import StageError
from .compositing import fill_silhouette, on_white, resize_alpha, rgba  # noqa: F401 (re-exported)
from .model_refs import offline

FIELD = "blend.model"
# rembg sessions that do not take a single model file we can look for (prompted, remote, custom).
_NOT_NAMED = {"sam", "u2net_custom", "dis_custom", "ben_custom", "atlascloud", "withoutbg"}


@dataclass(frozen=True)
class MaskModel:
    """Where a background-removal model is: the rembg session class and the file it will load."""

    ref: str  # what the preset said
    session: str  # rembg session name
    path: Path | None  # the .onnx file, None when rembg must download it first
    home: Path | None  # rembg home to use while opening (a local file's folder)


# What importing rembg costs the first time: numba compiles pymatting's ~29 kernels (a minute of
# CPU, several on a loaded machine), cached for every later import.
FIRST_IMPORT_NOTICE = ("preparing background removal: numba compiles rembg's kernels once (1–8 min on a "
                       "busy machine); later runs start in seconds")


def rembg_compiled() -> bool:
    """Gives whether numba's cache already holds pymatting's kernels (importing rembg is then quick)."""
    import importlib.util

    spec = importlib.util.find_spec("pymatting")
    if spec is None or spec.origin is None:
        return True  # rembg is missing or different: importing fails (or costs) on its own
    roots = [Path(os.environ["NUMBA_CACHE_DIR"])] if os.environ.get("NUMBA_CACHE_DIR") else []
    roots.append(Path(spec.origin).parent)
    return any(next(r.rglob("*.nbi"), None) is not None for r in roots if r.is_dir())


def import_rembg(say: Callable[[str], None] | None = None) -> None:
    """Imports rembg, first saying what happens when the import will compile for minutes."""
    if "rembg" not in sys.modules and not rembg_compiled():
        (say or (lambda m: print(m, file=sys.stderr, flush=True)))(FIRST_IMPORT_NOTICE)
    import rembg.sessions  # noqa: F401


def _homes() -> tuple[Path, Path]:
    """Gives (rembg home, legacy home) as rembg 2.0.86 computes them (BaseSession), without importing it."""
    legacy = Path(os.path.expanduser(os.getenv("U2NET_HOME", os.path.join(os.getenv("XDG_DATA_HOME", "~"),
                                                                           ".u2net"))))
    if os.getenv("U2NET_HOME"):
        return legacy, legacy
    xdg = os.getenv("XDG_DATA_HOME")
    default = os.path.join(xdg, "rembg") if xdg else os.path.join("~", ".rembg")
    return Path(os.path.expanduser(os.getenv("REMBG_HOME", default))), legacy


def locate_model(ref: str) -> Path | None:
    """Gives the model file `ref` names when it is on disk, without importing rembg (None: not here).

    For presence checks (doctor, `models list`, the demo's choice); the stage itself validates
    the name through rembg (`resolve_model`).
    """
    if ref.endswith(".onnx") or os.sep in ref or ref.startswith("."):
        path = Path(ref).expanduser().absolute()
        return path if path.is_file() else None
    home, legacy = _homes()
    for path in (home / "models" / ref / f"{ref}.onnx", legacy / f"{ref}.onnx"):
        if path.is_file():
            return path
    return None


def model_places(ref: str) -> str:
    """Gives where a named model is looked for, in words."""
    home, legacy = _homes()
    return f"{home / 'models' / ref} or {legacy}"


def named_models() -> list[str]:
    """Gives the rembg model names that a preset may name."""
    import_rembg()
    from rembg.sessions import sessions

    return sorted(n for n, cls in sessions.items() if n not in _NOT_NAMED and cls.is_local())


def resolve_model(ref: str) -> MaskModel:
    """Gives where model `ref` (a rembg name or a local .onnx path) is, without downloading."""
    import_rembg()
    from rembg.sessions import sessions

    looks_like_path = ref.endswith(".onnx") or os.sep in ref or ref.startswith(".")
    if looks_like_path:
        path = Path(ref).expanduser().absolute()
        if not path.is_file():
            raise StageError(f"{FIELD} = {ref!r}: no such file; accepted: a rembg model name "
                             f"({', '.join(named_models())}) or an existing local .onnx file")
        # A file named like a rembg model (u2net.onnx, birefnet-general.onnx) keeps that model's
        # pre- and post-processing; any other file runs as a u2net-style custom model.
        if path.stem in sessions and path.stem not in _NOT_NAMED:
            return MaskModel(ref, path.stem, path, path.parent)
        return MaskModel(ref, "u2net_custom", path, path.parent)
    if ref not in sessions or ref in _NOT_NAMED:
        raise StageError(f"{FIELD} = {ref!r}: not a rembg model; accepted: "
                         f"{', '.join(named_models())} or a local .onnx file")
    found = sessions[ref].resolve_existing(f"{ref}.onnx")
    return MaskModel(ref, ref, Path(found) if found else None, None)


def missing_model_error(model: MaskModel) -> StageError:
    """Gives the one-line error for a named model that is not on this machine."""
    places = model_places(model.ref)
    return StageError(
        f"{FIELD} = {model.ref!r}: rembg's model file {model.ref}.onnx is not on this machine "
        f"(looked in {places}) and this run is offline; get it once while online with "
        f"`python -c \"from rembg import new_session; new_session('{model.ref}')\"` "
        f"(or point REMBG_HOME at a folder holding it), or set {FIELD} to a local .onnx file")


@contextlib.contextmanager
def _rembg_home(home: Path | None) -> Iterator[None]:
    """Points rembg's model folders at `home` while a session opens (rembg refuses other paths)."""
    if home is None:
        yield
        return
    saved = {k: os.environ.get(k) for k in ("REMBG_HOME", "U2NET_HOME")}
    os.environ["REMBG_HOME"] = os.environ["U2NET_HOME"] = str(home)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _say(log: Callable[..., None], message: str) -> None:
    """Logs a line the console shows without --verbose (a stage's ctx.log takes a level)."""
    try:
        log(message, "warning")
    except TypeError:  # a plain one-argument logger
        log(message)


def providers_for(device: str) -> list[str]:
    """Gives onnxruntime providers: CUDA first when the stage runs on CUDA and ORT has it."""
    import onnxruntime as ort

    if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def on_torch(providers: list[str]) -> bool:
    return any(p.startswith("torch-") for p in providers)


def run_on_torch(session: object, path: Path | None, device: str,
                 log: Callable[[str], None] = lambda m: None) -> list[str] | None:
    """Points a rembg session at the same .onnx file run through PyTorch on `device`; gives the
    new providers, or None (and onnxruntime stays) when torch cannot run that graph there."""
    if path is None:
        return None
    try:
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            return None
        from ._onnx_torch import OnnxTorchSession, unsupported

        missing = unsupported(path)
        if missing:
            log(f"background removal stays on onnxruntime: {path.name} uses {', '.join(missing)}")
            return None
        session.inner_session = OnnxTorchSession(path, device)  # type: ignore[attr-defined]
    except Exception as e:  # noqa: BLE001 - onnxruntime on the CPU still works
        log(f"background removal stays on onnxruntime ({type(e).__name__}: {str(e)[:120]})")
        return None
    log(f"background removal: onnxruntime has no CUDA provider here; {path.name} runs through "
        f"PyTorch on {device} (the same graph and weights)")
    return list(session.inner_session.get_providers())  # type: ignore[attr-defined]


class MaskSession:
    """One rembg session for a whole stage: `mask(image)` gives the object's alpha."""

    def __init__(self, ref: str, device: str = "cpu",
                 log: Callable[[str], None] = lambda m: None) -> None:
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # before onnxruntime is imported
        import_rembg(lambda m: _say(log, m))
        from rembg import new_session

        model = resolve_model(ref)
        if model.path is None:
            if offline():
                raise missing_model_error(model)
            log(f"rembg model {ref!r} is not on this machine: downloading it now (once)")
        providers = providers_for(device)
        kwargs = {"model_path": str(model.path)} if model.session == "u2net_custom" else {}
        try:
            with _rembg_home(model.home):
                self._session = new_session(model.session, providers=providers, **kwargs)
        except Exception as e:  # noqa: BLE001 - a download or ONNX load failure, for people
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise StageError(f"{FIELD} = {ref!r}: rembg could not open the model ({first}); "
                             f"accepted: a rembg model name or a readable .onnx file") from e
        self.model = model
        self.providers = list(self._session.inner_session.get_providers())
        if device == "cuda" and "CUDAExecutionProvider" not in self.providers:
            self.providers = run_on_torch(self._session, model.path, device, log) or self.providers
        if device == "cuda" and "CUDAExecutionProvider" not in self.providers and not on_torch(self.providers):
            log("background removal runs on the CPU: onnxruntime has no working CUDA provider "
                "here (install onnxruntime-gpu to use the GPU)")
        log(f"background removal: {model.session} "
            f"({model.path if model.path else 'rembg cache'}) on {', '.join(self.providers)}")

    def mask(self, image: np.ndarray) -> np.ndarray:
        """Gives the object's alpha, float32 [H, W] in [0, 1], for an RGB uint8 [H, W, 3] image."""
        from PIL import Image

        masks = self._session.predict(Image.fromarray(np.ascontiguousarray(image[..., :3])))
        alpha = np.asarray(masks[0].convert("L"), dtype=np.float32) / 255.0
        if alpha.shape != image.shape[:2]:  # rembg gives the input's size; make sure of it
            import cv2

            alpha = cv2.resize(alpha, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
        return alpha


def download_model(name: str) -> Path:
    """Fetches a named rembg model into rembg's cache (for a `fetch-models` command); gives its path."""
    model = resolve_model(name)
    if model.path is not None:
        return model.path
    from rembg.sessions import sessions

    return Path(sessions[model.session].download_models())
