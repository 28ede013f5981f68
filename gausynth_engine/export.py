"""Exports of a trained splat for other viewers, each verified by reading it back.

Formats (what reads them):
- `ply`: the standard 3DGS PLY (Inria layout; every viewer), float32, lossless.
- `splat`: antimatter15's 32-byte records (position, linear scale, RGBA, rotation as bytes;
  no higher SH bands), sorted along a Morton curve.
- `compressed-ply`: PlayCanvas/SuperSplat's chunked, bit-packed PLY (256 Gaussians a chunk;
  Gaussians with opacity ≤ 1/255 are left out), sorted along a Morton curve.
- `spz`: Niantic's SPZ (version 3, gzip): fixed-point positions, byte-quantised attributes.
  SPZ stores a right-up-back (OpenGL) frame; our models are COLMAP's right-down-front, so the
  writer turns them by 180° about x (as Niantic's library does when told the source is RDF)
  and the reader turns them back.

Writers: gsplat's `export_splats` for ply/splat/compressed-ply (pure PyTorch: it runs on the
CPU, no CUDA needed), the `gsply` library for SPZ (there is no Niantic package on PyPI; gsply
is MIT, maintained, and implements SPZ v1–v4 against Niantic's reference). Readers used for
the check are independent of the writers: gsply for both PLYs and SPZ, numpy for `.splat`.

Gaussians are raw (pre-activation) arrays, as `splatting.ply.read_ply` gives them: means
[N, 3], scales [N, 3] (log), quats [N, 4] (wxyz, unnormalised), opacities [N] (logit),
sh0 [N, 1, 3], shN [N, K-1, 3] (optional).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMATS = ("ply", "splat", "compressed-ply", "spz")
SUFFIXES = {"ply": ".ply", "splat": ".splat", "compressed-ply": ".compressed.ply", "spz": ".spz"}
SH_C0 = 0.28209479177387814

# The largest errors each format may make, in activated units: means as a fraction of the
# model's extent (bbox diagonal), colours and opacity on [0, 1], scales as a relative error,
# rotations in degrees; "sh" absolute on the higher coefficients (None: the format drops them).
TOLERANCES: dict[str, dict[str, float | None]] = {
    "ply": {"means": 1e-7, "rgb": 1e-6, "opacity": 1e-6, "scale": 1e-5, "rotation_deg": 1e-3,
            "sh": 1e-6},
    "splat": {"means": 1e-7, "rgb": 1 / 255 + 1e-6, "opacity": 1 / 255 + 1e-6, "scale": 1e-5,
              "rotation_deg": 2.0, "sh": None},
    "compressed-ply": {"means": 1.5e-3, "rgb": 1 / 255 + 1e-3, "opacity": 0.5 / 255 + 1e-6,
                       "scale": 0.05, "rotation_deg": 0.3, "sh": 8 / 256 + 1e-6},
    "spz": {"means": 1e-3, "rgb": 0.5 / (0.15 * 255) * SH_C0 + 1e-6, "opacity": 0.5 / 255 + 1e-6,
            "scale": 0.04, "rotation_deg": 0.5, "sh": 1 / 128 + 1e-6},
}
# Ranges a format can hold: compared after clipping the original to them.
SCALE_RANGE = {"compressed-ply": (-20.0, 20.0), "spz": (-10.0, 255 / 16 - 10.0)}
SPZ_SH0_LIMIT = 127.5 / (0.15 * 255)  # |sh0| an SPZ colour byte can hold
SPZ_POSITION_LIMIT = 2.0**11  # 24-bit fixed point with 12 fractional bits


class ExportError(ValueError):
    """A format, file or model that cannot be exported or read back; says which and why."""


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ExportError(f"export format {fmt!r}; accepted: {', '.join(FORMATS)}")
    return fmt


# --- writing ---------------------------------------------------------------------------------
def write(params: dict[str, np.ndarray], fmt: str, path: Path) -> Path:
    """Writes the Gaussians in `fmt` to `path` (atomically); gives the path."""
    check_format(fmt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "spz":
        _write_spz(params, tmp)
    else:
        import torch
        from gsplat import export_splats

        t = {k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in params.items()}
        n = len(t["means"])
        shn = t.get("shN", torch.zeros(n, 0, 3))
        # gsplat packs compressed PLYs chunk by chunk (256 Gaussians) in small torch ops: with
        # one thread 300k Gaussians took 4.8 s here, with two 91 s (thread hand-offs per op).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            export_splats(t["means"], t["scales"], t["quats"], t["opacities"],
                          t["sh0"].reshape(n, 1, 3), shn,
                          format={"compressed-ply": "ply_compressed"}.get(fmt, fmt), save_to=str(tmp))
        finally:
            torch.set_num_threads(threads)
    tmp.replace(path)
    return path


def rdf_to_rub(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Gives the Gaussians turned 180° about x (y, z negated): COLMAP/PLY frame ↔ SPZ frame.

    The turn is its own inverse. Quaternions conjugated by the turn negate y and z; SH
    coefficients flip sign where their basis function is odd in y or z (Niantic's table).
    """
    out = dict(params)
    out["means"] = np.asarray(params["means"], np.float32) * np.array([1, -1, -1], np.float32)
    out["quats"] = np.asarray(params["quats"], np.float32) * np.array([1, 1, -1, -1], np.float32)
    if "shN" in params and np.asarray(params["shN"]).size:
        x, y, z = 1, -1, -1
        flips = np.array([y, z, x, x * y, y * z, 1, x * z, 1, y, x * y * z, y, z, x, z, x],
                         np.float32)
        shn = np.asarray(params["shN"], np.float32)
        out["shN"] = shn * flips[:shn.shape[1], None]
    return out


