"""Evaluation of N models over their whole training signal, on the device, and the checks of a finished run.

Works on flat data (:class:`inr_utils.samplers.PixelData`: ``(points, d)`` coordinates, ``(points, C)`` values)
of any coordinate dimension; reshaping to the signal's grid (``signal.shape[:-1]``) is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from inr_utils.devices import MODEL_AXIS
from inr_utils.engine import ChunkInfo, _expand, _on_mesh, _squeeze, data_specs, shared_axes, split_data
from inr_utils.samplers import PixelData
from inr_utils.training import merge_variables

#: A run whose final PSNR is this many dB below its best evaluation has collapsed.
COLLAPSE_DROP_DB = 6.0


def make_evaluator(apply_fn: Callable, data: PixelData, data_axes: PixelData, mesh: Mesh | None,
                   chunk_pixels: int = 1 << 16, single: bool = False, align: int = 1,
                   ) -> Callable[[Any, Any, PixelData], tuple[jax.Array, jax.Array]]:
    """Full-signal MSE of every model: jitted ``evaluate(params, constants, data) -> (mse (N,), clipped_mse (N,))``
    for stacked ``(N, ...)`` params and constants and data shaped and placed like ``data``.

    ``clipped_mse`` scores the prediction clipped to [0, 1] (what a saved PNG shows). Each device evaluates
    ``chunk_pixels`` points at a time over all its models (split evenly between them; the last chunk padded
    and masked), bounding memory whatever the signal size and model count. ``single``: one model with no
    model axis in its params, constants or data (the results still get one, ``(1,)``). ``align``: chunks hold a
    multiple of this many points (the point count must be one too), e.g. the K partitions of partition-interleaved
    data evaluated by a grouped ``apply_fn`` (:mod:`inr_utils.partitions`).
    """
    n = data.values.shape[-2]
    channels = data.values.shape[-1]
    models = data.coords.shape[0] if data_axes.coords == 0 else 1
    local_models = max(1, models // (1 if mesh is None else mesh.devices.size))
    size = min(n, max(256, chunk_pixels // local_models))
    size = max(align, size - size % align)
    pad = (-n) % size
    chunks = (n + pad) // size

    def split(x: jax.Array) -> jax.Array:  # (n, k) -> (chunks, size, k)
        return jnp.pad(x, ((0, pad), (0, 0))).reshape(chunks, size, x.shape[-1])

    def one(params: Any, constants: Any, data: PixelData) -> tuple[jax.Array, jax.Array]:
        def body(_, xs):
            c, v, w = xs
            pred = apply_fn(merge_variables(params, constants), c)
            return None, (jnp.sum(w * jnp.square(pred - v)), jnp.sum(w * jnp.square(jnp.clip(pred, 0, 1) - v)))

        weights = split(jnp.ones((n, 1), jnp.float32))  # 0 on the padding
        _, (sse, sse_clipped) = jax.lax.scan(body, None, (split(data.coords), split(data.values), weights))
        return jnp.sum(sse) / (n * channels), jnp.sum(sse_clipped) / (n * channels)

    if single:
        return jax.jit(lambda params, constants, data: _expand(one(params, constants, data)))
    batched = jax.vmap(one, in_axes=(0, 0, data_axes))

    def local(params: Any, constants: Any, data: PixelData) -> tuple[jax.Array, jax.Array]:
        if jax.tree.leaves(params)[0].shape[0] == 1:  # one model here: the single-model program
            per_model, shared = split_data(data, data_axes)
            joined = PixelData(*(s if s is not None else _squeeze(b) for b, s in zip(per_model, shared, strict=True)))
            return _expand(one(_squeeze(params), _squeeze(constants), joined))
        return batched(params, constants, data)

    return _on_mesh(local, mesh, (P(MODEL_AXIS), P(MODEL_AXIS), data_specs(data_axes)), (P(MODEL_AXIS), P(MODEL_AXIS)))


def psnr_of_mse(mse: np.ndarray | float) -> np.ndarray:
    """``10 log10(1 / mse)`` in float64 numpy (inf for 0, NaN for NaN, no warnings)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10.0 * np.log10(1.0 / np.asarray(mse, np.float64))


