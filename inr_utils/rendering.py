"""Render an INR on the sample grid of a signal of any dimension (an image at any resolution or over any
rectangle of its domain, an audio clip, a video), in bounded memory, for one model or a stack of models.

Samples follow the convention of :mod:`inr_utils.grids`. The grid is evaluated a slab of its first axis at a
time (a band of image rows, a run of frames) with one compiled function of fixed input size (the last slab is
padded), so peak memory is set by ``chunk_points``, not by the output size, apart from the output array itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from inr_utils.grids import FULL_DOMAIN, Bounds, Region, axis_centers


def render_grid(apply_fn: Callable[[Any, jax.Array], jax.Array], variables: Any, shape: Sequence[int],
                bounds: Bounds | None = None, chunk_points: int = 1 << 16, out_dtype: Any = np.float32,
                stacked: bool = False) -> np.ndarray:
    """Evaluates the INR on the sample centres of a grid of ``shape`` covering ``bounds``.

    Args:
      apply_fn: ``(variables, coords (n, d)) -> values (n, C)``, e.g. ``model.apply``.
      variables: the model's variables (``{"params": ..., ...}``); with ``stacked``, every leaf has a leading
        model axis M (the models of a sweep, vmapped over).
      shape: ``(n_0, ..., n_{d-1})`` sample axes (``(N,)`` audio, ``(H, W)`` image, ``(T, H, W)`` video).
      bounds: the box of the domain to render, one ``(low, high)`` per coordinate in coordinate order (x first);
        default [-1, 1]^d.
      chunk_points: grid points evaluated per compiled call (per model; at least one slab of the first axis).
      out_dtype: dtype of the returned array (``np.uint8`` output is scaled from [0, 1] and clipped).
      stacked: ``variables`` hold M models along a leading axis; all are rendered by one vmapped program.

    Returns:
      numpy array ``(*shape, C)``, or ``(M, *shape, C)`` with ``stacked``.
    """
    shape = tuple(int(n) for n in shape)
    centres = axis_centers(shape, bounds)  # checks shape and bounds
    rest = math.prod(shape[1:])
    slab = max(1, min(shape[0], chunk_points // rest))
    others = [jnp.asarray(c) for c in centres[1:]]
    evaluate = jax.vmap(apply_fn, in_axes=(0, None)) if stacked else apply_fn

    @jax.jit
    def block(variables: Any, first: jax.Array) -> jax.Array:
        mesh = jnp.meshgrid(first, *others, indexing="ij")  # each (slab, *shape[1:])
        coords = jnp.stack(mesh[::-1], axis=-1).reshape(-1, len(shape))
        values = evaluate(variables, coords)
        return values.reshape(*values.shape[:-2], first.shape[0], *shape[1:], values.shape[-1])

    out = None
    axis = 1 if stacked else 0
    for start in range(0, shape[0], slab):
        count = min(slab, shape[0] - start)
        first = np.pad(centres[0][start:start + count], (0, slab - count), mode="edge")
        values = np.asarray(block(variables, jnp.asarray(first)))
        values = values[:, :count] if stacked else values[:count]
        if out is None:
            out = np.empty((*values.shape[:axis], *shape, values.shape[-1]), dtype=out_dtype)
        if np.dtype(out_dtype) == np.uint8:
            values = np.round(np.clip(values, 0.0, 1.0) * 255.0)
        if stacked:
            out[:, start:start + count] = values
        else:
            out[start:start + count] = values
    return out


def render(apply_fn: Callable[[Any, jax.Array], jax.Array], variables: Any, height: int, width: int,
           region: Region = FULL_DOMAIN, chunk_pixels: int = 1 << 16, out_dtype: Any = np.float32,
           stacked: bool = False) -> np.ndarray:
    """Evaluates the INR on the pixel centres of a ``height x width`` image covering ``region``
    (:func:`render_grid` for images).

    Args:
      apply_fn: ``(variables, coords (n, 2)) -> values (n, C)``, e.g. ``model.apply``.
      variables: the model's variables (``{"params": ..., ...}``); with ``stacked`` a leading model axis.
      height: output rows.
      width: output columns.
      region: rectangle of the [-1, 1]^2 domain to render (zoom by passing a smaller one).
      chunk_pixels: pixels evaluated per compiled call (at least one full row).
      out_dtype: dtype of the returned array (``np.uint8`` output is scaled from [0, 1] and clipped).
      stacked: render every model of stacked ``variables`` (a sweep's) with one vmapped program.

    Returns:
      ``(height, width, C)`` numpy array, or ``(M, height, width, C)`` with ``stacked``.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"render size must be positive, got {height}x{width}")
    return render_grid(apply_fn, variables, (height, width), region.bounds(), chunk_pixels, out_dtype, stacked)
