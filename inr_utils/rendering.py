"""Render an INR to an image at any resolution or over any rectangle of its domain, in bounded memory.

Pixels follow the convention of :mod:`inr_utils.grids`. The image is evaluated a band of rows at a time with
one compiled function of fixed input size (the last band is padded), so peak memory is set by
``chunk_pixels``, not by the output size, apart from the output array itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from inr_utils.grids import FULL_DOMAIN, Region, pixel_centers


def render(apply_fn: Callable[[Any, jax.Array], jax.Array], variables: Any, height: int, width: int,
           region: Region = FULL_DOMAIN, chunk_pixels: int = 1 << 16, out_dtype: Any = np.float32) -> np.ndarray:
    """Evaluates the INR on the pixel centres of a ``height x width`` image covering ``region``.

    Args:
      apply_fn: ``(variables, coords (n, 2)) -> values (n, C)``, e.g. ``model.apply``.
      variables: the model's variables (``{"params": ..., ...}``).
      height: output rows.
      width: output columns.
      region: rectangle of the [-1, 1]^2 domain to render (zoom by passing a smaller one).
      chunk_pixels: pixels evaluated per compiled call (at least one full row).
      out_dtype: dtype of the returned array (``np.uint8`` output is scaled from [0, 1] and clipped).

    Returns:
      ``(height, width, C)`` numpy array.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"render size must be positive, got {height}x{width}")
    rows_per_chunk = max(1, min(height, chunk_pixels // width))
    xs = pixel_centers(width, region.x0, region.x1)  # (W,)
    ys = pixel_centers(height, region.y0, region.y1)  # (H,)

    @jax.jit
    def band(variables: Any, band_ys: jax.Array) -> jax.Array:
        yy, xx = jnp.meshgrid(band_ys, jnp.asarray(xs), indexing="ij")  # (rows, W) each
        values = apply_fn(variables, jnp.stack([xx, yy], axis=-1).reshape(-1, 2))
        return values.reshape(band_ys.shape[0], width, -1)

    out = None
    for row in range(0, height, rows_per_chunk):
        rows = min(rows_per_chunk, height - row)
        band_ys = np.pad(ys[row:row + rows], (0, rows_per_chunk - rows), mode="edge")
        values = np.asarray(band(variables, jnp.asarray(band_ys)))[:rows]
        if out is None:
            out = np.empty((height, width, values.shape[-1]), dtype=out_dtype)
        if np.dtype(out_dtype) == np.uint8:
            values = np.round(np.clip(values, 0.0, 1.0) * 255.0)
        out[row:row + rows] = values
    return out