class FullSignalEvaluator:
    """Every ``every`` steps (at chunk ends that cross a multiple of it, and always at the last step) computes
    each model's PSNR over its whole training signal (unclipped prediction, dB) and stores it as
    ``info.extra["full_psnr"]`` (``(N,)``; a float for a single-model :meth:`ChunkInfo.model` view).

    Args:
      apply_fn: ``model.apply`` shared by the models.
      data: the training signal(s), placed as training places them.
      every: evaluation interval in steps.
      chunk_pixels: points per forward pass (bounds memory).
      data_axes: model axes of ``data`` (default: shared by every model).
      mesh: the model mesh (default: the default device).
      evaluate: a program of :func:`make_evaluator` to use (e.g. a cached one) instead of building one; made
        for the kind of state the callback will see (``single`` for one unstacked model).

    ``last`` keeps the latest evaluation, ``(step, mse (N,), clipped_mse (N,))`` or ``None``, so the final
    scores need no second pass.
    """

    def __init__(self, apply_fn: Callable, data: PixelData, every: int = 200, chunk_pixels: int = 1 << 16,
                 data_axes: PixelData | None = None, mesh: Mesh | None = None, evaluate: Callable | None = None):
        self.single = data_axes is None and mesh is None  # one model, unstacked (a fit or a single-model view)
        data_axes = shared_axes() if data_axes is None else data_axes
        self.program = evaluate or make_evaluator(apply_fn, data, data_axes, mesh, chunk_pixels, self.single)
        self.data, self.every = data, every
        self._last_eval: int | None = None
        self.last: tuple[int, np.ndarray, np.ndarray] | None = None

    def evaluate(self, params: Any, constants: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(mse (N,), clipped_mse (N,))`` of stacked params and constants."""
        mse, clipped = jax.device_get(self.program(params, constants, self.data))
        return np.asarray(mse), np.asarray(clipped)

    def __call__(self, info: ChunkInfo) -> None:
        crossed = self._last_eval is None or info.step // self.every > self._last_eval // self.every
        if not (crossed or info.step >= info.total_steps):
            return
        params, constants = info.state.params, info.state.constants
        if info.stacked == self.single:
            raise ValueError("this evaluator was made for " + ("one unstacked model" if self.single else
                             "stacked models") + "; pass data_axes and mesh to match the training")
        mse, clipped = self.evaluate(params, constants)
        self.last = (info.step, mse, clipped)
        psnr = psnr_of_mse(mse)
        info.extra["full_psnr"] = float(psnr[0]) if np.ndim(info.metrics["loss"]) == 1 else psnr
        self._last_eval = info.step


def constant_baseline_psnr(values: np.ndarray) -> float:
    """PSNR (dB) of the best constant prediction, the mean value of each channel: what a collapsed fit is
    compared against. ``values``: ``(..., C)`` in [0, 1]."""
    values = np.asarray(values, np.float64).reshape(-1, np.shape(values)[-1])
    return float(psnr_of_mse(np.mean(np.square(values - values.mean(axis=0)))))


def collapse_warnings(final_psnr: float, best_psnr: float, baseline_psnr: float) -> list[str]:
    """Messages for a run whose PSNR collapsed: its final PSNR is :data:`COLLAPSE_DROP_DB` below its best, or
    below the constant-colour baseline (:func:`constant_baseline_psnr`). Empty when the run is fine."""
    messages = []
    if not np.isfinite(final_psnr):
        return [f"the final PSNR is {final_psnr}; the run diverged: lower the learning rate (--lr)"]
    if np.isfinite(best_psnr) and final_psnr < best_psnr - COLLAPSE_DROP_DB:
        messages.append(f"the PSNR collapsed: {final_psnr:.2f} dB at the end, {best_psnr:.2f} dB at best; "
                        "lower the learning rate (--lr) or use a decaying schedule (--lr-schedule cosine)")
    if final_psnr < baseline_psnr:
        messages.append(f"the final PSNR ({final_psnr:.2f} dB) is below that of a constant image of the mean "
                        f"colour ({baseline_psnr:.2f} dB): the fit failed; lower the learning rate (--lr)")
    return messages
