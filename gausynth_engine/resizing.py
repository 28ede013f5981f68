"""Image resizing: the one rule for scaling pixels — area when shrinking, Lanczos when growing.

Every stage that brings an image to another size (frames to the SfM size, sheets and key-frame
tiles to the diffusion size, references to an output's size for metrics) goes through here.
Masks and alpha use their own rules (`compositing.resize_alpha`: linear when growing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Gives the image resized to width × height: area when shrinking, Lanczos when growing."""
    import cv2

    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrink = image.shape[1] * image.shape[0] > width * height
    return cv2.resize(image, (width, height),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)


def resize_square(image: np.ndarray, side: int) -> np.ndarray:
    """Gives the image resized to side × side (see `resize`)."""
    return resize(image, side, side)


def resize_like(image: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Gives the image resized to `like`'s height and width (see `resize`)."""
    return resize(image, like.shape[1], like.shape[0])
