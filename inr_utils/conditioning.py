"""Models conditioned on their signal: the fitted signal, resized, put into the model's constants at fit time.

A model that reads its own signal (INCODE's harmonizer, :mod:`model_components.incode`) keeps a thumbnail of it as
a non-trainable constant named :data:`~model_components.incode.SIGNAL_CONSTANT` (any depth of the
``constants`` tree, shape ``(*side, C)``; 0.5 after ``init``), so ``model.apply(variables, coords)`` stays pure.
:func:`inr_utils.fitting.fit` and :func:`inr_utils.sweeps.fit_many` call :func:`with_signal` on the step-0 state,
which fills every such constant with the signal resized to its shape; for any other model it changes nothing.
The constants are never trained and travel with the checkpoints, so a resumed, rendered or cropped model sees
the same thumbnail.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from inr_utils.training import TrainState
from model_components.incode import SIGNAL_CONSTANT

__all__ = ["has_signal_constants", "thumbnail", "with_signal"]


def thumbnail(signal: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``signal (*sample_axes, C)`` resized to ``shape = (*side, C)`` (linear interpolation with antialiasing,
    so a downsampled thumbnail averages the samples it covers): float32 numpy."""
    signal = jnp.asarray(signal, jnp.float32)
    if signal.ndim != len(shape) or signal.shape[-1] != shape[-1]:
        raise ValueError(f"a signal of shape {tuple(signal.shape)} cannot fill a thumbnail of shape {tuple(shape)}: "
                         f"the model was built for {len(shape) - 1} sample axes and {shape[-1]} channels")
    return np.asarray(jax.image.resize(signal, tuple(shape), method="linear", antialias=True), np.float32)


def _is_signal_path(path: tuple[Any, ...]) -> bool:
    return bool(path) and getattr(path[-1], "key", None) == SIGNAL_CONSTANT


def has_signal_constants(constants: Any) -> bool:
    """Whether a constants tree holds a constant named :data:`SIGNAL_CONSTANT`."""
    return any(_is_signal_path(path) for path, _ in jax.tree_util.tree_flatten_with_path(constants)[0])


def with_signal(state: TrainState, signal: np.ndarray, stacked: bool = False) -> TrainState:
    """``state`` with every :data:`SIGNAL_CONSTANT` of its constants set to ``signal`` resized to its shape.

    Args:
      state: a step-0 :class:`TrainState`, one model's (``stacked=False``: leaves without a model axis) or N
        models' (leaves ``(N, ...)``).
      signal: ``(*shape, C)`` in [0, 1], one signal for every model; or, with ``stacked``, ``(N, *shape, C)``:
        model i's signal is ``signal[i]``.
      stacked: whether ``signal`` has a leading model axis.

    Returns:
      the state (unchanged when its model has no such constant).
    """
    if not has_signal_constants(state.constants):
        return state
    signal = np.asarray(signal)

    def fill(path: tuple[Any, ...], leaf: Any) -> Any:
        if not _is_signal_path(path):
            return leaf
        leaf = np.asarray(leaf)
        if not stacked and leaf.ndim == signal.ndim:  # one model
            return jnp.asarray(thumbnail(signal, leaf.shape), leaf.dtype)
        # N models: each its own signal (one at a time, so every model gets the bits of a single fit)
        shape = leaf.shape[1:]
        if stacked:
            return np.stack([thumbnail(s, shape) for s in signal]).astype(leaf.dtype)
        return np.broadcast_to(thumbnail(signal, shape), leaf.shape).astype(leaf.dtype)

    return state.replace(constants=jax.tree_util.tree_map_with_path(fill, state.constants))
