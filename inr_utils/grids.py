"""Coordinate grids: the one sample convention used everywhere in flax-inr, for signals of any dimension.

Convention (sample centres):
  * A signal sampled on an array of shape ``(n_0, ..., n_{d-1})`` (without the channel axis: ``(N,)`` audio,
    ``(H, W)`` image, ``(T, H, W)`` video or ``(D, H, W)`` volume) covers the domain [-1, 1]^d; each sample is a
    cell of that domain and sits at its centre: along an axis of n samples, sample i is at
        -1 + (2 i + 1) / n.
  * Coordinates are ordered from the last array axis to the first: ``coords[..., 0]`` runs along the last axis
    (x, columns of an image), ``coords[..., 1]`` along the one before (y, rows), ``coords[..., 2]`` along the
    one before that (t or z, frames or slices). So the coordinate vector is ``(x, y, z)``-like, and the array
    is indexed ``[..., z, y, x]`` like images ``[row, column]``.
  * A grid has shape ``(*shape, d)``; ``grid[i_0, ..., i_{d-1}]`` is the centre of that sample.

For images: pixel (row i, column j) of an H x W image is at ``x = -1 + (2 j + 1) / W``, ``y = -1 + (2 i + 1) / H``;
:func:`make_grid` gives the ``(H, W, 2)`` grid (the same values as ``grid((H, W))``).

So rendering at the training resolution evaluates exactly the training samples, and rendering at k times the
resolution evaluates k^d sub-cell centres of every training cell (what resampling a signal means). Non-square
images keep the square domain (pixels are then non-square cells); rendering keeps the aspect ratio by asking
for a shape in the same ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

#: Bounds of a box of the domain, one ``(low, high)`` pair per coordinate, in coordinate order (x, y, z, ...).
Bounds = Sequence[tuple[float, float]]


class Region(NamedTuple):
    """An axis-aligned rectangle of the coordinate domain, ``x in [x0, x1]``, ``y in [y0, y1]``."""

    x0: float = -1.0
    x1: float = 1.0
    y0: float = -1.0
    y1: float = 1.0

    def bounds(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The rectangle as :data:`Bounds` ``((x0, x1), (y0, y1))``."""
        return (self.x0, self.x1), (self.y0, self.y1)


FULL_DOMAIN = Region()


def pixel_centers(n: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Centres of ``n`` equal cells splitting [low, high]: ``low + (high - low) (k + 0.5) / n``, shape (n,)."""
    if n <= 0:
        raise ValueError(f"a grid needs at least one pixel per axis, got {n}")
    return (low + (high - low) * (np.arange(n, dtype=np.float64) + 0.5) / n).astype(np.float32)


def check_bounds(shape: Sequence[int], bounds: Bounds | None) -> tuple[tuple[float, float], ...]:
    """``bounds`` (or the full domain [-1, 1]^d) as one ``(low, high)`` pair per coordinate, checked against
    ``shape``; raises ``ValueError`` for a wrong count or an empty interval."""
    d = len(shape)
    if d == 0:
        raise ValueError("a grid needs at least one axis, got shape ()")
    if any(int(n) <= 0 for n in shape):
        raise ValueError(f"a grid needs at least one sample per axis, got shape {tuple(shape)}")
    if bounds is None:
        return ((-1.0, 1.0),) * d
    bounds = tuple((float(low), float(high)) for low, high in bounds)
    if len(bounds) != d:
        raise ValueError(f"bounds need one (low, high) pair per coordinate: {d} for shape {tuple(shape)}, "
                         f"got {len(bounds)}")
    return bounds


def axis_centers(shape: Sequence[int], bounds: Bounds | None = None) -> list[np.ndarray]:
    """Sample centres along each array axis (array order), float32: ``[centres of axis 0, ...]``; axis ``a`` has
    coordinate ``d - 1 - a`` (see the module docstring)."""
    bounds = check_bounds(shape, bounds)
    d = len(shape)
    return [pixel_centers(int(n), *bounds[d - 1 - a]) for a, n in enumerate(shape)]


def grid(shape: Sequence[int], bounds: Bounds | None = None) -> jnp.ndarray:
    """Sample-centre coordinates of a signal of array shape ``shape`` (any dimension d = ``len(shape)``).

    Args:
      shape: ``(n_0, ..., n_{d-1})``, the signal's sample axes without channels (``(N,)``, ``(H, W)``,
        ``(T, H, W)``).
      bounds: the box of the domain the samples cover, one ``(low, high)`` per coordinate in coordinate order
        (x first, i.e. the last axis first); default [-1, 1]^d.

    Returns:
      float32 array ``(*shape, d)``: ``[..., 0]`` runs along the last axis, ``[..., d - 1]`` along the first.
    """
    centres = axis_centers(shape, bounds)
    mesh = np.meshgrid(*centres, indexing="ij")
    return jnp.asarray(np.stack(mesh[::-1], axis=-1))


def cell_size(shape: Sequence[int], bounds: Bounds | None = None) -> np.ndarray:
    """Extent of one sample cell in coordinate units, ``(d,)`` float32 in coordinate order (2/W, 2/H, ... on
    the full domain), e.g. for jitter."""
    bounds = check_bounds(shape, bounds)
    d = len(shape)
    return np.asarray([(bounds[k][1] - bounds[k][0]) / shape[d - 1 - k] for k in range(d)], np.float32)


def make_grid(height: int, width: int, region: Region = FULL_DOMAIN) -> jnp.ndarray:
    """Pixel-centre coordinates of a ``height x width`` image covering ``region`` (``grid((H, W))`` for images).

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


def coords_to_indices(coords: jnp.ndarray, shape: Sequence[int]) -> jnp.ndarray:
    """Inverse of :func:`grid` on the full domain: ``(..., d)`` coords -> ``(..., d)`` float sample indices in
    array order ``(i_0, ..., i_{d-1})`` (integers exactly at sample centres)."""
    d = len(shape)
    return jnp.stack([(coords[..., d - 1 - a] + 1.0) * shape[a] / 2.0 - 0.5 for a in range(d)], axis=-1)


def coords_to_pixel_indices(coords: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
    """Inverse of :func:`make_grid` on the full domain: ``(..., 2)`` coords -> ``(..., 2)`` float ``(row, col)``
    pixel indices (integers exactly at pixel centres)."""
    col = (coords[..., 0] + 1.0) * width / 2.0 - 0.5
    row = (coords[..., 1] + 1.0) * height / 2.0 - 0.5
    return jnp.stack([row, col], axis=-1)
