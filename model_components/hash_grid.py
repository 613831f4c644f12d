"""Instant-NGP multiresolution hash encoding (Müller et al. 2022) and the ``hashgrid`` model preset.

The encoding keeps, for each of L resolution levels, a table of F-dimensional feature vectors attached to the
vertices of a regular grid over the unit square/cube. A point is encoded by interpolating (bi-/trilinearly)
the features of the 2^d vertices of its cell on every level and concatenating the L results. Coarse levels
whose vertices fit in the table are indexed densely (one entry per vertex, no collisions); finer levels map
vertices to entries with a spatial hash, letting gradient descent resolve the collisions.

CPU speed: all levels are handled at once. The L per-level tables live in one flat parameter array (level l
occupies rows ``offsets[l] : offsets[l] + sizes[l]``), the corner indices of all levels are computed in one
vectorised integer pass, and the features are read with one gather (whose gradient is one scatter-add), so
the cost does not grow with Python-level loops over levels or corners.

This module defines the ``hashgrid`` encoding and the ``hashgrid`` model preset's fields (:data:`PRESET`); both
are listed in :mod:`model_components.catalog` / :mod:`model_components.presets`. It imports nothing of the
package.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

#: Per-dimension multipliers of the spatial hash (Müller et al. 2022, Eq. 4): pi_1 = 1, pi_2, pi_3.
HASH_PRIMES = (1, 2654435761, 805459861)


@dataclass(frozen=True)
class GridLayout:
    """Static description of the levels of a hash grid (plain Python/numpy, known at trace time).

    Attributes:
      in_dim: d, the coordinate dimension (2 or 3).
      resolutions: ``(L,)`` int, N_l: level l has N_l cells and N_l + 1 vertices per axis.
      dense: ``(L,)`` bool, whether level l indexes its (N_l + 1)^d vertices densely (they fit in the table).
      sizes: ``(L,)`` int, rows of level l's table: (N_l + 1)^d if dense, else T.
      offsets: ``(L,)`` int, first row of level l in the flat table.
      table_size: T, the largest table of a level.
    """

    in_dim: int
    resolutions: tuple[int, ...]
    dense: tuple[bool, ...]
    sizes: tuple[int, ...]
    offsets: tuple[int, ...]
    table_size: int

    @property
    def num_levels(self) -> int:
        return len(self.resolutions)

    @property
    def total_rows(self) -> int:
        """Rows of the flat table (sum of the level sizes)."""
        return int(self.offsets[-1] + self.sizes[-1])


def level_resolutions(num_levels: int, base_resolution: int, max_resolution: int) -> tuple[int, ...]:
    """N_l = floor(N_min * b^l), b = exp((ln N_max - ln N_min) / (L - 1)) for l = 0 .. L-1 (Eq. 2-3).

    Computed in float64 with a 1e-9 relative tolerance so that the last level is exactly N_max despite
    rounding (``floor(16 * 16^(15/15))`` must be 256, not 255). A single level uses N_min.
    """
    if num_levels == 1:
        return (int(base_resolution),)
    growth = math.exp((math.log(max_resolution) - math.log(base_resolution)) / (num_levels - 1))
    return tuple(int(math.floor(base_resolution * growth**level * (1 + 1e-9))) for level in range(num_levels))


def grid_layout(in_dim: int, num_levels: int, log2_table_size: int, base_resolution: int,
                max_resolution: int) -> GridLayout:
    """The :class:`GridLayout` of a hash grid; a level is dense when (N_l + 1)^d <= T = 2^log2_table_size."""
    table_size = 1 << log2_table_size
    resolutions = level_resolutions(num_levels, base_resolution, max_resolution)
    dense = tuple((n + 1) ** in_dim <= table_size for n in resolutions)  # a prefix: N_l grows with l
    sizes = tuple((n + 1) ** in_dim if is_dense else table_size for n, is_dense in zip(resolutions, dense, strict=True))
    offsets = tuple(int(x) for x in np.concatenate([[0], np.cumsum(sizes)[:-1]]))
    if offsets[-1] + sizes[-1] >= 2**31:
        raise ValueError(f"the hash grid's {offsets[-1] + sizes[-1]} table rows exceed int32 indexing; "
                         "lower log2_table_size or num_levels")
    return GridLayout(in_dim, resolutions, dense, sizes, offsets, table_size)


def spatial_hash(vertex: jax.Array, table_size: int) -> jax.Array:
    """Müller et al. 2022, Eq. 4: ``h(x) = (XOR_i x_i * pi_i) mod T`` in wrapping uint32 arithmetic.

    Args:
      vertex: ``(..., d)`` non-negative integer grid coordinates, d <= 3.
      table_size: T, a power of two (``mod T`` is then ``& (T - 1)``).

    Returns:
      ``(...,)`` uint32 indices in [0, T).
    """
    v = vertex.astype(jnp.uint32)
    h = v[..., 0] * jnp.uint32(HASH_PRIMES[0])
    for i in range(1, vertex.shape[-1]):
        h = h ^ (v[..., i] * jnp.uint32(HASH_PRIMES[i]))
    return h & jnp.uint32(table_size - 1)


def corner_offsets(in_dim: int) -> np.ndarray:
    """``(2^d, d)`` int32: the corners {0, 1}^d of a cell, first axis fastest (corner c has bit i = axis i)."""
    return np.array([[(c >> i) & 1 for i in range(in_dim)] for c in range(1 << in_dim)], dtype=np.int32)


def hash_grid_lookup(coords01: jax.Array, layout: GridLayout,
                     half_cell_offset: bool = False) -> tuple[jax.Array, jax.Array]:
    """Flat-table rows and interpolation weights of the 2^d cell corners of every point on every level.

    Position on level l: ``p = x * N_l`` with x in [0, 1], or, with ``half_cell_offset``, tiny-cuda-nn's
    ``p = x * (N_l - 1) + 0.5`` (vertex v then sits at x = (v - 0.5) / (N_l - 1), so the vertices of a level
    are not on the pixel centres of an N_l-pixel image and rarely coincide with another level's); the cell
    is ``floor(p)`` clamped to [0, N_l - 1] (so x = 1 lies in the last cell; both ways use vertices
    0 .. N_l) and the local coordinate is ``t = p - cell`` in [0, 1]. Corner
    c in {0, 1}^d gets weight ``prod_i (t_i if c_i else 1 - t_i)`` (bi-/trilinear interpolation; the weights
    are differentiable in x). Its row is ``offsets[l] + index`` with the dense index
    ``sum_i v_i (N_l + 1)^i`` or the spatial hash of the vertex ``v = cell + c``.

    Args:
      coords01: ``(..., d)`` float coordinates in [0, 1]; points outside are clamped onto the boundary.
      layout: from :func:`grid_layout`; ``layout.in_dim`` must equal d.
      half_cell_offset: tiny-cuda-nn's scale N_l - 1 and +0.5 offset (see above).

    Returns:
      ``(rows, weights)``: ``(..., L, 2^d)`` int32 rows of the flat table and ``(..., L, 2^d)`` float weights
      (summing to 1 over corners).
    """
    d = coords01.shape[-1]
    if d != layout.in_dim:
        raise ValueError(f"hash grid laid out for {layout.in_dim}-D coordinates got {d}-D ones")
    dtype = jnp.promote_types(coords01.dtype, jnp.float32)  # float64 coordinates stay float64
    res = jnp.asarray(layout.resolutions, dtype)  # (L,)
    x = jnp.clip(coords01.astype(dtype), 0.0, 1.0)
    if half_cell_offset:
        pos = x[..., None, :] * (res - 1.0)[:, None] + 0.5  # (..., L, d), in [0.5, N_l - 0.5]
    else:
        pos = x[..., None, :] * res[:, None]  # (..., L, d)
    cell = jnp.clip(jnp.floor(pos), 0.0, (res - 1.0)[:, None])  # (..., L, d)
    local = pos - cell  # (..., L, d), in [0, 1]
    corners = corner_offsets(d)  # (C, d)
    vertex = cell.astype(jnp.int32)[..., None, :] + jnp.asarray(corners)  # (..., L, C, d)

    # Bi-/trilinear weights: prod over axes of t (corner bit 1) or 1 - t (bit 0).
    t = local[..., None, :]  # (..., L, 1, d)
    weights = jnp.prod(jnp.where(jnp.asarray(corners, bool), t, 1.0 - t), axis=-1)  # (..., L, C)

    # Resolutions grow with l, so the dense levels are the first ones: index them as sum_i v_i (N_l + 1)^i,
    # hash the rest.
    num_dense = sum(layout.dense)
    parts = []
    if num_dense:
        strides = np.array([[(n + 1) ** i for i in range(d)] for n in layout.resolutions[:num_dense]], np.int32)
        parts.append(jnp.sum(vertex[..., :num_dense, :, :] * jnp.asarray(strides)[:, None, :], axis=-1))
    if num_dense < layout.num_levels:
        parts.append(spatial_hash(vertex[..., num_dense:, :, :], layout.table_size).astype(jnp.int32))
    index = parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-2)  # (..., L, C)
    rows = index + jnp.asarray(layout.offsets, jnp.int32)[:, None]
    return rows, weights


@partial(jax.jit, static_argnums=(1,))
def hash_uniform(key: jax.Array, shape: tuple[int, ...], minval: float, maxval: float) -> jax.Array:
    """U(minval, maxval) float32 numbers of ``shape`` from a counter-based integer hash of ``key``.

    Element i is ``lowbias32(i * 0x9E3779B9 + mix(key))`` (a 32-bit avalanche hash; Wellons 2018) turned into
    a float in [0, 1) from its top 23 bits. Deterministic in ``key`` (same values eagerly, under ``jit`` and
    under ``vmap``) and independent across keys, which is all a table of tiny initial features needs. It is
    used instead of ``jax.random.uniform`` because XLA:CPU compiles the threefry generator for every new
    shape in about 0.4 s, more than a hash grid needs to train its first 10 steps; this compiles in ~0.05 s.

    Args:
      key: a JAX PRNG key (typed or raw ``uint32``).
      shape: output shape.
      minval, maxval: the interval.

    Returns:
      float32 array of ``shape``.
    """
    words = jax.random.key_data(key).reshape(-1).astype(jnp.uint32) if jnp.issubdtype(
        key.dtype, jax.dtypes.prng_key) else key.reshape(-1).astype(jnp.uint32)
    seed = jnp.uint32(0x6A09E667)
    for i in range(words.shape[0]):
        seed = _lowbias32(seed ^ words[i])
    x = jax.lax.iota(jnp.uint32, math.prod(shape)) * jnp.uint32(0x9E3779B9) + seed
    x = _lowbias32(x)
    unit = jax.lax.bitcast_convert_type((x >> 9) | jnp.uint32(0x3F800000), jnp.float32) - 1.0  # [0, 1)
    return (minval + (maxval - minval) * unit).reshape(shape)


def _lowbias32(x: jax.Array) -> jax.Array:
    """Chris Wellons' ``lowbias32`` integer hash (uint32 -> uint32, full avalanche)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def interpolate_rows(table: jax.Array, rows: jax.Array, weights: jax.Array) -> jax.Array:
    """Weighted sum of table rows: ``out[..., f] = sum_c weights[..., c] * table[rows[..., c], f]``.

    One gather; its reverse-mode derivative is one scatter-add of ``weights * grad`` into a zero table (so
    only touched rows get gradient), and forward mode works too. The sum over corners is written as C
    multiply-adds: as an ``einsum``, XLA:CPU makes it a batched matrix product of (1 x C) by (C x F) blocks,
    several times slower than the gather itself.

    Args:
      table: ``(R, F)`` float feature table.
      rows: ``(..., C)`` int32 rows in [0, R) (not checked).
      weights: ``(..., C)`` float weights.

    Returns:
      ``(..., F)`` float array.
    """
    feats = table.at[rows].get(mode="promise_in_bounds")  # (..., C, F)
    out = weights[..., 0, None] * feats[..., 0, :]
    for c in range(1, rows.shape[-1]):
        out = out + weights[..., c, None] * feats[..., c, :]
    return out


class HashGridEncoding(nn.Module):
    """Multiresolution hash encoding (Müller et al. 2022, "Instant Neural Graphics Primitives with a
    Multiresolution Hash Encoding", Sec. 3).

    Coordinates in [-1, 1]^d are mapped to x in [0, 1]^d. Level l = 0 .. L-1 has resolution

        N_l = floor(N_min * b^l),   b = exp((ln N_max - ln N_min) / (L - 1)),

    i.e. N_l + 1 vertices per axis, and a point's position on it is ``x (N_l - 1) + 0.5`` (tiny-cuda-nn's
    scale and half-cell offset, ``half_cell_offset=True``, the default) or ``x N_l`` (the paper's Eq. 2 read
    literally). Without the offset the vertices of level N_l sit on the pixel centres' half-grid of an
    N_l-pixel image: on a 256-pixel image with N_max = 256 every pixel centre weights its 4 finest corners
    exactly 1/4 each (the finest level only learns their mean), and at 128 pixels every centre sits on a vertex
    (README "Conventions", item 6, has the measured effect). Each vertex v owns a row of the level's table:
    ``sum_i v_i (N_l + 1)^i`` when all (N_l + 1)^d vertices fit in T = 2^log2_table_size rows
    (collision-free), else the spatial hash
    ``(v_1 * 1 xor v_2 * 2654435761 xor v_3 * 805459861) mod T``. The level's feature at x is the bilinear
    (d = 2) or trilinear (d = 3) interpolation of the F-vectors of the corners of x's cell, and the encoding
    is the concatenation over levels (level-major: the F features of level 0 first).

    Parameters: one flat ``"params"`` array ``table`` of shape ``(sum_l size_l, F)``, initialised
    U(-init_scale, init_scale) (1e-4 in the paper; drawn by :func:`hash_uniform`), where
    size_l = min(T, (N_l + 1)^d): dense levels take only the rows they use, so a coarse level costs no
    padding (rows ``offsets[l] : offsets[l] + size_l`` of :func:`grid_layout`). Gradients reach only the rows
    of touched vertices. Points outside [-1, 1]^d are clamped onto the boundary.

    During ``init`` the module only creates its table and returns zeros of the output's shape (the lookup is
    not traced), so initialising a model compiles nothing for it; ``init_with_output`` therefore reports
    zeros for this encoding.

    Attributes:
      num_levels: L.
      features_per_level: F.
      log2_table_size: log2 T, the rows of a hashed level.
      base_resolution: N_min, cells per axis of the coarsest level.
      max_resolution: N_max, cells per axis of the finest level (>= N_min).
      init_scale: half-width of the uniform initialisation of the table.
      half_cell_offset: tiny-cuda-nn's position ``x (N_l - 1) + 0.5`` instead of ``x N_l``.

    Shapes: ``(..., d) -> (..., L * F)`` float32, d in {2, 3}.
    """

    num_levels: int = 16
    features_per_level: int = 2
    log2_table_size: int = 15
    base_resolution: int = 16
    max_resolution: int = 256
    init_scale: float = 1e-4
    half_cell_offset: bool = True

    @staticmethod
    def check_options(options: dict) -> None:
        def integer(name: str, default: int, low: int, high: int | None = None) -> int:
            value = options.get(name, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < low or (high and value > high):
                bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
                raise ValueError(f"{name} of the hash grid must be an integer {bounds}, got {value!r}")
            return value

        integer("num_levels", 16, 1)
        integer("features_per_level", 2, 1)
        integer("log2_table_size", 15, 1, 30)
        base = integer("base_resolution", 16, 1)
        integer("max_resolution", 256, base)
        scale = options.get("init_scale", 1e-4)
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not scale >= 0:
            raise ValueError(f"init_scale of the hash grid must be a number >= 0, got {scale!r}")

    def output_dim(self, input_dim: int) -> int:
        return self.num_levels * self.features_per_level

    def layout(self, in_dim: int) -> GridLayout:
        """The static level layout for ``in_dim``-D coordinates."""
        if in_dim not in (2, 3):
            raise ValueError(f"the hash grid encodes 2-D or 3-D coordinates, got {in_dim}-D")
        return grid_layout(in_dim, self.num_levels, self.log2_table_size, self.base_resolution,
                           self.max_resolution)

    @nn.compact
    def __call__(self, coords: jax.Array) -> jax.Array:
        layout = self.layout(coords.shape[-1])
        scale = self.init_scale
        table = self.param("table", lambda key, shape: hash_uniform(key, shape, -scale, scale),
                           (layout.total_rows, self.features_per_level))
        if self.is_initializing():  # the output's values are not needed; skip tracing/compiling the lookup
            return jnp.zeros((*coords.shape[:-1], self.output_dim(coords.shape[-1])), jnp.float32)
        coords01 = (coords.astype(jnp.promote_types(coords.dtype, jnp.float32)) + 1.0) * 0.5
        rows, weights = hash_grid_lookup(coords01, layout, self.half_cell_offset)  # (..., L, C) each
        out = interpolate_rows(table, rows, weights)  # (..., L, F)
        return out.reshape(*coords.shape[:-1], layout.num_levels * self.features_per_level)


def all_grid_vertices(resolution: int, in_dim: int) -> np.ndarray:
    """``((N + 1)^d, d)`` int32: every vertex of a level with N cells per axis, first axis fastest."""
    axes = [range(resolution + 1)] * in_dim
    return np.array([v[::-1] for v in itertools.product(*axes)], dtype=np.int32)


# Instant-NGP on images: hash grid + one 64-wide ReLU layer, trained on the full image with Adam at lr 0.03
# (its training settings and how they were chosen: ``inr_utils.presets.TRAINING_PRESETS["hashgrid"]``).
# Other measured alternatives (steps to 30 dB at lr 0.1): depth 1: 51; width 32: 31; L=8, F=4: 26; L=4, F=8:
# 27-30; T = 2^16 or 2^17: 25 with more parameters.
#: The ``hashgrid`` model preset (ModelConfig fields); listed in :data:`model_components.presets.MODEL_PRESETS`.
PRESET: dict = dict(encoding="hashgrid",
                    encoding_options={"num_levels": 16, "features_per_level": 2, "log2_table_size": 15,
                                      "base_resolution": 16, "max_resolution": 256},
                    layer="dense", layer_options={"activation": "relu"}, width=64, depth=0,
                    output_activation="sigmoid", dtype="float32")
