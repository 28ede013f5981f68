"""Synchronised diffusion over the Gaussians (SyncTweedies' case 2) for the `sync` stage."""
