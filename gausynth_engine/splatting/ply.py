"""The standard 3DGS point-cloud PLY (Inria layout), as common viewers open it.

Binary little-endian float32 vertices with x y z, nx ny nz (zeros), f_dc_0..2, f_rest_0..M
(channel-major: all of red's higher SH coefficients, then green's, then blue's), opacity (logit),
scale_0..2 (log), rot_0..3 (w x y z, unnormalised).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _fields(rest: int) -> list[str]:
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(rest)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def write_ply(path: Path, params: dict[str, np.ndarray]) -> None:
    """Writes raw Gaussians (means [N, 3], sh0 [N, 1, 3], shN [N, K-1, 3] optional, opacities
    [N], scales [N, 3], quats [N, 4]) to `path` atomically."""
    means = np.asarray(params["means"], dtype=np.float32)
    n = len(means)
    dc = np.asarray(params["sh0"], dtype=np.float32).reshape(n, 3)
    shn = np.asarray(params.get("shN", np.zeros((n, 0, 3))), dtype=np.float32)
    rest = shn.transpose(0, 2, 1).reshape(n, -1)  # [N, 3·(K-1)], channel-major
    columns = [means, np.zeros((n, 3), np.float32), dc, rest,
               np.asarray(params["opacities"], np.float32).reshape(n, 1),
               np.asarray(params["scales"], np.float32), np.asarray(params["quats"], np.float32)]
    data = np.concatenate(columns, axis=1).astype("<f4")
    names = _fields(rest.shape[1])
    header = ("ply\nformat binary_little_endian 1.0\n" f"element vertex {n}\n"
              + "".join(f"property float {name}\n" for name in names) + "end_header\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(data.tobytes())
    os.replace(tmp, path)


def read_ply(path: Path) -> dict[str, np.ndarray]:
    """Gives the raw Gaussians of a 3DGS PLY (the keys `write_ply` takes, float32)."""
    with open(path, "rb") as f:
        if f.readline().strip() != b"ply":
            raise ValueError(f"{path}: not a PLY file")
        names, n = [], 0
        while (line := f.readline().strip()) != b"end_header":
            if not line:
                raise ValueError(f"{path}: the PLY header never ends")
            parts = line.decode("ascii").split()
            if parts[0] == "format" and parts[1] != "binary_little_endian":
                raise ValueError(f"{path}: PLY format {parts[1]}; accepted: binary_little_endian")
            if parts[:2] == ["element", "vertex"]:
                n = int(parts[2])
            elif parts[0] == "property":
                if parts[1] != "float":
                    raise ValueError(f"{path}: property {parts[-1]} is {parts[1]}; accepted: float")
                names.append(parts[-1])
        data = np.frombuffer(f.read(4 * n * len(names)), dtype="<f4").reshape(n, len(names))
    col = {name: i for i, name in enumerate(names)}

    def take(*keys: str) -> np.ndarray:
        return data[:, [col[k] for k in keys]]

    rest = sorted((k for k in names if k.startswith("f_rest_")), key=lambda k: int(k[7:]))
    out = {"means": take("x", "y", "z"), "sh0": take("f_dc_0", "f_dc_1", "f_dc_2")[:, None, :],
           "opacities": take("opacity")[:, 0], "scales": take("scale_0", "scale_1", "scale_2"),
           "quats": take("rot_0", "rot_1", "rot_2", "rot_3")}
    if rest:
        out["shN"] = take(*rest).reshape(n, 3, -1).transpose(0, 2, 1)
    return out
