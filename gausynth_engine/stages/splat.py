"""splat: 3D Gaussian Splatting with gsplat, on the reimagined or the original frames."""

from __future__ import annotations

from dataclasses import dataclass

from .._params import param
from .._stage import Stage
from ._common import off_without_reimagine


@dataclass(frozen=True)
class Params:
    iterations: int = param(10000, "Training iterations.", min=1000, max=30000)
    eval_at: tuple[int, ...] = param((7000, 10000, 12000, 15000),
                                     "Evaluate at these iterations (those not above the total) and "
                                     "at the last one.", min=1, max=30000)
    sh_degree: int = param(0, "Spherical-harmonics degree of the colours.", min=0, max=3)
    background: str = param("white", "Background colour behind the Gaussians.",
                            choices=("white", "black"))
    test_every: int = param(8, "Hold out every n-th image for testing; 0 = none.", min=0, max=100)
    strategy: str = param("default", "Densification: the paper's schedule, or MCMC with a cap.",
                          choices=("default", "mcmc"))
    max_gaussians: int = param(1_000_000, "Gaussian cap of the MCMC strategy.",
                               min=1000, max=50_000_000)


STAGE_REIM = Stage(
    id="splat_reim",
    title="3DGS (reimagined)",
    section="splat",
    after=("sfm", "upscale"),
    outputs=("gs", "new_videos/gs_reim.mp4"),
    version=1,
    run=None,
    gpu=True,
    off_when=off_without_reimagine,
    pending_issue="issue 6",
)

STAGE_ORIG = Stage(
    id="splat_orig",
    title="3DGS (original)",
    section="splat",
    after=("sfm", "blend"),
    outputs=("gs", "new_videos/gs_orig.mp4"),
    version=1,
    run=None,
    gpu=True,
    pending_issue="issue 6",
)
