"""Small facts and predicates that several stage declarations share."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._preset import Preset

# Routes that hand splat_reim frames made in 3D (`reim3d_frames/`, already undistorted).
ROUTES_3D = ("reimagine-3d", "reimagine-sync")


def off_without_reimagine(preset: Preset) -> str | None:
    """Gives why a reimagination stage is off, or None when the preset reimagines."""
    if preset.run.pipeline == "original":
        return "run.pipeline = 'original' (no diffusion)"
    return None