def _gsply():
    try:
        import gsply
    except ImportError:
        raise ExportError("SPZ (and reading PLYs back) needs gsply: pip install 'gausynth[export]'") from None
    return gsply


def _write_spz(params: dict[str, np.ndarray], path: Path) -> None:
    gsply = _gsply()

    means = np.asarray(params["means"], np.float32)
    if np.abs(means).max(initial=0) >= SPZ_POSITION_LIMIT:
        raise ExportError(f"positions up to {np.abs(means).max():.0f} units; SPZ holds "
                          f"|x|, |y|, |z| < {SPZ_POSITION_LIMIT:.0f}: use ply or compressed-ply")
    p = rdf_to_rub(params)
    n = len(means)
    shn = np.asarray(p.get("shN", np.zeros((n, 0, 3))), np.float32)
    data = gsply.GSData(means=p["means"], scales=np.asarray(p["scales"], np.float32),
                        quats=_unit(np.asarray(p["quats"], np.float32)),
                        opacities=np.asarray(p["opacities"], np.float32).reshape(n),
                        sh0=np.asarray(p["sh0"], np.float32).reshape(n, 3),
                        shN=shn if shn.size else None)
    gsply.write_spz(path, data, version=3)


def _unit(q: np.ndarray) -> np.ndarray:
    return q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)


# --- reading ---------------------------------------------------------------------------------
def read(path: Path, fmt: str) -> dict[str, np.ndarray]:
    """Gives the raw Gaussians stored in an exported file (the keys of the module doc)."""
    check_format(fmt)
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    if fmt == "splat":
        return _read_splat(path)
    gsply = _gsply()

    try:
        data = gsply.read_spz(path) if fmt == "spz" else gsply.plyread(str(path))
    except Exception as e:  # noqa: BLE001 - any parse failure is the file's fault
        raise ExportError(f"{path}: cannot be read as {fmt} ({type(e).__name__}: {e})") from None
    n = len(data.means)
    out = {"means": np.asarray(data.means, np.float32), "scales": np.asarray(data.scales, np.float32),
           "quats": np.asarray(data.quats, np.float32),
           "opacities": np.asarray(data.opacities, np.float32).reshape(n),
           "sh0": np.asarray(data.sh0, np.float32).reshape(n, 1, 3)}
    if data.shN is not None and np.asarray(data.shN).size:
        out["shN"] = np.asarray(data.shN, np.float32).reshape(n, -1, 3)
    return rdf_to_rub(out) if fmt == "spz" else out


