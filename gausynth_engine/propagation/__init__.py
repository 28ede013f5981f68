"""Propagating restyled key frames to every frame of a clip along optical flow (no Ebsynth)."""

from .flow import METHODS, dense_flow, pair_flows
from .sequence import propagate, segments

__all__ = ["METHODS", "dense_flow", "pair_flows", "propagate", "segments"]
