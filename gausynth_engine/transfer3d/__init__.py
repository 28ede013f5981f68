"""Carrying reimagined key views to every camera through the original object's 3DGS.

The original 3DGS (`splat_orig`) fixes the geometry; the key views (restyled frames at a few
cameras) fix the appearance. Two ways to meet, both consistent across views by construction:

- `reproject`: render depth and alpha of the original Gaussians at every camera, lift each
  pixel to 3D, look it up in every key view that sees the same surface point (depth test),
  blend those keys by how close their viewing direction is; what no key sees comes from a fill.
- `bake`: optimise the Gaussians' colours so that renders at the key cameras match the key
  views (closed-form start from the blend weights, then Adam), give Gaussians no key sees the
  colour change of their 3D neighbours, render every camera.

`hybrid` reprojects and lets the bake fill; `flow` carries the keys along optical flow between
neighbouring frames wherever that flow is trusted (a short baseline keeps detail a reprojection
through a rough depth blurs) and reprojects everywhere else.

`keys` maps the key views from the sheet's square tiles onto the undistorted cameras
(`sd_box`), and measures where a key's object disagrees with the original silhouette.
"""

from .bake import bake
from .carry import METHODS, Carried, carry
from .geometry import Cameras, Geometry, load_gaussians, render_geometry
from .keys import KeyView, alpha_mismatch, key_to_camera, object_mask
from .reproject import reproject

__all__ = ["METHODS", "Cameras", "Carried", "carry", "Geometry", "KeyView", "alpha_mismatch", "bake", "key_to_camera",
           "load_gaussians", "object_mask", "render_geometry", "reproject"]
