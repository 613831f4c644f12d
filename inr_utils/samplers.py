"""Samplers: pick the (coords, values) pairs of one training step from a signal kept on the device.

A sampler is a pure function ``sample(data, key) -> (coords, values)`` usable inside ``jit``/``lax.scan``,
so training never goes back to the host for data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from inr_utils.grids import make_grid


class PixelData(NamedTuple):
    """A signal sampled on a grid, flattened for training.

    Attributes:
      coords: ``(N, in_dim)`` float32 pixel-centre coordinates (see :mod:`inr_utils.grids`).
      values: ``(N, C)`` float32 signal values in [0, 1].
      pixel_size: ``(in_dim,)`` float32 extent of one pixel in coordinate units (2/W, 2/H), for jitter.
    """

    coords: jax.Array
    values: jax.Array
    pixel_size: jax.Array


def image_to_pixel_data(image: np.ndarray | jax.Array) -> PixelData:
    """``(H, W, C)`` image -> :class:`PixelData` with ``N = H * W`` rows, in row-major pixel order."""
    if image.ndim != 3:
        raise ValueError(f"expected an image of shape (H, W, C), got shape {tuple(image.shape)}")
    height, width, channels = image.shape
    coords = make_grid(height, width).reshape(-1, 2)
    values = jnp.asarray(image, dtype=jnp.float32).reshape(-1, channels)
    return PixelData(coords, values, jnp.asarray([2.0 / width, 2.0 / height], dtype=jnp.float32))


Sampler = Callable[[PixelData, jax.Array], tuple[jax.Array, jax.Array]]


def random_batch_sampler(batch_size: int, jitter: bool = False) -> Sampler:
    """Draws ``batch_size`` pixels uniformly with replacement (as the classic tutorials do).

    With ``jitter``, each coordinate moves uniformly within its pixel cell (offset in [-1/2, 1/2) pixel),
    keeping the pixel's value: the INR then learns the pixel as an area, which reduces aliasing when
    rendering at higher resolution.

    Returns:
      ``sample(data, key) -> (coords (batch_size, in_dim), values (batch_size, C))``.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")

    def sample(data: PixelData, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        index_key, jitter_key = jax.random.split(key)
        index = jax.random.randint(index_key, (batch_size,), 0, data.coords.shape[0])
        coords, values = data.coords[index], data.values[index]
        if jitter:
            coords = coords + data.pixel_size * jax.random.uniform(jitter_key, coords.shape, minval=-0.5, maxval=0.5)
        return coords, values

    return sample


def full_image_sampler(jitter: bool = False) -> Sampler:
    """Every pixel, every step (SIREN's setting). With ``jitter`` coordinates move within their cells.

    Returns:
      ``sample(data, key) -> (coords (N, in_dim), values (N, C))``.
    """

    def sample(data: PixelData, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        coords = data.coords
        if jitter:
            coords = coords + data.pixel_size * jax.random.uniform(key, coords.shape, minval=-0.5, maxval=0.5)
        return coords, data.values

    return sample


def make_sampler(batch_size: int | None, jitter: bool = False) -> Sampler:
    """``batch_size=None`` -> :func:`full_image_sampler`, else :func:`random_batch_sampler`."""
    return full_image_sampler(jitter) if batch_size is None else random_batch_sampler(batch_size, jitter)
