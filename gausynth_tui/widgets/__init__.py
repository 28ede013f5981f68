"""Widgets the screens share: images in the terminal (half-blocks, Kitty/sixel), orbit renders."""
