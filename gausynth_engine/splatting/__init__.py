"""3D Gaussian Splatting for the `splat` stage: data, model, rasterizers, trainer, files.

One idea per module: `dataset` (COLMAP model + images → views), `model` (Gaussians from SfM
points, optimizers), `rasterize` (gsplat on CUDA, `rasterize_torch` anywhere), `metrics`
(PSNR/SSIM), `train` (the loop), `checkpoint` (resumable state), `ply` (standard 3DGS files),
`compare` (the two variants side by side); the COLMAP scene of the generated sample's true
cameras that tests and benches use is tests/synthetic_scene.py. Heavy libraries (torch, gsplat, pycolmap) are
imported by these modules, so import them lazily.
"""
