"""Propagating restyled key frames to every frame of a clip along optical flow (no Ebsynth)."""

from .flow import METHODS, dense_flow, pair_flows
from .sequence import propagate, propagate_forward_only, segments

__all__ = ["METHODS", "dense_flow", "pair_flows", "propagate", "propagate_forward_only", "segments"]
