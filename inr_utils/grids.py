"""Coordinate grids: the one pixel convention used everywhere in flax-inr.

Convention (pixel centres, ``ij`` indexing):
  * An image of H rows and W columns covers the square domain [-1, 1] x [-1, 1]; each pixel is a cell of
    that domain and is sampled at its centre. Pixel (row i, column j) has coordinates
        x = -1 + (2 j + 1) / W,    y = -1 + (2 i + 1) / H.
  * Coordinates are ordered ``(x, y)``: ``coords[..., 0]`` grows along columns (left to right),
    ``coords[..., 1]`` along rows (top to bottom).
  * A grid has shape ``(H, W, 2)``; ``grid[i, j]`` is the centre of pixel (i, j).

So rendering at the training resolution evaluates exactly the training pixels, and rendering at k times the
resolution evaluates k x k sub-pixel centres of every training pixel (what resampling an image means).
Non-square images keep the square domain (pixels are then non-square cells); rendering keeps the aspect
ratio by asking for a height and width in the same ratio.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np


class Region(NamedTuple):
    """An axis-aligned rectangle of the coordinate domain, ``x in [x0, x1]``, ``y in [y0, y1]``."""

    x0: float = -1.0
    x1: float = 1.0
    y0: float = -1.0
    y1: float = 1.0


FULL_DOMAIN = Region()


def pixel_centers(n: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Centres of ``n`` equal cells splitting [low, high]: ``low + (high - low) (k + 0.5) / n``, shape (n,)."""
    if n <= 0:
        raise ValueError(f"a grid needs at least one pixel per axis, got {n}")
    return (low + (high - low) * (np.arange(n, dtype=np.float64) + 0.5) / n).astype(np.float32)


def make_grid(height: int, width: int, region: Region = FULL_DOMAIN) -> jnp.ndarray:
    """Pixel-centre coordinates of a ``height x width`` image covering ``region``.

    Args:
      height: rows H.
      width: columns W.
      region: the rectangle of the domain the image covers (default the whole [-1, 1]^2).

    Returns:
      float32 array ``(H, W, 2)`` with ``[..., 0] = x`` (column) and ``[..., 1] = y`` (row).
    """
    xs = pixel_centers(width, region.x0, region.x1)
    ys = pixel_centers(height, region.y0, region.y1)
    xx, yy = np.meshgrid(xs, ys, indexing="xy")
    return jnp.asarray(np.stack([xx, yy], axis=-1))


def coords_to_pixel_indices(coords: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
    """Inverse of :func:`make_grid` on the full domain: ``(..., 2)`` coords -> ``(..., 2)`` float ``(row, col)``
    pixel indices (integers exactly at pixel centres)."""
    col = (coords[..., 0] + 1.0) * width / 2.0 - 0.5
    row = (coords[..., 1] + 1.0) * height / 2.0 - 0.5
    return jnp.stack([row, col], axis=-1)
