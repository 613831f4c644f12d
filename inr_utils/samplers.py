"""Samplers: pick the (coords, values) pairs of one training step from a signal kept on the device.

A signal of any dimension (audio ``(N, C)``, image ``(H, W, C)``, video/volume ``(T, H, W, C)``) becomes flat
:class:`PixelData` (:func:`signal_to_data`); a sampler is a pure function ``sample(data, key) -> (coords,
values)`` usable inside ``jit``/``lax.scan``, so training never goes back to the host for data. Samplers only see
the flat ``(N, d)`` coords, so each works for any coordinate dimension d.

:data:`SAMPLERS` lists the sampler factories by name; :func:`make_sampler` picks one from a batch size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from inr_utils.grids import Bounds, cell_size, grid
from model_components.registry import Registry


class PixelData(NamedTuple):
    """A signal sampled on a grid (of any dimension d), flattened for training.

    Attributes:
      coords: ``(N, d)`` float32 sample-centre coordinates (see :mod:`inr_utils.grids`).
      values: ``(N, C)`` float32 signal values in [0, 1].
      pixel_size: ``(d,)`` float32 extent of one sample cell in coordinate units (2/W, 2/H, ...), for jitter.
    """

    coords: jax.Array
    values: jax.Array
    pixel_size: jax.Array


#: The flat form of a signal of any dimension (the same type as :class:`PixelData`).
SignalData = PixelData


def signal_to_data(signal: np.ndarray | jax.Array, bounds: Bounds | None = None) -> PixelData:
    """A signal of shape ``(*shape, C)`` (the last axis is channels: ``(N, C)`` audio, ``(H, W, C)`` image,
    ``(T, H, W, C)`` video) -> :class:`PixelData` with ``prod(shape)`` rows in C (row-major) order, coordinates
    by :func:`inr_utils.grids.grid` (``coords[:, 0]`` along the last sample axis).

    Args:
      signal: at least 2-D array; a 1-channel 1-D signal is ``(N, 1)``.
      bounds: the box of the domain the signal covers (default [-1, 1]^d).
    """
    if signal.ndim < 2:
        raise ValueError(f"expected a signal of shape (*sample_axes, channels), got shape {tuple(signal.shape)}; "
                         "give a 1-channel 1-D signal as (N, 1)")
    shape, channels = tuple(signal.shape[:-1]), signal.shape[-1]
    coords = grid(shape, bounds).reshape(-1, len(shape))
    values = jnp.asarray(signal, dtype=jnp.float32).reshape(-1, channels)
    return PixelData(coords, values, jnp.asarray(cell_size(shape, bounds)))


def image_to_pixel_data(image: np.ndarray | jax.Array) -> PixelData:
    """``(H, W, C)`` image -> :class:`PixelData` with ``N = H * W`` rows, in row-major pixel order."""
    if image.ndim != 3:
        raise ValueError(f"expected an image of shape (H, W, C), got shape {tuple(image.shape)}")
    return signal_to_data(image)


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
    """Every sample of the signal, every step (SIREN's setting). With ``jitter`` coordinates move within their cells.

    Returns:
      ``sample(data, key) -> (coords (N, in_dim), values (N, C))``.
    """

    def sample(data: PixelData, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        coords = data.coords
        if jitter:
            coords = coords + data.pixel_size * jax.random.uniform(key, coords.shape, minval=-0.5, maxval=0.5)
        return coords, data.values

    return sample


def window_sampler(batch_size: int, jitter: bool = False) -> Sampler:
    """A contiguous window of ``batch_size`` samples at a uniformly random start, every step: for audio ``(N, C)``
    a random time window, samples ``s, s + 1, ..., s + batch_size - 1`` with ``s ~ U{0, ..., N - 1}``, a window
    that runs past the end continuing at the start (indices mod N), so every sample is in a step's window with
    the same probability ``batch_size / N`` (windows clipped to the signal would train its ends less). For a
    d-dimensional signal the window runs in row-major (C) order of the flat data, i.e. along the last axis and on
    into the next rows/frames. With ``jitter`` coordinates move within their cells (see
    :func:`random_batch_sampler`).

    Returns:
      ``sample(data, key) -> (coords (batch_size, in_dim), values (batch_size, C))``, rows in signal order.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")

    def sample(data: PixelData, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        n = data.coords.shape[0]
        start_key, jitter_key = jax.random.split(key)
        start = jax.random.randint(start_key, (), 0, n)
        index = (start + jnp.arange(batch_size)) % n
        coords, values = data.coords[index], data.values[index]
        if jitter:
            coords = coords + data.pixel_size * jax.random.uniform(jitter_key, coords.shape, minval=-0.5, maxval=0.5)
        return coords, values

    return sample


def partition_batch_sampler(batch_size: int | None = None, partitions: int = 1, jitter: bool = False) -> Sampler:
    """Balanced sampling of partition-interleaved data (row ``r`` belongs to partition ``r mod partitions``, as
    :class:`inr_utils.partitions.PartitionLayout` arranges a signal): ``k = max(1, batch_size // partitions)``
    rows of every partition, uniformly with replacement, returned interleaved too (row ``j * partitions + p`` is
    one of partition p), so the batch reshapes to ``(k, partitions, d)`` for a grouped forward pass.
    ``partitions=1`` is :func:`random_batch_sampler` up to the random stream; ``batch_size=None`` takes every
    row (:func:`full_image_sampler`).

    Returns:
      ``sample(data, key) -> (coords (k * partitions, in_dim), values (k * partitions, C))``; the data's row count
      must be a multiple of ``partitions``.
    """
    if partitions <= 0 or (batch_size is not None and batch_size <= 0):
        raise ValueError(f"batch_size and partitions must be positive, got {batch_size} and {partitions}")
    if batch_size is None:
        return full_image_sampler(jitter)
    per_partition = max(1, batch_size // partitions)

    def sample(data: PixelData, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        index_key, jitter_key = jax.random.split(key)
        rows = data.coords.shape[0] // partitions
        picks = jax.random.randint(index_key, (per_partition, partitions), 0, rows)
        index = (picks * partitions + jnp.arange(partitions)).reshape(-1)
        coords, values = data.coords[index], data.values[index]
        if jitter:
            coords = coords + data.pixel_size * jax.random.uniform(jitter_key, coords.shape, minval=-0.5, maxval=0.5)
        return coords, values

    return sample


#: Sampler factories by name (the explicit list): ``"random"`` (``batch_size``, ``jitter``), ``"window"``
#: (``batch_size``, ``jitter``), ``"full"`` (``jitter``) and ``"partition"`` (``batch_size``, ``partitions``,
#: ``jitter``: balanced over the partitions of partition-interleaved data); each returns a :data:`Sampler`.
SAMPLERS: Registry[Callable[..., Sampler]] = Registry("sampler", {
    "random": random_batch_sampler,
    "window": window_sampler,
    "full": full_image_sampler,
    "partition": partition_batch_sampler,
})


def batch_samplers() -> list[str]:
    """Names of the :data:`SAMPLERS` that draw ``batch_size`` samples of any signal (what ``FitConfig.sampler``
    may name): ``random`` and ``window``. (``partition`` is what a partitioned model's layout picks itself, see
    :mod:`inr_utils.partitions`; ``full`` is ``batch_size=None``.)"""
    return ["random", "window"]


def make_sampler(batch_size: int | None, jitter: bool = False, name: str = "random") -> Sampler:
    """The sampler of a fit: ``batch_size=None`` -> :func:`full_image_sampler` (whatever ``name``), else the
    factory ``name`` of :data:`SAMPLERS` (``"random"``: :func:`random_batch_sampler`, ``"window"``:
    :func:`window_sampler`) with ``batch_size`` samples a step."""
    if batch_size is None:
        return SAMPLERS.get("full")(jitter=jitter)
    return SAMPLERS.get(name)(batch_size, jitter=jitter)
