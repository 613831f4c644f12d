"""Partition-major training of partitioned INRs (the Local-Global INR of :mod:`model_components.local_global`):
the layout of a signal by partition, balanced sampling, grouped evaluation and rendering, and automatic
partitioning from a budget.

Paper: Ashkenazi & Treister, "Towards Croppable Implicit Neural Representations", NeurIPS 2024.

**Layout.** A signal of shape ``(n_0, ..., n_{d-1}, C)`` whose every axis is a multiple of the partition grid
``(g_0, ..., g_{d-1})`` splits into ``P = prod(g)`` equal blocks of ``m = prod(n_a / g_a)`` samples; block p is
the samples of grid cell p (flat row-major), i.e. exactly the samples that ``partition_index`` routes to p. The
model holds K of them (``kept``; all P unless cropped). :class:`PartitionLayout` arranges the flat data
(:func:`inr_utils.samplers.signal_to_data`) *partition-interleaved*: row ``r`` belongs to slot ``r mod K``
(``rows = i * K + s``: sample i of the block of slot s). Any run of rows whose length is a multiple of K then
reshapes to ``(rows / K, K, d)``, the input of ``model.apply(..., method="partitioned")`` (one batched product
per layer), and the data is still ordinary :class:`PixelData` (an MSE over it does not depend on the order):

* training data: each block extended by ``overlaps[a]`` samples into its neighbours on both sides of axis a
  (shifted inward at the domain border so all blocks keep one size, as in the reference code), so samples near a
  boundary are trained by both partitions (this removes seams);
* evaluation data: each sample once, in its own partition's block;
* the sampler ``"partition"`` (:func:`inr_utils.samplers.partition_batch_sampler`) draws the same number of
  samples from every block; the full sampler (``batch_size=None``) takes every row.

:func:`inr_utils.fitting.fit` uses this for every model whose options have a ``partition_layout`` (the
``local_global`` architecture in modes ``lg`` / ``lc``): train step and evaluator call :meth:`PartitionLayout.apply`
(the grouped path) instead of ``model.apply``; nothing else in the engine changes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from inr_utils.grids import grid as make_grid
from inr_utils.samplers import PixelData, Sampler, partition_batch_sampler

__all__ = ["PartitionLayout", "block_indices", "check_grid", "layout_for", "render_partitioned", "trim_to_grid"]


def check_grid(shape: Sequence[int], grid: Sequence[int]) -> None:
    """Raises ``ValueError`` unless the signal's sample axes ``shape`` are multiples of the partition ``grid``
    (same number of axes), naming the axis and the fix."""
    shape, grid = tuple(shape), tuple(grid)
    if len(shape) != len(grid):
        raise ValueError(f"the partition grid {grid} has {len(grid)} axes but the signal has {len(shape)} sample "
                         f"axes (shape {shape}); give one partition count per sample axis")
    for axis, (n, g) in enumerate(zip(shape, grid, strict=True)):
        if n % g:
            raise ValueError(f"signal axis {axis} has {n} samples, not a multiple of its {g} partitions; crop the "
                             f"signal to {n - n % g} samples (inr_utils.partitions.trim_to_grid) or choose a "
                             f"partition count that divides {n}")


def trim_to_grid(signal: np.ndarray, grid: Sequence[int]) -> np.ndarray:
    """``signal (*shape, C)`` cropped (from the end of each axis) to the largest multiple of ``grid``."""
    if len(grid) != signal.ndim - 1:
        check_grid(signal.shape[:-1], grid)
    slices = tuple(slice(0, n - n % g) for n, g in zip(signal.shape[:-1], grid, strict=True))
    if any(n < g for n, g in zip(signal.shape[:-1], grid, strict=True)):
        raise ValueError(f"a signal of shape {tuple(signal.shape[:-1])} is smaller than the partition grid "
                         f"{tuple(grid)}; use fewer partitions")
    return signal[slices]


def block_indices(shape: Sequence[int], grid: Sequence[int], overlaps: Sequence[int] | None = None) -> np.ndarray:
    """Flat row-major sample indices of every partition's block: ``(P, L)`` int, row p = cell p of the grid.

    Along axis a a block spans ``n_a / g_a + 2 overlaps[a]`` samples (at most ``n_a``), centred on the cell and
    shifted inward at the borders; samples are in row-major order within the block.
    """
    shape, grid = tuple(int(n) for n in shape), tuple(int(g) for g in grid)
    check_grid(shape, grid)
    d = len(shape)
    overlaps = tuple(overlaps) if overlaps else (0,) * d
    index = np.arange(math.prod(shape)).reshape(shape)
    pieces = []
    for axis, (n, g, o) in enumerate(zip(shape, grid, overlaps, strict=True)):
        m = n // g
        length = min(m + 2 * o, n)
        starts = np.clip(np.arange(g) * m - (length - m) // 2, 0, n - length)
        rows = starts[:, None] + np.arange(length)[None, :]  # (g, length)
        view = [1] * (2 * d)
        view[axis], view[d + axis] = g, length
        pieces.append(rows.reshape(view))
    blocks = index[tuple(pieces)]  # (g_0, ..., g_{d-1}, L_0, ..., L_{d-1})
    return blocks.reshape(math.prod(grid), -1)


@dataclasses.dataclass(frozen=True)
class PartitionLayout:
    """How a partitioned model sees a signal of sample shape ``shape`` (see the module docstring).

    Attributes:
      shape: the signal's sample axes ``(n_0, ..., n_{d-1})``, multiples of ``grid``.
      grid: partition cells per sample axis.
      kept: flat indices of the partitions the model holds (its slots, in order).
      overlaps: training overlap in samples per axis.
    """

    shape: tuple[int, ...]
    grid: tuple[int, ...]
    kept: tuple[int, ...]
    overlaps: tuple[int, ...]

    @property
    def slots(self) -> int:
        """K, the partitions the model holds."""
        return len(self.kept)

    def eval_order(self) -> np.ndarray:
        """``(m K,)`` flat sample indices in partition-interleaved order, each sample of a kept partition once."""
        return block_indices(self.shape, self.grid)[np.asarray(self.kept)].T.reshape(-1)

    def train_order(self) -> np.ndarray:
        """``(L K,)`` flat sample indices of the overlapping training blocks, partition-interleaved."""
        return block_indices(self.shape, self.grid, self.overlaps)[np.asarray(self.kept)].T.reshape(-1)

    def arrange(self, data: PixelData) -> tuple[PixelData, PixelData]:
        """``(train_data, eval_data)``: flat row-major ``data`` of the whole signal in the training and evaluation
        orders (rows of cropped-away partitions left out). Rows are axis -2 of coords and values, so data of N
        signals stacked on a leading axis (``fit_many``) is arranged too."""
        def take(order: np.ndarray) -> PixelData:
            index = jnp.asarray(order)
            return PixelData(jnp.take(data.coords, index, axis=-2), jnp.take(data.values, index, axis=-2),
                             data.pixel_size)

        return take(self.train_order()), take(self.eval_order())

    def apply(self, model: Any) -> Callable[[Any, jax.Array], jax.Array]:
        """``apply(variables, coords (r, d)) -> (r, C)`` for partition-interleaved rows (r a multiple of K): the
        grouped path of ``model``."""
        slots = self.slots

        def grouped(variables: Any, coords: jax.Array) -> jax.Array:
            out = model.apply(variables, coords.reshape(-1, slots, coords.shape[-1]), method="partitioned")
            return out.reshape(-1, out.shape[-1])

        return grouped

    def sampler(self, batch_size: int | None, jitter: bool = False) -> Sampler:
        """The balanced sampler (``batch_size`` rounded to a multiple of K, at least K), or every row (``None``)."""
        return partition_batch_sampler(batch_size, partitions=self.slots, jitter=jitter)


def layout_for(model_config: Any, shape: Sequence[int]) -> PartitionLayout | None:
    """The layout of a signal of sample shape ``shape`` for a model config, or ``None`` when its architecture is
    not partitioned (no ``partition_layout`` in its options, or it returns ``None``).

    Raises:
      ValueError: the grid does not match the signal (axes count, or a size not a multiple of the grid).
    """
    describe = getattr(model_config.options, "partition_layout", None)
    layout = describe(model_config) if describe is not None else None
    if layout is None:
        return None
    grid, kept, overlaps = layout
    check_grid(shape, grid)
    return PartitionLayout(tuple(int(n) for n in shape), tuple(grid), tuple(kept), tuple(overlaps))


def render_partitioned(model: Any, variables: Any, shape: Sequence[int], chunk_points: int = 1 << 16,
                       fill: float = 0.0) -> np.ndarray:
    """The model on the sample grid of ``shape`` (a multiple of its partition grid) by the grouped path, in
    chunks of about ``chunk_points`` points: ``(*shape, C)`` float32; samples of cropped-away partitions are
    ``fill``.

    Raises:
      ValueError: ``shape`` does not match the partition grid, or the model is not partitioned.
    """
    layout = PartitionLayout(tuple(shape), tuple(model.grid), tuple(model.kept) or tuple(range(math.prod(model.grid))),
                             (0,) * len(shape))
    check_grid(layout.shape, layout.grid)
    order = layout.eval_order()
    coords = jnp.asarray(make_grid(layout.shape).reshape(-1, len(shape)))[jnp.asarray(order)]
    slots = layout.slots
    rows = min(max(1, chunk_points // slots) * slots, coords.shape[0])
    apply = jax.jit(layout.apply(model))
    out = np.full((math.prod(layout.shape), model.out_dim), fill, np.float32)
    for start in range(0, coords.shape[0], rows):
        part = coords[start:start + rows]
        count = part.shape[0]
        if count < rows:  # one compiled size: the last chunk padded (its extra rows are discarded)
            part = jnp.pad(part, ((0, rows - count), (0, 0)), mode="edge")
        out[order[start:start + count]] = np.asarray(apply(variables, part))[:count]
    return out.reshape(*layout.shape, model.out_dim)
