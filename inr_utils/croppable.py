"""Croppable INRs: automatic partitioning from a parameter budget, cropping without retraining and extension by
training new partitions only (the Local-Global INR of :mod:`model_components.local_global`).

Paper: Ashkenazi & Treister, "Towards Croppable Implicit Neural Representations", NeurIPS 2024.

* :func:`auto_partition` chooses the partition grid from a desired partition size (samples per partition per
  axis), then the local and global widths so the model has ``budget`` parameters (default 200k, a 3x256 SIREN)
  with about ``global_share`` of them in the global trunk (as the reference code's ``compute_partitions.py``,
  whose share counts the trunk only, not the layers that join global and local features: a global width for
  the share, the local width for the rest, then the global width adjusted to fill the budget).
* :func:`crop` removes partitions (by flat index, or every partition whose index along an axis is in a set):
  their local weights are deleted (the count falls by the local weights of one partition per partition
  removed; the global ones stay), and the kept region decodes exactly as before, since a partition's output
  depends only on its own local weights and the global branch.
* :func:`extend` adds partitions (e.g. those cropped away, or a region never trained) with fresh local weights
  and returns a mask of what may train; :func:`fit_extension` trains only those entries (the optimizer's
  update of every other entry is exactly zero, so frozen weights stay bit for bit).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from inr_utils.callbacks import History
from inr_utils.engine import make_chunk_program, shared_axes, train_many
from inr_utils.evaluation import FullSignalEvaluator, make_evaluator
from inr_utils.fitting import check_signal, loop_key
from inr_utils.losses import LOSSES
from inr_utils.optim import build_optimizer
from inr_utils.partitions import block_indices, check_grid, layout_for
from inr_utils.samplers import signal_to_data
from inr_utils.training import TrainState, make_train_step, merge_variables, split_variables
from model_components.inrs import build_model
from model_components.inrs import model_config as make_config

__all__ = ["PartitionPlan", "auto_partition", "count_model_params", "crop", "extend", "fit_extension",
           "freeze_optimizer", "is_local", "kept_box", "kept_mask", "kept_partitions", "partitions_along"]

#: Default total parameter budget: about a 3x256 SIREN (4 hidden layers of 256 on 2-D coordinates, RGB out).
DEFAULT_BUDGET = 200_000


def _local_count(width: int, in_dim: int, out_dim: int, depth: int, slots: int) -> int:
    """Local parameters: per partition a first layer, ``depth`` hidden layers and a linear head."""
    return slots * ((in_dim + 1) * width + depth * (width + 1) * width + (width + 1) * out_dim)


def _trunk_count(global_width: int, in_dim: int, depth: int) -> int:
    """Parameters of the global trunk: a first layer and ``depth`` hidden layers of ``global_width``."""
    return (in_dim + 1) * global_width + depth * (global_width + 1) * global_width


def _global_count(global_width: int, width: int, in_dim: int, depth: int, mode: str, combine: str) -> int:
    """Global parameters: the trunk plus the projections (``fc_and_add``) or the shared combining layer."""
    if mode != "lg":
        return 0
    trunk = _trunk_count(global_width, in_dim, depth)
    if combine == "fc_and_add":
        return trunk + (depth + 1) * (global_width + 1) * width
    return trunk + (width + global_width + 1) * width


def count_model_params(width: int, global_width: int, in_dim: int, out_dim: int, depth: int, slots: int,
                       mode: str = "lg", combine: str = "concat_and_fc") -> int:
    """Parameters of a ``local_global`` model on raw coordinates without learnable layer hyperparameters."""
    if mode == "mlp":
        return (in_dim + 1) * width + depth * (width + 1) * width + (width + 1) * out_dim
    return _local_count(width, in_dim, out_dim, depth, slots) + _global_count(global_width, width, in_dim, depth,
                                                                              mode, combine)


@dataclasses.dataclass(frozen=True)
class PartitionPlan:
    """What :func:`auto_partition` chose.

    Attributes:
      partitions: cells per sample axis.
      shape: the signal's sample axes trimmed to a multiple of the grid (what to fit; see ``trim_to_grid``).
      width: local width per partition (``mlp``: the MLP's width).
      global_width: global trunk width (``lg``).
      params: the realised parameter count.
      budget: the budget asked for.
      global_params: the global part of ``params`` (trunk and joining layers).
      trunk_params: the global trunk's part of ``params`` (what ``global_share`` aims at).
    """

    partitions: tuple[int, ...]
    shape: tuple[int, ...]
    width: int
    global_width: int
    params: int
    budget: int
    global_params: int
    trunk_params: int = 0

    def overrides(self) -> dict[str, Any]:
        """``model_config`` keyword arguments for this plan."""
        return {"partitions": self.partitions, "width": self.width, "global_width": self.global_width}

    def describe(self) -> str:
        """One line: grid, widths, realised count against the budget, global share."""
        return (f"partitions {'x'.join(map(str, self.partitions))} of a {'x'.join(map(str, self.shape))} signal, "
                f"local width {self.width}, global width {self.global_width}: {self.params:,} parameters "
                f"({100 * self.params / self.budget:.1f}% of the {self.budget:,} budget, "
                f"{100 * self.global_params / max(self.params, 1):.1f}% global, "
                f"{100 * self.trunk_params / max(self.params, 1):.1f}% in the global trunk)")


def _best(values: Iterable[int], count: Any, target: float) -> int:
    return min(values, key=lambda v: (abs(count(v) - target), v))


def auto_partition(shape: Sequence[int], partition_size: Sequence[int], out_dim: int, budget: int = DEFAULT_BUDGET,
                   global_share: float = 0.1, depth: int = 3, mode: str = "lg", combine: str = "concat_and_fc",
                   tolerance: float = 0.1, verbose: bool = False) -> PartitionPlan:
    """Partition grid and widths for a signal of sample axes ``shape`` and a parameter ``budget``.

    Args:
      shape: the signal's sample axes ``(n_0, ..., n_{d-1})``.
      partition_size: desired samples per partition along each axis; the grid is ``n_a / size_a`` rounded to
        the nearest whole count (at least 1), so the partitions come out as close to that size as whole
        partitions allow (339 / 32 -> 11 partitions of 30 rows after trimming, not 10 of 33).
      out_dim: signal channels.
      budget: total parameters wanted.
      global_share: fraction of them in the global trunk (mode ``lg``; the layers joining global and local
        features are not counted, as in the reference code). The global width fills what the integer local
        width leaves of the budget while the trunk's share stays within 25 % of ``global_share`` (the
        reference's rule), so the realised count can fall short of the budget, within ``tolerance``.
      depth, mode, combine: as in :class:`model_components.local_global.LocalGlobalOptions`.
      tolerance: allowed relative distance of the realised count from the budget.
      verbose: print :meth:`PartitionPlan.describe`.

    Raises:
      ValueError: the budget is too small for the grid (or cannot be met within ``tolerance``), naming the
        smallest possible model and the fix; bad sizes.
    """
    shape, size = tuple(int(n) for n in shape), tuple(int(s) for s in partition_size)
    if len(size) != len(shape) or min(size, default=0) <= 0:
        raise ValueError(f"partition_size must give a positive sample count for each of the {len(shape)} sample "
                         f"axes of the signal {shape}, got {size}")
    if budget <= 0 or not 0.0 <= global_share < 1.0:
        raise ValueError(f"budget must be positive and global_share in [0, 1), got {budget} and {global_share}")
    d = len(shape)
    grid = tuple(min(n, max(1, math.floor(n / s + 0.5))) for n, s in zip(shape, size, strict=True)) \
        if mode != "mlp" else (1,) * d
    slots = math.prod(grid)
    trimmed = tuple(n - n % g for n, g in zip(shape, grid, strict=True))

    def total(w: int, g: int) -> int:
        return count_model_params(w, g, d, out_dim, depth, slots, mode, combine)

    smallest = total(1, 1)
    if smallest > budget * (1 + tolerance):
        raise ValueError(f"a budget of {budget:,} parameters is too small for {slots} partitions (grid "
                         f"{'x'.join(map(str, grid))}): the smallest such model has {smallest:,}; raise the budget "
                         "or use larger partitions")
    widths = range(1, 4097)
    if mode == "lg":
        g_share = _best(widths, lambda g: _trunk_count(g, d, depth), global_share * budget)
        w_low = max((v for v in widths if total(v, g_share) <= budget), default=1)
        candidates = []  # the local width just below and above the budget, each with the global width filling it
        band = (0.75 * global_share, 1.25 * global_share)  # the trunk's share may move this far to fill the budget
        for w in (w_low, w_low + 1):
            in_band = [v for v in widths if band[0] <= _trunk_count(v, d, depth) / total(w, v) <= band[1]] or [g_share]
            g = _best(in_band, lambda g, w=w: total(w, g), budget)
            share = _trunk_count(g, d, depth) / total(w, g)
            candidates.append((abs(total(w, g) - budget) > tolerance * budget, abs(share - global_share), w, g))
        _, _, w, g = min(candidates)
    else:
        w, g = _best(widths, lambda w: total(w, 1), budget), 1
    params = total(w, g)
    if abs(params - budget) > tolerance * budget:
        raise ValueError(f"no local width gives {budget:,} parameters within {100 * tolerance:.0f}% for "
                         f"{slots} partitions (closest: width {w}, {params:,}); change the budget or the "
                         "partition size")
    plan = PartitionPlan(grid, trimmed, w, g, params, int(budget),
                         params - _local_count(w, d, out_dim, depth, slots) if mode != "mlp" else params,
                         _trunk_count(g, d, depth) if mode == "lg" else 0)
    if verbose:
        print(plan.describe())
    return plan


# ------------------------------------------------------------------------------------------------ cropping


def is_local(name: str) -> bool:
    """Whether a top-level parameter/constant name of a ``local_global`` model is per partition (leading axis
    K): the local layers and the head."""
    return name.startswith("local_") or name == "head"


def kept_partitions(model_config: Any) -> tuple[int, ...]:
    """The flat indices of the partitions a ``local_global`` config's model holds (its slots, in order)."""
    layout = model_config.options.partition_layout(model_config)
    if layout is None:
        raise ValueError("this model has no partitions (mode 'mlp'); crop and extend need mode 'lg' or 'lc'")
    return layout[1]


def partitions_along(grid: Sequence[int], axis: int, values: Iterable[int]) -> tuple[int, ...]:
    """Flat indices of the partitions whose index along sample ``axis`` is in ``values`` (e.g. ``axis=1,
    values=(0, 15)`` with ``axis=2, values=(0, 15)``: the spatial border of every frame of a 16x16 grid).

    Raises:
      ValueError: an axis or value outside the grid.
    """
    grid = tuple(grid)
    values = {int(v) for v in values}
    if not 0 <= axis < len(grid):
        raise ValueError(f"axis {axis} is not a sample axis of the partition grid {grid} (0 .. {len(grid) - 1})")
    bad = sorted(v for v in values if not 0 <= v < grid[axis])
    if bad:
        raise ValueError(f"partition index values {bad} are outside axis {axis} of the grid {grid} "
                         f"(0 .. {grid[axis] - 1})")
    index = np.arange(math.prod(grid)).reshape(grid)
    return tuple(int(p) for p in np.sort(np.take(index, sorted(values), axis=axis).ravel()))


def kept_mask(model_config: Any, shape: Sequence[int]) -> np.ndarray:
    """``(*shape,)`` bool: the samples of a signal of sample axes ``shape`` that the model's partitions cover."""
    grid = model_config.options.grid(model_config.in_dim)
    check_grid(shape, grid)
    owner = np.empty(math.prod(shape), np.int64)
    owner[block_indices(shape, grid)] = np.arange(math.prod(grid))[:, None]
    return np.isin(owner, np.asarray(kept_partitions(model_config))).reshape(tuple(shape))


def kept_box(model_config: Any, shape: Sequence[int]) -> tuple[slice, ...]:
    """Slices of the smallest box of a ``shape`` signal containing every sample the model's partitions cover
    (``signal[kept_box(...)]`` is the cropped signal when the kept partitions form a box)."""
    mask = kept_mask(model_config, shape)
    boxes = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        boxes.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(boxes)


def _take_slots(tree: Any, index: np.ndarray) -> Any:
    return {name: jax.tree.map(lambda a: jnp.asarray(a)[index], sub) if is_local(name) else sub
            for name, sub in tree.items()}


def crop(model_config: Any, variables: dict[str, Any], partitions: Iterable[int] = (),
         along: dict[int, Iterable[int]] | None = None) -> tuple[Any, dict[str, Any]]:
    """A smaller model: the partitions ``partitions`` (flat indices of the full grid) and those whose index along
    axis a is in ``along[a]`` removed, with their local weights.

    Args:
      model_config: a ``local_global`` :class:`~model_components.inrs.ModelConfig` (``in_dim`` set).
      variables: its variables (``{"params": ..., "constants": ...}``).
      partitions: flat indices to remove.
      along: ``{axis: index values}`` to remove whole slabs of the grid.

    Returns:
      ``(config, variables)`` of the cropped model: ``kept`` lists what remains; it decodes every kept partition
      as the original model does.

    Raises:
      ValueError: an index not held by the model, or nothing left.
    """
    kept = kept_partitions(model_config)
    grid = model_config.options.grid(model_config.in_dim)
    remove = {int(p) for p in partitions}
    for axis, values in (along or {}).items():
        remove |= set(partitions_along(grid, axis, values))
    unknown = sorted(remove - set(kept))
    if unknown:
        raise ValueError(f"partitions {unknown} are not in the model (it holds {len(kept)} of the "
                         f"{math.prod(grid)} partitions of grid {grid}); crop only partitions it holds")
    new_kept = tuple(p for p in kept if p not in remove)
    if not new_kept:
        raise ValueError("cropping would remove every partition; keep at least one")
    index = np.asarray([kept.index(p) for p in new_kept])
    config = make_config(base=model_config, kept=new_kept if len(new_kept) < math.prod(grid) else ())
    cropped = {collection: _take_slots(tree, index) if collection == "params" else tree
               for collection, tree in variables.items()}
    return config, cropped


# ------------------------------------------------------------------------------------------------ extension


def extend(model_config: Any, variables: dict[str, Any], partitions: Iterable[int], key: jax.Array,
           ) -> tuple[Any, dict[str, Any], Any]:
    """The model with partitions ``partitions`` (flat indices of the full grid not held yet) added with fresh
    local weights (the architecture's initialisation, from ``key``).

    Returns:
      ``(config, variables, trainable)``: ``trainable`` is a pytree like ``variables["params"]`` whose leaves are
      bool arrays broadcasting against the parameter (``(K, 1, ...)`` for local leaves: True on the new slots;
      a False scalar for global leaves), for :func:`freeze_optimizer` / :func:`fit_extension`.

    Raises:
      ValueError: a partition already held or outside the grid.
    """
    kept = kept_partitions(model_config)
    grid = model_config.options.grid(model_config.in_dim)
    add = sorted({int(p) for p in partitions})
    bad = [p for p in add if p in kept or not 0 <= p < math.prod(grid)]
    if bad or not add:
        raise ValueError(f"cannot add partitions {bad or add}: give indices in [0, {math.prod(grid)}) that the "
                         f"model does not hold yet (it holds {list(kept)})")
    new_kept = tuple(sorted(set(kept) | set(add)))
    config = make_config(base=model_config, kept=new_kept if len(new_kept) < math.prod(grid) else ())
    fresh = build_model(config).init(key, jnp.zeros((1, config.in_dim), jnp.float32))["params"]
    old_slots = np.asarray([new_kept.index(p) for p in kept])
    is_new = np.ones(len(new_kept), bool)
    is_new[old_slots] = False
    params, trainable = {}, {}
    for name, sub in variables["params"].items():
        if is_local(name):
            params[name] = jax.tree.map(lambda f, o: jnp.asarray(f).at[old_slots].set(o), fresh[name], sub)
            trainable[name] = jax.tree.map(lambda f: jnp.asarray(is_new).reshape((-1,) + (1,) * (f.ndim - 1)),
                                           fresh[name])
        else:
            params[name] = sub
            trainable[name] = jax.tree.map(lambda _: jnp.asarray(False), sub)
    return config, {**variables, "params": params}, trainable


def freeze_optimizer(optimizer: optax.GradientTransformation, trainable: Any) -> optax.GradientTransformation:
    """``optimizer`` on the ``trainable`` entries only: gradients of the others are zeroed before it and its
    updates of them replaced by exact zeros after it, so they stay bit for bit (``trainable``: bool leaves that
    broadcast against the parameters, as :func:`extend` returns)."""

    def zero_frozen(tree: Any) -> Any:
        return jax.tree.map(lambda u, m: jnp.where(m, u, jnp.zeros_like(u)), tree, trainable)

    mask = optax.stateless(lambda updates, params=None: zero_frozen(updates))
    return optax.chain(mask, optimizer, mask)


def fit_extension(signal: np.ndarray, config: Any, variables: dict[str, Any], trainable: Any,
                  eval_every: int = 200) -> tuple[dict[str, Any], Any]:
    """Trains the ``trainable`` entries of ``variables`` (an extended model, :func:`extend`) on ``signal``
    through the engine (partition-major, as :func:`inr_utils.fitting.fit`), every other weight frozen.

    Args:
      signal: ``(*shape, C)`` in [0, 1]; shape a multiple of the model's grid.
      config: a ``FitConfig`` whose ``model`` is the extended model's config (steps, lr, batch size, ...);
        its ``in_dim`` and ``out_dim`` are set from the signal.
      variables: the extended model's variables.
      trainable: the mask of :func:`extend`.
      eval_every: steps between full-signal PSNR evaluations.

    Returns:
      ``(variables, history)`` after training.
    """
    signal = check_signal(signal)
    model_cfg = dataclasses.replace(config.model, in_dim=signal.ndim - 1, out_dim=signal.shape[-1])
    config = dataclasses.replace(config, model=model_cfg).validate()
    model = build_model(config.model)
    layout = layout_for(config.model, signal.shape[:-1])
    train_data, data = layout.arrange(signal_to_data(signal))
    apply_fn = layout.apply(model)
    optimizer = freeze_optimizer(build_optimizer(config), trainable)
    params, constants = split_variables(variables)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, constants=constants,
                       opt_state=optimizer.init(params))
    step_fn = make_train_step(apply_fn, LOSSES.get(config.loss), optimizer)
    sampler = layout.sampler(config.batch_size, config.jitter)
    axes = shared_axes()
    evaluate = make_evaluator(apply_fn, data, axes, None, single=True, align=layout.slots)
    history = History()
    result = train_many(state, train_data, loop_key(config), step_fn, sampler, config.steps, axes, None,
                        config.steps_per_call, [FullSignalEvaluator(apply_fn, data, eval_every, evaluate=evaluate),
                                                history],
                        make_chunk=lambda n: make_chunk_program(step_fn, sampler, n, axes, None, single=True))
    return merge_variables(result.state.params, result.state.constants), history
