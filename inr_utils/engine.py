"""The training engine: N models of equal shapes trained side by side along a leading *model axis*.

One fit is the N = 1 case (:func:`inr_utils.fitting.fit`), a sweep any N (:func:`inr_utils.sweeps.fit_many`);
both run :func:`train_many`, the one training loop:

  * the library's pure train step (:func:`inr_utils.training.make_train_step`) and chunk
    (:func:`inr_utils.training.make_train_chunk`, a ``lax.scan`` over steps) are ``vmap``-ed over the model axis
    (:func:`make_chunk_program`); with one model on a device the axis is squeezed away instead, so a single fit runs
    exactly the single-model program;
  * with a mesh, the model axis is sharded over its devices (``jax.shard_map``, no communication);
  * host work (NaN checks, evaluation, history, progress, checkpoints) happens between compiled chunks, in
    callbacks that see a :class:`ChunkInfo`.

The data is flat: :class:`inr_utils.samplers.PixelData` of ``(points, d)`` coordinates and ``(points, C)``
values for any coordinate dimension ``d``; each field either has a model axis (axis 0, one signal per model)
or is shared (``None``), as ``data_axes`` says.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from inr_utils.devices import MODEL_AXIS
from inr_utils.errors import InputError
from inr_utils.samplers import PixelData
from inr_utils.training import (
    TrainingInterrupted,
    TrainState,
    deferred_signals,
    make_train_chunk,
    tree_all_finite,
)


@dataclass
class ChunkInfo:
    """What callbacks see after every compiled chunk.

    Attributes:
      state: the train state after the chunk: stacked ``(N, ...)`` in the engine, one model's in a
        :meth:`model` view.
      step: global step after the chunk (Python int; every model is at this step).
      total_steps: the step training ends at.
      metrics: per-step metrics of the chunk as numpy arrays, ``(chunk_steps, N)`` (``(chunk_steps,)`` in a view):
        ``loss``, ``psnr`` (of the batch), ``grad_norm``.
      elapsed_s: wall seconds since training started (compilation included).
      extra: values added by earlier callbacks, e.g. ``full_psnr`` ``(N,)`` (a float in a view).
      stacked: whether ``state`` has the model axis (a single-model run keeps its state unstacked, N = 1).
    """

    state: TrainState
    step: int
    total_steps: int
    metrics: dict[str, np.ndarray]
    elapsed_s: float
    extra: dict[str, Any] = field(default_factory=dict)
    stacked: bool = True

    def model(self, i: int) -> ChunkInfo:
        """Model i's view: its state, ``(chunk_steps,)`` metrics and scalar extras. The views of one chunk are
        the same object, so single-model callbacks see what earlier ones added."""
        views = self.__dict__.setdefault("_views", {})
        if i not in views:
            state = jax.tree.map(lambda x: x[i], self.state) if self.stacked else self.state
            extra = {k: (v[i] if np.ndim(v) else v) for k, v in self.extra.items()}
            views[i] = ChunkInfo(state, self.step, self.total_steps, {k: v[:, i] for k, v in self.metrics.items()},
                                 self.elapsed_s, extra, stacked=False)
        return views[i]


class Callback(Protocol):
    """Runs on the host between compiled chunks (outside jit)."""

    def __call__(self, info: ChunkInfo) -> None: ...


def single_model(callback: Callable[[ChunkInfo], None], i: int = 0) -> Callback:
    """A callback written for one model (``info.state`` unstacked, 1-D metrics) as a model-axis callback."""
    return lambda info: callback(info.model(i))


class SweepInterrupted(TrainingInterrupted):
    """Ctrl-C or SIGTERM during :func:`train_many`; ``state`` is the stacked state after the last complete chunk,
    ``signum`` the signal (``signal.SIGINT`` for a ``KeyboardInterrupt``)."""

    def __init__(self, state: TrainState, step: int, signum: int | None = None):
        KeyboardInterrupt.__init__(self, f"training interrupted at step {step}")
        self.state, self.signum = state, signum


def _largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, max(1, limit)) + 1) if n % d == 0)


def _map_blocks(fn: Callable, block: int, batched_args: Any, shared_args: Any = None) -> Any:
    """``fn(batched, shared)`` over blocks of ``block`` models: ``lax.map`` (sequential) of ``fn`` on the
    leading axis of ``batched_args`` split into ``(n // block, block, ...)``; outputs merged back to ``(n, ...)``.
    ``block`` must divide n; ``block >= n`` calls ``fn`` once on everything."""
    n = jax.tree.leaves(batched_args)[0].shape[0]
    if block >= n:
        return fn(batched_args, shared_args)
    split = jax.tree.map(lambda x: x.reshape(n // block, block, *x.shape[1:]), batched_args)
    out = jax.lax.map(lambda b: fn(b, shared_args), split)
    return jax.tree.map(lambda x: x.reshape(n, *x.shape[2:]), out)


def split_data(data: PixelData, axes: PixelData) -> tuple[PixelData, PixelData]:
    """(per-model fields with the others None, shared fields with the per-model ones None)."""
    batched = PixelData(*(x if a == 0 else None for x, a in zip(data, axes, strict=True)))
    shared = PixelData(*(None if a == 0 else x for x, a in zip(data, axes, strict=True)))
    return batched, shared


def join_data(batched: PixelData, shared: PixelData) -> PixelData:
    """Inverse of :func:`split_data`."""
    return PixelData(*(b if s is None else s for b, s in zip(batched, shared, strict=True)))


def shared_axes() -> PixelData:
    """``data_axes`` of data shared by every model (one signal, no model axis)."""
    return PixelData(None, None, None)


def data_specs(axes: PixelData) -> PixelData:
    """Partition specs of data laid out per ``axes``: per-model fields sharded, shared ones replicated."""
    return PixelData(*(P() if axis is None else P(MODEL_AXIS) for axis in axes))


def _squeeze(tree: Any) -> Any:
    return jax.tree.map(lambda x: x[0], tree)


def _expand(tree: Any, axis: int = 0) -> Any:
    return jax.tree.map(lambda x: jnp.expand_dims(x, axis), tree)


def _on_mesh(local: Callable, mesh: Mesh | None, in_specs: tuple, out_specs: Any) -> Callable:
    """``local`` jitted, over the devices of ``mesh`` (each its share of the model axis) when there is one."""
    if mesh is None:
        return jax.jit(local)
    return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=out_specs))


def make_chunk_program(train_step: Callable, sampler: Callable, num_steps: int, data_axes: PixelData,
                       mesh: Mesh | None, models_per_block: int | None = None, single: bool = False,
                       ) -> Callable[[TrainState, PixelData, jax.Array], tuple]:
    """``num_steps`` steps of every model in one jitted program.

    The single-model chunk of :func:`inr_utils.training.make_train_chunk` (a ``lax.scan``, same keys) is
    ``vmap``-ed over the model axis (squeezed instead when a device holds one model) and, with a ``mesh``,
    wrapped in ``jax.shard_map``: each device runs its share of the models, with no communication. A device's
    models run in blocks of ``models_per_block`` (the largest divisor of its share not above it; ``None``: all
    at once), one block after the other (``lax.map``), each for all ``num_steps`` steps: a block's activations
    stay in cache while a block is still wide enough for batched matrix products to pay.

    ``single``: one model whose state, data and key have no model axis at all (one fit); the program is then
    the single-model chunk itself, and only its metrics get the model axis of 1.

    Returns:
      ``run(states, data, keys) -> (states, metrics)``: ``states`` stacked ``(N, ...)``, ``keys (N,)``, metrics
      each ``(num_steps, N)``, plus ``params_finite`` ``(1, N)``: whether every parameter of model i is finite
      after the chunk (checked here rather than by a separate program, which would cost a compilation and a
      pass over the parameters).
    """
    chunk = make_train_chunk(train_step, sampler, num_steps, jit=False)
    if single:
        def run_single(state: TrainState, data: PixelData, key: jax.Array) -> tuple[TrainState, dict]:
            new_state, metrics = chunk(state, data, key)
            metrics = _expand(metrics, 1)
            metrics["params_finite"] = tree_all_finite(new_state.params).reshape(1, 1)
            return new_state, metrics

        return jax.jit(run_single)
    batched = jax.vmap(chunk, in_axes=(0, data_axes, 0), out_axes=(0, 1))

    def local(states: TrainState, data: PixelData, keys: jax.Array) -> tuple[TrainState, dict]:
        n = keys.shape[0]
        per_model_data, shared = split_data(data, data_axes)
        if n == 1:  # one model here: the plain single-model program
            new_state, metrics = chunk(_squeeze(states), join_data(_squeeze(per_model_data), shared), keys[0])
            new_states, metrics = _expand(new_state), _expand(metrics, 1)
        else:
            block = _largest_divisor_at_most(n, models_per_block or n)

            def run_block(per_model: tuple, shared: PixelData) -> tuple[TrainState, dict]:
                block_states, block_data, block_keys = per_model
                new_states, metrics = batched(block_states, join_data(block_data, shared), block_keys)
                return new_states, jax.tree.map(lambda m: m.T, metrics)  # (block, num_steps) for merging

            new_states, metrics = _map_blocks(run_block, block, (states, per_model_data, keys), shared)
            metrics = jax.tree.map(lambda m: m.T, metrics)
        metrics["params_finite"] = jax.vmap(tree_all_finite)(new_states.params)[None]
        return new_states, metrics

    return _on_mesh(local, mesh, (P(MODEL_AXIS), data_specs(data_axes), P(MODEL_AXIS)),
                    (P(MODEL_AXIS), P(None, MODEL_AXIS)))


@jax.jit
def _keep_where(mask: jax.Array, new: TrainState, old: TrainState) -> TrainState:
    """Model i from ``new`` where ``mask[i]``, else from ``old``."""
    return jax.tree.map(lambda a, b: jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), new, old)


@dataclass
class EngineResult:
    """Output of :func:`train_many`.

    Attributes:
      state: final stacked state (models that diverged hold their last finite chunk-end parameters).
      diverged_step: ``(N,)`` int, the step at which each model's loss or parameters became NaN/inf (-1: never).
      diverged_loss: ``(N,)`` bool, whether that was seen in the loss (else in the parameters after the chunk).
      compile_s: seconds spent compiling chunks inside the loop (not those passed in ``compiled_chunks``).
      wall_s: seconds of the loop, compilation included.
    """

    state: TrainState
    diverged_step: np.ndarray
    diverged_loss: np.ndarray
    compile_s: float
    wall_s: float


def train_many(state: TrainState, data: PixelData | Callable[[int, int], Any], keys: jax.Array, train_step: Callable,
               sampler: Callable, total_steps: int, data_axes: PixelData, mesh: Mesh | None, steps_per_call: int = 100,
               callbacks: Sequence[Callback] = (), models_per_block: int | None = None,
               make_chunk: Callable[[int], Callable] | None = None,
               compiled_chunks: Mapping[int, Any] | None = None,
               stop_when_all_diverged: bool = False) -> EngineResult:
    """Trains N stacked models from their common step to ``total_steps``: the training loop of every fit.

    Args:
      state: stacked state ``(N, ...)``, placed on ``mesh`` (N a multiple of its devices) or the default device;
        or, with a single key, one model's state (no model axis: the single-model program runs, N = 1).
      data: the signal(s), placed per ``data_axes`` (per-model values sharded, shared ones replicated); or a
        function ``data(step, num_steps)`` returning the data of the chunk that starts at ``step`` (a stream, e.g.
        the image batches of a hypernetwork, :mod:`hypernetwork_utils.training`), placed as the chunk expects.
      keys: ``(N,)`` loop keys; model i's step s uses ``fold_in(keys[i], s)``; or one key for one model.
      train_step: the single-model step of :func:`inr_utils.training.make_train_step`.
      sampler: the single-model sampler.
      total_steps: global step to stop at.
      data_axes: ``vmap`` axes of ``data`` (0: a model axis, None: shared).
      mesh: the model mesh, or ``None`` for the default device.
      steps_per_call: steps per compiled call; a shorter last chunk compiles once more.
      callbacks: called in order after every chunk with a :class:`ChunkInfo` (stacked).
      models_per_block: see :func:`make_chunk_program`.
      make_chunk: ``num_steps -> jitted chunk`` (default :func:`make_chunk_program` of the arguments above).
      compiled_chunks: chunk length -> executable already compiled for exactly these arguments' shapes,
        dtypes and shardings; other lengths are compiled here.
      stop_when_all_diverged: stop (returning the state at the start of the chunk, before any callback sees
        it) once every model has diverged; a single fit then raises ``DivergenceError``.

    A model whose loss or parameters become NaN/inf does not stop the others: from then on it keeps the
    parameters and optimizer state it had at the start of that chunk (its lane of the batched program still
    runs, and its results are discarded), and the step is recorded in ``diverged_step``.

    Raises:
      SweepInterrupted: Ctrl-C or SIGTERM (handled between chunks, after every callback has seen the last
        one), or a ``KeyboardInterrupt`` from a callback; carries the stacked state after the last complete chunk.
    """
    start = time.perf_counter()
    compile_s = 0.0
    compiled: dict[int, Any] = dict(compiled_chunks or {})
    single = keys.ndim == 0
    num_models = 1 if single else keys.shape[0]
    diverged = np.full(num_models, -1, np.int64)
    diverged_loss = np.zeros(num_models, bool)
    step = int(np.asarray(jax.device_get(state.step)).reshape(-1)[0])
    maker = make_chunk or (lambda n: make_chunk_program(train_step, sampler, n, data_axes, mesh, models_per_block,
                                                        single))
    with deferred_signals() as interrupted:
        try:
            while step < total_steps:
                n = min(steps_per_call, total_steps - step)
                chunk_data = data(step, n) if callable(data) else data
                if n not in compiled:
                    t0 = time.perf_counter()
                    compiled[n] = maker(n).lower(state, chunk_data, keys).compile()
                    compile_s += time.perf_counter() - t0
                new_state, metrics = compiled[n](state, chunk_data, keys)
                metrics = jax.device_get(metrics)
                finite_loss = np.isfinite(metrics["loss"])
                ok = finite_loss.all(axis=0) & np.asarray(metrics.pop("params_finite")).reshape(-1)
                for i in np.flatnonzero(~ok & (diverged < 0)):
                    bad = np.flatnonzero(~finite_loss[:, i])
                    diverged[i] = step + (int(bad[0]) + 1 if bad.size else n)
                    diverged_loss[i] = bool(bad.size)
                if stop_when_all_diverged and (diverged >= 0).all():
                    break
                if (diverged >= 0).any():  # diverged models stay frozen at their last finite state
                    kept = state if single else _keep_where(jnp.asarray(diverged < 0), new_state, state)
                    new_state = kept.replace(step=new_state.step)
                state = new_state
                step += n
                info = ChunkInfo(state, step, total_steps, metrics, time.perf_counter() - start, stacked=not single)
                for callback in callbacks:
                    callback(info)
                # checked after all callbacks, so they have all seen this chunk; a finished run just finishes
                if interrupted.is_set() and step < total_steps:
                    raise SweepInterrupted(state, step, interrupted.signum)
        except KeyboardInterrupt as err:
            if isinstance(err, TrainingInterrupted):
                raise
            raise SweepInterrupted(state, step, interrupted.signum) from None
    return EngineResult(state, diverged, diverged_loss, compile_s, time.perf_counter() - start)


def unstack_state(state: TrainState, i: int) -> TrainState:
    """Model i's :class:`TrainState` out of a stacked one."""
    return jax.tree.map(lambda x: jnp.asarray(x[i]), state)


def available_memory_bytes(device: jax.Device | None = None) -> int | None:
    """Memory a training program may use on ``device`` (default: the first device): an accelerator's
    ``bytes_limit``, or the host's physical memory for a CPU; ``None`` when unknown."""
    device = device or jax.devices()[0]
    try:
        stats = device.memory_stats() or {}
    except Exception:  # backends without memory statistics
        stats = {}
    if stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    if device.platform == "cpu":
        try:
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (ValueError, OSError, AttributeError):
            return None
    return None


def step_memory_estimate(points_per_step: int, width: int, depth: int, num_models: int = 1) -> int:
    """A lower estimate of the bytes one training step keeps alive: float32 activations of ``depth + 2`` layers
    of ``width`` for every point, stored for the backward pass, their gradients and two temporaries (4 copies)."""
    return int(num_models) * int(points_per_step) * int(width) * (int(depth) + 2) * 4 * 4


def plan_batch(config: Any, num_points: int, num_models: int = 1) -> Any:
    """The config a fit of a signal of ``num_points`` points trains with, checked before anything compiles.

    A ``batch_size`` above the signal's point count is clamped to the full signal (``batch_size=None``), with
    a warning; a step that cannot fit in memory (:func:`step_memory_estimate` against
    :func:`available_memory_bytes`) is refused.

    Raises:
      InputError: the estimate exceeds the memory; the message names both and the fix.
    """
    if config.batch_size is not None and config.batch_size > num_points:
        warnings.warn(f"batch size {config.batch_size} is larger than the signal's {num_points} points; "
                      "training on the full signal each step (--batch-size full)", UserWarning, stacklevel=3)
        config = dataclasses.replace(config, batch_size=None)
    points = config.batch_size or num_points
    width, depth = getattr(config.model, "width", None), getattr(config.model, "depth", None)
    if width is None or depth is None:  # an architecture without an MLP's width and depth: no estimate
        return config
    need = step_memory_estimate(points, width, depth, num_models)
    have = available_memory_bytes()
    if have is not None and need > have:
        raise InputError(f"a training step of {num_models} model(s) x {points} points needs about "
                         f"{need / 2**30:.1f} GiB, more than the {have / 2**30:.1f} GiB of memory; "
                         "lower --batch-size (or the image size, --max-size, or the number of models)")
    return config