SPLAT_RECORD = np.dtype([("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])


def _read_splat(path: Path) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    if len(raw) % SPLAT_RECORD.itemsize:
        raise ExportError(f"{path}: {len(raw)} bytes is not a whole number of 32-byte .splat records")
    rec = np.frombuffer(raw, SPLAT_RECORD)
    rgba = rec["rgba"].astype(np.float32) / 255.0
    alpha = np.clip(rgba[:, 3], 1e-6, 1 - 1e-6)
    return {"means": rec["pos"].copy(), "scales": np.log(np.maximum(rec["scale"], 1e-30)),
            "quats": (rec["rot"].astype(np.float32) - 128.0) / 128.0,
            "opacities": np.log(alpha / (1 - alpha)),
            "sh0": ((rgba[:, :3] - 0.5) / SH_C0)[:, None, :]}


# --- checking --------------------------------------------------------------------------------
def stored_order(params: dict[str, np.ndarray], fmt: str) -> np.ndarray:
    """Gives the indices of the Gaussians a file of `fmt` holds, in the file's order.

    Follows the writers: non-finite Gaussians dropped; compressed-ply also drops opacity ≤ 1/255;
    splat and compressed-ply sort along gsplat's Morton curve (its own `sort_centers`).
    """
    n = len(params["means"])
    finite = np.ones(n, bool)
    for k in ("means", "scales", "quats", "opacities", "sh0", "shN"):
        if k in params:
            finite &= np.isfinite(np.asarray(params[k]).reshape(n, -1)).all(1)
    keep = np.nonzero(finite)[0]
    if fmt == "compressed-ply":
        opacity = 1 / (1 + np.exp(-np.asarray(params["opacities"], np.float32)[keep]))
        keep = keep[opacity > 1 / 255]
    if fmt in ("splat", "compressed-ply") and len(keep):
        import torch
        from gsplat.exporter import sort_centers

        means = torch.as_tensor(np.asarray(params["means"], np.float32)[keep])
        keep = keep[sort_centers(means, torch.arange(len(keep))).numpy()]
    return keep


def errors(original: dict[str, np.ndarray], decoded: dict[str, np.ndarray], fmt: str
           ) -> dict[str, float]:
    """Gives the largest error of each attribute (activated units, see TOLERANCES) between the
    Gaussians a file should hold and those read back from it."""
    order = stored_order(original, fmt)
    if len(order) != len(decoded["means"]):
        raise ExportError(f"the {fmt} file holds {len(decoded['means'])} Gaussians; "
                          f"{len(order)} were expected")
    if not len(order):
        return {}
    o = {k: np.asarray(v, np.float32)[order] for k, v in original.items()}
    d = decoded
    means = o["means"]
    extent = float(np.linalg.norm(means.max(0) - means.min(0))) or 1.0
    sh0_o = o["sh0"].reshape(-1, 3)
    if fmt == "spz":
        sh0_o = np.clip(sh0_o, -SPZ_SH0_LIMIT, SPZ_SH0_LIMIT)
    rgb_o = np.clip(sh0_o * SH_C0 + 0.5, 0, 1)
    rgb_d = np.clip(d["sh0"].reshape(-1, 3) * SH_C0 + 0.5, 0, 1)
    lo, hi = SCALE_RANGE.get(fmt, (-np.inf, np.inf))
    scale_o = np.exp(np.clip(o["scales"], lo, hi))
    qo, qd = _unit(o["quats"].astype(np.float64)), _unit(d["quats"].astype(np.float64))
    qd = qd * np.where((qo * qd).sum(1) < 0, -1.0, 1.0)[:, None]  # q and −q are one rotation
    # The angle between them, stable near 0 (arccos of a dot product is not).
    angle = 4 * np.arctan2(np.linalg.norm(qo - qd, axis=1), np.linalg.norm(qo + qd, axis=1))
    out = {"means": float(np.abs(d["means"] - means).max() / extent),
           "rgb": float(np.abs(rgb_d - rgb_o).max()),
           "opacity": float(np.abs(_sigmoid(d["opacities"]) - _sigmoid(o["opacities"])).max()),
           "scale": float((np.abs(np.exp(d["scales"]) - scale_o) / scale_o).max()),
           "rotation_deg": float(np.degrees(angle).max())}
    if "shN" in o and o["shN"].size and TOLERANCES[fmt]["sh"] is not None:
        if "shN" not in d or d["shN"].shape != o["shN"].shape:
            raise ExportError(f"the {fmt} file lost the higher SH bands "
                              f"({o['shN'].shape[1]} coefficients expected)")
        sh_o = o["shN"]
        if fmt == "compressed-ply":
            sh_o = np.clip(sh_o, -4, 4 - 8 / 256)
        elif fmt == "spz":
            sh_o = np.clip(sh_o, -1, 127 / 128)
        out["sh"] = float(np.abs(d["shN"] - sh_o).max())
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def over_tolerance(errs: dict[str, float], fmt: str) -> list[str]:
    """Gives "attribute error > tolerance" for each attribute outside the format's tolerance."""
    tol = TOLERANCES[fmt]
    return [f"{k} {v:.3g} > {tol[k]:.3g}" for k, v in errs.items()
            if tol.get(k) is not None and not v <= tol[k]]  # NaN fails too


def render_psnr(original: dict[str, np.ndarray], decoded: dict[str, np.ndarray],
                viewmats: np.ndarray, Ks: np.ndarray, width: int, height: int) -> float:
    """Gives the mean PSNR (dB) of renders of the read-back Gaussians against renders of the
    original ones from the same cameras (pure-PyTorch rasterizer, degree-0 colours).

    viewmats [C, 4, 4] world→camera (OpenCV), Ks [C, 3, 3] px.
    """
    import torch

    from .splatting.metrics import psnr
    from .splatting.rasterize import render

    def draw(p: dict[str, np.ndarray]) -> torch.Tensor:
        t = {k: torch.as_tensor(np.asarray(p[k], np.float32)) for k in
             ("means", "scales", "quats", "opacities", "sh0")}
        t["sh0"] = t["sh0"].reshape(-1, 1, 3)
        with torch.no_grad():
            rgb, _, _ = render(t, torch.as_tensor(viewmats, dtype=torch.float32),
                               torch.as_tensor(Ks, dtype=torch.float32), width, height, sh_degree=0,
                               background=torch.ones(3), backend="torch")
        return rgb.clamp(0, 1)

    a, b = draw(original), draw(decoded)
    return float(np.mean([psnr(b[i], a[i]) for i in range(len(a))]))


@dataclass(frozen=True)
class Exported:
    """One written and checked export."""

    format: str
    path: Path
    bytes: int
    seconds: float  # writing only
    gaussians: int  # in the file
    errors: dict[str, float] = field(default_factory=dict)
    problems: tuple[str, ...] = ()  # attributes outside the format's tolerance
    psnr: float | None = None  # renders of the file vs of the model, dB

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        """Gives a one-line report: format, size, Gaussians, worst errors, render PSNR."""
        from ._console import human_bytes

        errs = ", ".join(f"{k} {v:.2g}" for k, v in self.errors.items())
        render = ""
        if self.psnr is not None:
            render = f", renders {'∞' if math.isinf(self.psnr) else f'{self.psnr:.1f}'} dB"
        verdict = "✔" if self.ok else "✘ " + "; ".join(self.problems)
        return (f"{verdict} {self.format:<15} {human_bytes(self.bytes):>9}  {self.gaussians} Gaussians "
                f"in {self.seconds:.2f} s  (max errors: {errs}{render})  {self.path}")


def export(params: dict[str, np.ndarray], fmt: str, path: Path, cameras: Any = None) -> Exported:
    """Writes one export, reads it back and compares; gives what happened.

    `cameras` = (viewmats [C, 4, 4], Ks [C, 3, 3], width, height) adds a render comparison.
    """
    t0 = time.perf_counter()
    write(params, fmt, path)
    seconds = time.perf_counter() - t0
    decoded = read(path, fmt)
    errs = errors(params, decoded, fmt)
    problems = over_tolerance(errs, fmt)
    score = render_psnr(params, decoded, *cameras) if cameras is not None else None
    return Exported(fmt, Path(path), Path(path).stat().st_size, seconds, len(decoded["means"]),
                    errs, tuple(problems), score)


def check_cameras(cams: Any, count: int = 2, size: int = 96) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Gives `count` of the SfM cameras (`viewer.models.Cameras`), evenly spread and shrunk to
    a long side of `size` px, as `export`'s render-check cameras."""
    ids = np.linspace(0, len(cams.names) - 1, count).round().astype(int)
    scale = size / max(cams.width, cams.height)
    Ks = cams.Ks[ids].copy()
    Ks[:, :2, :] *= scale
    return (cams.viewmats[ids], Ks, max(2, round(cams.width * scale)),
            max(2, round(cams.height * scale)))


def export_training(ply: Path, formats: tuple[str, ...], out_dir: Path, stem: str,
                    cameras: Any = None) -> list[Exported]:
    """Exports one trained model (its PLY) in each format to `out_dir/<stem><suffix>`."""
    from .splatting.ply import read_ply

    params = read_ply(ply)
    return [export(params, fmt, Path(out_dir) / f"{stem}{SUFFIXES[fmt]}", cameras)
            for fmt in formats]


__all__ = ["FORMATS", "SUFFIXES", "TOLERANCES", "ExportError", "Exported", "check_cameras", "errors", "export",
           "export_training",
           "over_tolerance", "rdf_to_rub", "read", "render_psnr", "stored_order", "write"]
