"""3D Gaussian Splatting for the `splat` stage: data, model, rasterizers, trainer, files.

One idea per module: `dataset` (COLMAP model + images → views), `model` (Gaussians from SfM
points, optimizers), `rasterize` (gsplat on CUDA, `rasterize_torch` anywhere), `metrics`
(PSNR/SSIM), `train` (the loop), `checkpoint` (resumable state), `ply` (standard 3DGS files),
`compare` (the two variants side by side), `synthetic` (a COLMAP scene from the generated
sample's true cameras, for tests and benches). Heavy libraries (torch, gsplat, pycolmap) are
imported by these modules, so import them lazily.
"""
