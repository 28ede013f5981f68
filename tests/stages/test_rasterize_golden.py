"""The CPU rasterizer draws what gsplat's CUDA rasterizer draws: renders of small scenes of rotated,
anisotropic, overlapping Gaussians (SH degrees 0, 1, 3; two cameras; an off-centre principal
point) against golden renders made once by gsplat on a GPU (tests/stages/make_golden.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gausynth_engine.splatting.rasterize import render  # noqa: E402

GOLDEN = Path(__file__).with_name("golden_renders.npz")


def scenes() -> list[int]:
    with np.load(GOLDEN) as data:
        return sorted({int(k[1:].split("_")[0]) for k in data.files if k.startswith("s")})


@pytest.mark.parametrize("k", scenes())
def test_the_cpu_rasterizer_matches_gsplats_golden_renders(k: int) -> None:
    with np.load(GOLDEN) as data:
        d = {key.split("_", 1)[1]: data[key] for key in data.files if key.startswith(f"s{k}_")}
    params = {name: torch.tensor(d[name], dtype=torch.float32)
              for name in ("means", "quats", "scales", "opacities", "sh0", "shN")}
    w, h = (int(v) for v in d["size"])
    rgb, alpha, _ = render(params, torch.tensor(d["viewmats"], dtype=torch.float32),
                           torch.tensor(d["Ks"], dtype=torch.float32), w, h,
                           sh_degree=int(d["degree"]), background=torch.tensor([0.2, 0.5, 0.9]),
                           backend="torch")
    # A wrong conic, depth order or transmittance moves whole regions by far more than this.
    assert np.abs(alpha.numpy() - d["alpha"]).max() < 2e-3
    assert np.abs(rgb.numpy() - d["rgb"]).max() < 5e-3
    assert np.abs(rgb.numpy() - d["rgb"]).mean() < 2e-4
    assert d["alpha"].std() > 0.1  # the scene is not empty or flat: the check means something
