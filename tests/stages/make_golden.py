"""Makes the golden renders that the CPU rasterizer is checked against: gsplat's real CUDA output.

Run once on a CUDA machine (it refuses elsewhere) from the repository root:
    python tests/stages/make_golden.py tests/stages/golden_renders.npz
Small scenes of rotated, anisotropic Gaussians at several depths, overlapping, some partly
outside the view, seen by two cameras; the file holds the raw parameters, the cameras and
gsplat's RGB, alpha and expected-depth renders (float32), plus gsplat's version.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def scene(seed: int, n: int, width: int, height: int) -> dict[str, np.ndarray]:
    """Gives one random scene's raw parameters and two cameras (world→camera, OpenCV)."""
    rng = np.random.default_rng(seed)
    means = np.concatenate([rng.uniform(-1.0, 1.0, (n, 2)), rng.uniform(-0.6, 0.6, (n, 1))], 1)
    quats = rng.normal(size=(n, 4))
    scales = np.log(rng.uniform(0.03, 0.35, (n, 3)))  # strongly anisotropic
    opacities = rng.uniform(-2.0, 3.0, n)  # logits: from faint to nearly opaque
    sh0 = rng.normal(0, 1.0, (n, 1, 3))
    shN = rng.normal(0, 0.3, (n, 15, 3))
    viewmats = []
    for yaw, dist in ((0.3, 3.2), (-1.1, 2.6)):
        c, s = np.cos(yaw), np.sin(yaw)
        R = np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])
        w2c = np.eye(4)
        w2c[:3, :3] = R
        w2c[:3, 3] = [0.05, -0.1, dist]
        viewmats.append(w2c)
    f = 0.9 * width
    K = np.array([[f, 0, width / 2 + 1.3], [0, f * 1.05, height / 2 - 2.1], [0, 0, 1]])
    return {"means": means, "quats": quats, "scales": scales, "opacities": opacities, "sh0": sh0,
            "shN": shN, "viewmats": np.stack(viewmats), "Ks": np.stack([K, K]),
            "size": np.array([width, height])}


def main(out: str) -> int:
    import gsplat
    import torch

    from gausynth_engine.splatting.rasterize import render

    if not torch.cuda.is_available():
        print("make_golden needs a CUDA GPU: the golden renders are gsplat's CUDA output")
        return 1
    data: dict[str, np.ndarray] = {"gsplat_version": np.array(gsplat.__version__)}
    for k, (seed, n, w, h, degree) in enumerate(((1, 40, 48, 40, 0), (2, 120, 64, 48, 3),
                                                  (3, 300, 56, 56, 1))):
        s = scene(seed, n, w, h)
        params = {name: torch.tensor(s[name], dtype=torch.float32, device="cuda")
                  for name in ("means", "quats", "scales", "opacities", "sh0", "shN")}
        vm = torch.tensor(s["viewmats"], dtype=torch.float32, device="cuda")
        Ks = torch.tensor(s["Ks"], dtype=torch.float32, device="cuda")
        bg = torch.tensor([0.2, 0.5, 0.9], device="cuda")
        rgb, alpha, _ = render(params, vm, Ks, w, h, sh_degree=degree, background=bg, backend="gsplat")
        for key, value in s.items():
            data[f"s{k}_{key}"] = value
        data[f"s{k}_degree"] = np.array(degree)
        data[f"s{k}_rgb"] = rgb.float().cpu().numpy()
        data[f"s{k}_alpha"] = alpha.float().cpu().numpy()
    np.savez_compressed(out, **data)
    print(f"wrote {out} (gsplat {gsplat.__version__})")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "golden_renders.npz"))
