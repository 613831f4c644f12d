"""What can share a model axis: models whose configs differ only in values (not shapes or computation), and
signals stacked into one array (one per model, or one shared by all).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from inr_utils.errors import InputError
from inr_utils.grids import cell_size, grid
from inr_utils.programs import model_key
from inr_utils.samplers import PixelData
from model_components.inrs import ModelConfig, build_model
from model_components.mlp import MLPINR


def _flat_dict(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flat_dict(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


def _differing_fields(a: ModelConfig, b: ModelConfig) -> str:
    """``"model.width 64 vs 32, model.layer_options.activation 'tanh' vs 'relu'"``: the fields where model
    config ``a`` differs from ``b``, with a's value first."""
    fa, fb = _flat_dict(a.to_dict()), _flat_dict(b.to_dict())
    names = sorted(set(fa) | set(fb))
    missing = _Unset()
    diffs = [f"model.{k} {fa.get(k, missing)!r} vs {fb.get(k, missing)!r}" for k in names
             if fa.get(k, missing) != fb.get(k, missing)]
    return ", ".join(diffs) or "no config field (the image channels?)"


def check_compatible(model_configs: Sequence[ModelConfig]) -> MLPINR:
    """Checks that the models can be stacked along a model axis; returns the module whose ``apply`` all share.

    Two models are compatible when their variables have the same tree and shapes, and their ``apply`` traces
    to the same program given variables of those shapes (so they differ only in the values of variables, as
    omega0 or Fourier scales do). ``out_dim`` must already be set to the signal's channels.

    Raises:
      InputError: shapes or computation differ; the message names the differing config fields.
    """
    first = model_configs[0]
    reference_model = build_model(first)

    def coords_of(config: ModelConfig) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct((1, config.in_dim), jnp.float32)

    def shapes_of(model: MLPINR, coords: jax.ShapeDtypeStruct) -> Any:
        return jax.eval_shape(model.init, jax.random.key(0), coords)

    def program(model: MLPINR, shapes: Any, coords: jax.ShapeDtypeStruct) -> tuple[str, list[np.ndarray]]:
        # the program text (literals included) and its captured constants decide what apply computes
        closed = jax.make_jaxpr(model.apply)(shapes, coords)
        return str(closed.jaxpr), [np.asarray(c) for c in closed.consts]

    @functools.cache
    def reference() -> tuple[Any, tuple[str, list[np.ndarray]]]:
        # traced only if a second, different config comes
        shapes = shapes_of(reference_model, coords_of(first))
        return shapes, program(reference_model, shapes, coords_of(first))

    seen = {model_key(first)}
    for i, config in enumerate(model_configs):
        key = model_key(config)
        if key in seen:
            continue
        seen.add(key)
        model = build_model(config)
        shapes = shapes_of(model, coords_of(config))
        ref_shapes, (ref_text, ref_consts) = reference()
        if jax.tree.structure(shapes) != jax.tree.structure(ref_shapes) or any(
                a.shape != b.shape or a.dtype != b.dtype
                for a, b in zip(jax.tree.leaves(shapes), jax.tree.leaves(ref_shapes), strict=True)):
            raise InputError(f"model {i} has parameter shapes different from model 0's "
                             f"({_differing_fields(config, first)} of model 0); the models of one sweep may "
                             "differ only in hyperparameters that keep shapes (seed, lr, omega0, Fourier scale, "
                             "...): run separate sweeps")
        text, consts = program(model, shapes, coords_of(config))
        if text != ref_text or len(consts) != len(ref_consts) or not all(
                a.shape == b.shape and np.array_equal(a, b) for a, b in zip(consts, ref_consts, strict=True)):
            raise InputError(f"model {i} computes differently from model 0, not only through its variables "
                             f"({_differing_fields(config, first)} of model 0); run separate sweeps")
    return reference_model


