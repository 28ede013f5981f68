"""Seeing a run's splat: a browser viewer (viser), live snapshots of a training, orbit renders.

`models` finds what there is to see (the final PLY of each variant, a live snapshot, the SfM
cameras); `live` is the training's side (a tiny hook that writes snapshots only while a viewer
asks for them); `server` is the viser viewer; `orbit` renders turn-arounds of a model for the
terminal. Heavy libraries (torch, viser, pycolmap) are imported lazily.
"""
