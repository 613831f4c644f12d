"""The MLP INR architecture (``"mlp"`` in :data:`model_components.inrs.MODELS`): encoding -> hidden layers ->
linear head -> output map, with its options dataclass :class:`MLPOptions`.

The classic positional-encoding ReLU MLP, Fourier feature networks, SIREN, the layer zoo and Instant-NGP's hash
grid + tiny MLP are all presets of it (:data:`model_components.presets.MODEL_PRESETS`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from model_components.catalog import ACTIVATIONS, ENCODINGS, LAYERS
from model_components.incode import conditioned_call
from model_components.layers import Linear, get_activation
from model_components.options import check_component_options, route_flat_overrides
from model_components.precision import DTYPES, resolve_dtype

if TYPE_CHECKING:
    from model_components.inrs import ModelConfig


class MLPINR(nn.Module):
    """Coordinate MLP: ``encoding -> (depth + 1) x hidden layer -> Linear(out_dim) -> output map``.

    Attributes:
      width: features of every hidden layer.
      depth: hidden layers after the first one (the classic "4 hidden layers" MLP has 5 activated layers).
      out_dim: channels of the signal (3 for RGB).
      layer: hidden layer type, a name in :data:`catalog.LAYERS` (``dense``, ``sine``, ...). A layer may return
        complex features (WIRE); the head then reads their real and imaginary parts.
      layer_kwargs: extra fields of that layer type (e.g. ``{"activation": "relu"}``, ``{"omega0": 30.0}``).
      first_layer_kwargs: overrides of ``layer_kwargs`` for the first layer only (e.g. SIREN's first omega0).
      encoding: coordinate encoding, a name in :data:`catalog.ENCODINGS`.
      encoding_kwargs: fields of that encoding (e.g. ``{"num_frequencies": 10}``).
      output_activation: name in :data:`catalog.ACTIVATIONS` applied to the head (``sigmoid`` keeps colours
        in (0, 1); ``identity`` for SIREN).
      output_offset: constant added after the output activation; SIREN uses 0.5 so an untrained network,
        whose outputs are centred on 0, starts at mid-grey of the [0, 1] target range (as in functa).
      dtype: compute dtype name of matrix products (``float32`` or ``bfloat16``); parameters stay float32.

    Shapes: ``(..., in_dim) float -> (..., out_dim) float32``. No batch axis is assumed: any leading axes are
    kept; ``vmap`` adds model axes.
    """

    width: int = 256
    depth: int = 4
    out_dim: int = 3
    layer: str = "dense"
    layer_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    first_layer_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    encoding: str = "nerf"
    encoding_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    output_activation: str = "sigmoid"
    output_offset: float = 0.0
    dtype: str = "float32"

    @nn.compact
    def __call__(self, coords: jax.Array) -> jax.Array:
        if not jnp.issubdtype(coords.dtype, jnp.floating):
            raise TypeError(f"coords must be a float array (..., in_dim), got dtype {coords.dtype}")
        compute_dtype = None if self.dtype == "float32" else DTYPES[self.dtype]
        layer_cls = LAYERS.get(self.layer)
        h = ENCODINGS.get(self.encoding)(**self.encoding_kwargs, name="encoding")(coords)
        # a layer conditioned on the signal (INCODE) gets its condition, computed once, at every layer
        condition = conditioned_call(layer_cls, self.layer_kwargs, coords.shape[-1], self.out_dim)
        for i in range(self.depth + 1):
            kwargs = {**self.layer_kwargs, **(self.first_layer_kwargs if i == 0 else {})}
            layer = layer_cls(self.width, is_first=i == 0, dtype=compute_dtype, name=f"layer_{i}", **kwargs)
            h = layer(h, *condition)
        if jnp.iscomplexobj(h):  # complex layers (WIRE): Re(W h) with complex W == real W' on [Re h, Im h]
            h = jnp.concatenate([h.real, h.imag], axis=-1)
        kernel_init, bias_init = layer_cls(self.width, **self.layer_kwargs).head_initializers()
        out = Linear(self.out_dim, kernel_init=kernel_init, bias_init=bias_init, name="head")(h)
        return get_activation(self.output_activation)(out) + self.output_offset


#: Flat keyword names accepted by :func:`model_components.inrs.model_config` for MLP options
#: (name -> (options field, option name)). Any other option name of the chosen layer or encoding works too
#: (layer first).
OPTION_ALIASES: dict[str, tuple[str, str]] = {
    "num_frequencies": ("encoding_options", "num_frequencies"),
    "fourier_features": ("encoding_options", "num_features"),
    "fourier_scale": ("encoding_options", "scale"),
    "first_omega0": ("first_layer_options", "omega0"),
    "fast_sine": ("layer_options", "fast"),
}


@dataclasses.dataclass(frozen=True)
class MLPOptions:
    """Options of the ``mlp`` architecture (:class:`MLPINR`); the defaults are the classic ReLU + NeRF MLP.

    Attributes:
      encoding: coordinate encoding, a name in :data:`catalog.ENCODINGS` (``none``, ``nerf``, ``fourier``, ...).
      encoding_options: fields of that encoding (e.g. ``{"num_frequencies": 10}``); unset fields keep the
        encoding's defaults.
      layer: hidden layer type, a name in :data:`catalog.LAYERS` (``dense``, ``sine``, ...).
      layer_options: fields of that layer type for every hidden layer (e.g. ``{"omega0": 30.0}``).
      first_layer_options: overrides of ``layer_options`` for the first hidden layer only.
      width: hidden width.
      depth: hidden layers after the first (the classic "4 hidden layers" MLP has depth 4: 5 activated layers).
      output_activation: name in :data:`catalog.ACTIVATIONS` applied to the linear head (``sigmoid`` keeps
        colours in (0, 1); ``identity`` for sine-type networks).
      output_offset: constant added after the output activation (0.5 centres zero-mean networks on mid-grey).
    """

    encoding: str = "nerf"
    encoding_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    layer: str = "dense"
    layer_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    first_layer_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    width: int = 256
    depth: int = 4
    output_activation: str = "sigmoid"
    output_offset: float = 0.0

    def validate(self, config: ModelConfig) -> None:
        """Raises ``ValueError`` naming the bad option and the valid choices (field types are already checked)."""
        encoding_cls, layer_cls = ENCODINGS.get(self.encoding), LAYERS.get(self.layer)
        ACTIVATIONS.get(self.output_activation)
        if self.width <= 0:
            raise ValueError(f"width must be positive, got {self.width}")
        if self.depth < 0:
            raise ValueError(f"depth must be >= 0, got {self.depth}")
        check_component_options(self, layer_cls, encoding_cls)

    def build(self, config: ModelConfig) -> MLPINR:
        """The Flax module of ``config`` (whose options are these)."""
        return MLPINR(width=self.width, depth=self.depth, out_dim=config.out_dim, layer=self.layer,
                      layer_kwargs=dict(self.layer_options), first_layer_kwargs=dict(self.first_layer_options),
                      encoding=self.encoding, encoding_kwargs=dict(self.encoding_options),
                      output_activation=self.output_activation, output_offset=self.output_offset,
                      dtype=resolve_dtype(config.dtype))

    @classmethod
    def route_overrides(cls, options: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` (a dict of this class's fields) updated by flat ``overrides``: option fields by name
        (switching ``layer`` or ``encoding`` resets that component's options), options of the chosen layer or
        encoding by their own name (``omega0=20``, ``num_frequencies=6``), or an alias from
        :data:`OPTION_ALIASES`. A single ``omega0`` sets the first layer's too unless ``first_omega0`` is given.

        Raises:
          ValueError: a name that is none of these, listing the valid ones.
        """
        values = route_flat_overrides(cls, options, overrides, OPTION_ALIASES, LAYERS, ENCODINGS, "mlp")
        if "omega0" in overrides and "omega0" not in OPTION_ALIASES and "omega0" in values.get("layer_options", {}) \
                and "omega0" in values.get("first_layer_options", {}):
            values["first_layer_options"]["omega0"] = overrides["omega0"]  # one omega0 unless first_omega0
        if "first_omega0" in overrides:
            values["first_layer_options"]["omega0"] = overrides["first_omega0"]
        return values