def stack_signals(signals: np.ndarray | Sequence[np.ndarray], in_dim: int | None = None) -> tuple[np.ndarray, bool]:
    """Signals of a sweep -> (float32 array, whether it has a model axis).

    Args:
      signals: one signal ``(*shape, C)`` shared by every model, or N signals of one shape: an ``(N, *shape, C)``
        array or a list of N ``(*shape, C)`` arrays. ``shape`` has d sample axes (``(H, W)`` for images).
      in_dim: d, which tells a shared signal from a stack for an array (``ndim == d + 1``: shared, ``d + 2``: a
        stack); ``None``: an array is one shared signal. A list is always a stack, whatever ``in_dim``.

    Raises:
      InputError: signals of different shapes, or an array that is neither reading of ``in_dim``.
    """
    if isinstance(signals, (list, tuple)):
        shapes = [np.shape(signal) for signal in signals]
        for i, shape in enumerate(shapes):
            if shape != shapes[0] or len(shape) < 2:
                raise InputError(f"signals of a sweep must all be (*sample_axes, C) of one size: signal {i} is "
                                 f"{shape}, signal 0 {shapes[0]}; resize or crop them to one size")
        return np.stack(signals).astype(np.float32, copy=False), True
    signals = np.asarray(signals, dtype=np.float32)
    if in_dim is None:
        stacked = False
    elif signals.ndim in (in_dim + 1, in_dim + 2):
        stacked = signals.ndim == in_dim + 2
    else:
        raise InputError(f"signals of shape {signals.shape} are neither one {in_dim}-D signal (*shape, C) nor a stack "
                         f"(N, *shape, C) of them, as the model's in_dim={in_dim} says; set model.in_dim to the "
                         "signal's number of sample axes, or pass a list of signals")
    if signals.ndim < 2 + stacked or signals.shape[-1] < 1:
        raise InputError(f"expected a (*sample_axes, C) signal or an (N, *sample_axes, C) stack, got shape "
                         f"{signals.shape}")
    return signals, stacked


def stack_images(images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """``(H, W, C)`` (shared by every model) or ``(N, H, W, C)`` / a list of N ``(H, W, C)`` arrays of one size
    -> float32 array of the same rank; raises :class:`InputError` naming mismatched shapes. (Images only: see
    :func:`stack_signals` for signals of any dimension.)"""
    if isinstance(images, (list, tuple)):
        shapes = [np.shape(image) for image in images]
        for i, shape in enumerate(shapes):
            if shape != shapes[0] or len(shape) != 3:
                raise InputError(f"images of a sweep must all be (H, W, C) of one size: image {i} is {shape}, "
                                 f"image 0 {shapes[0]}; resize or crop them to one size")
        images = np.stack(images)
    images = np.asarray(images, dtype=np.float32)
    if images.ndim not in (3, 4) or images.shape[-1] < 1:
        raise InputError(f"expected an (H, W, C) image or an (N, H, W, C) stack, got shape {images.shape}")
    return images


def signals_to_data(signals: np.ndarray, stacked: bool, num_models: int | None = None,
                    ) -> tuple[PixelData, PixelData]:
    """Signals of any dimension d -> (``PixelData`` with a model axis, its ``vmap`` axes).

    Args:
      signals: ``(*shape, C)`` shared (``stacked=False``), or ``(N, *shape, C)`` one per model.
      stacked: whether ``signals`` has the model axis.
      num_models: N (needed for a shared signal; default ``signals.shape[0]`` for a stack).

    Returns:
      ``data`` with ``coords (N, P, d)`` (P = prod(shape), :func:`inr_utils.grids.grid` order), ``values (P, C)``
      (shared) or ``(N, P, C)``, ``pixel_size (d,)``, and ``axes``, the matching ``in_axes``:
      ``PixelData(0, 0 or None, None)``. The coordinates are the same for every model but get a model axis
      anyway: then every product of the first layer is a batched one, and activations come out model-major
      (``(N, points, width)``), which keeps XLA from transposing them in every step.
    """
    shape, channels = tuple(signals.shape[1 if stacked else 0:-1]), signals.shape[-1]
    n = signals.shape[0] if stacked else num_models
    if n is None:
        raise ValueError("num_models is needed with a single shared signal")
    points = math.prod(shape)
    # numpy on the host: placing host arrays on a mesh needs no compiled resharding program
    coords = np.asarray(grid(shape), np.float32).reshape(1, points, len(shape))
    coords = np.ascontiguousarray(np.broadcast_to(coords, (n, points, len(shape))))
    values = np.asarray(signals, np.float32).reshape(*signals.shape[:1 if stacked else 0], points, channels)
    pixel_size = np.asarray(cell_size(shape), np.float32)
    axes = PixelData(0, 0 if stacked else None, None)
    return PixelData(coords, values, pixel_size), axes
