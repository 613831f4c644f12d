"""Whole INRs: coordinates ``(..., in_dim)`` -> signal values ``(..., out_dim)``, built from a config.

:class:`MLPINR` is the one generic architecture (encoding -> hidden layers -> linear head -> output map);
the classic positional-encoding ReLU MLP and SIREN are presets of it (:data:`MODEL_PRESETS`).
:class:`ModelConfig` is a frozen, JSON-serialisable description from which :func:`build_model` makes the
Flax module, so a saved config always rebuilds the same network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from model_components.encodings import ENCODINGS
from model_components.layers import ACTIVATIONS, LAYERS, Linear, get_activation
from model_components.precision import resolve_dtype

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


class MLPINR(nn.Module):
    """Coordinate MLP: ``encoding -> (depth + 1) x hidden layer -> Linear(out_dim) -> output map``.

    Attributes:
      width: features of every hidden layer.
      depth: hidden layers after the first one (the classic "4 hidden layers" MLP has 5 activated layers).
      out_dim: channels of the signal (3 for RGB).
      layer: hidden layer type, a name in :data:`layers.LAYERS` (``dense``, ``sine``).
      layer_kwargs: extra fields of that layer type (e.g. ``{"activation": "relu"}``, ``{"omega0": 30.0}``).
      first_layer_kwargs: overrides of ``layer_kwargs`` for the first layer only (e.g. SIREN's first omega0).
      encoding: coordinate encoding, a name in :data:`encodings.ENCODINGS`.
      encoding_kwargs: fields of that encoding (e.g. ``{"num_frequencies": 10}``).
      output_activation: name in :data:`layers.ACTIVATIONS` applied to the head (``sigmoid`` keeps colours
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
        for i in range(self.depth + 1):
            kwargs = {**self.layer_kwargs, **(self.first_layer_kwargs if i == 0 else {})}
            h = layer_cls(self.width, is_first=i == 0, dtype=compute_dtype, name=f"layer_{i}", **kwargs)(h)
        kernel_init, bias_init = layer_cls(self.width, **self.layer_kwargs).head_initializers()
        out = Linear(self.out_dim, kernel_init=kernel_init, bias_init=bias_init, name="head")(h)
        return get_activation(self.output_activation)(out) + self.output_offset


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that defines an INR's architecture; ``build_model(config)`` makes the module.

    Attributes:
      model: preset name in :data:`MODEL_PRESETS` (``relu_pe``, ``ffn`` or ``siren``); its defaults fill fields left
        as ``None`` by :func:`model_config`.
      encoding: ``none`` | ``nerf`` (positional encoding with ``num_frequencies`` octaves) | ``fourier``
        (Gaussian random Fourier features with ``fourier_features`` frequencies of std ``fourier_scale``).
      num_frequencies: L of the NeRF encoding (0 = raw coordinates).
      fourier_features: m of the Gaussian Fourier encoding.
      fourier_scale: sigma of the Gaussian Fourier encoding.
      width: hidden width.
      depth: hidden layers after the first.
      activation: activation of ``dense`` layers (ignored for ``siren``, whose activation is the sine).
      omega0: SIREN frequency factor of hidden layers.
      first_omega0: SIREN frequency factor of the first layer.
      fast_sine: SIREN sines via :func:`fast_math.fast_sin` (default) instead of ``jnp.sin``.
      output_activation: ``sigmoid`` or ``identity`` (any name in ``layers.ACTIVATIONS``).
      out_dim: signal channels.
      in_dim: coordinate dimension (2 for images).
      dtype: ``float32`` or ``bfloat16`` compute dtype of matrix products (parameters are always float32);
        ``auto`` picks bfloat16 where the hardware has native bfloat16 products (see ``precision``).
    """

    model: str = "relu_pe"
    encoding: str = "nerf"
    num_frequencies: int = 10
    fourier_features: int = 256
    fourier_scale: float = 10.0
    width: int = 256
    depth: int = 4
    activation: str = "relu"
    omega0: float = 30.0
    first_omega0: float = 30.0
    fast_sine: bool = True
    output_activation: str = "sigmoid"
    out_dim: int = 3
    in_dim: int = 2
    dtype: str = "auto"

    def validate(self) -> ModelConfig:
        """Raises ``ValueError`` naming the bad field and the valid choices; returns self."""
        if self.model not in MODEL_PRESETS:
            raise ValueError(f"unknown model {self.model!r}; choose one of: {', '.join(sorted(MODEL_PRESETS))}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {self.encoding!r}; choose one of: {', '.join(ENCODINGS.names())}")
        for name in ("activation", "output_activation"):
            if getattr(self, name) not in ACTIVATIONS:
                raise ValueError(
                    f"unknown {name} {getattr(self, name)!r}; choose one of: {', '.join(sorted(ACTIVATIONS))}"
                )
        if self.dtype not in DTYPES and self.dtype != "auto":
            raise ValueError(f"unknown dtype {self.dtype!r}; choose one of: auto, {', '.join(DTYPES)}")
        for name in ("width", "out_dim", "in_dim", "fourier_features"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("depth", "num_frequencies"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("omega0", "first_omega0", "fourier_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelConfig:
        """Builds a config from a dict, rejecting unknown keys with the list of valid ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model config field(s) {unknown}; valid fields: {', '.join(sorted(known))}")
        return cls(**values).validate()


#: Per-model defaults: fields a user did not set come from here.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    # Positional encoding + ReLU MLP, the classic tutorial INR (Mildenhall et al. 2020; Tancik et al. 2020).
    "relu_pe": dict(encoding="nerf", num_frequencies=10, width=256, depth=4, activation="relu",
                    output_activation="sigmoid"),
    # Gaussian Fourier feature network (Tancik et al. 2020): random Fourier features + ReLU MLP.
    "ffn": dict(encoding="fourier", fourier_features=256, fourier_scale=10.0, width=256, depth=3,
                activation="relu", output_activation="sigmoid"),
    # SIREN (Sitzmann et al. 2020): raw coordinates, sine layers, linear output.
    # float32: omega0 = 30 scales the rounding error of bfloat16 products to ~0.1 rad of phase.
    "siren": dict(encoding="none", width=256, depth=3, omega0=30.0, first_omega0=30.0,
                  output_activation="identity", dtype="float32"),
}


def model_config(model: str = "relu_pe", **overrides: Any) -> ModelConfig:
    """The preset ``model`` with ``overrides`` applied (``None`` values are ignored), validated."""
    if model not in MODEL_PRESETS:
        raise ValueError(f"unknown model {model!r}; choose one of: {', '.join(sorted(MODEL_PRESETS))}")
    values = {**MODEL_PRESETS[model], **{k: v for k, v in overrides.items() if v is not None}}
    return ModelConfig.from_dict({"model": model, **values})


def build_model(config: ModelConfig) -> MLPINR:
    """Makes the Flax module described by ``config`` (validated first)."""
    config.validate()
    if config.encoding == "nerf":
        encoding_kwargs = {"num_frequencies": config.num_frequencies}
    elif config.encoding == "fourier":
        encoding_kwargs = {"num_features": config.fourier_features, "scale": config.fourier_scale}
    else:
        encoding_kwargs = {}
    if config.model == "siren":
        layer, layer_kwargs = "sine", {"omega0": config.omega0, "fast": config.fast_sine}
        first_layer_kwargs, output_offset = {"omega0": config.first_omega0}, 0.5
    else:
        layer, layer_kwargs, first_layer_kwargs, output_offset = "dense", {"activation": config.activation}, {}, 0.0
    return MLPINR(
        width=config.width,
        depth=config.depth,
        out_dim=config.out_dim,
        layer=layer,
        layer_kwargs=layer_kwargs,
        first_layer_kwargs=first_layer_kwargs,
        encoding=config.encoding,
        encoding_kwargs=encoding_kwargs,
        output_activation=config.output_activation,
        output_offset=output_offset,
        dtype=resolve_dtype(config.dtype),
    )


def count_params(params: Any) -> int:
    """Total number of scalars in a parameter pytree."""
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
