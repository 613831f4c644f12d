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

from model_components import hash_grid, layer_zoo  # noqa: F401  (registers their layers, encodings, presets)
from model_components.encodings import ENCODINGS
from model_components.layers import ACTIVATIONS, LAYERS, Linear, get_activation
from model_components.precision import resolve_dtype
from model_components.presets import MODEL_PRESETS, PRESET_TRAINING, register_preset  # noqa: F401

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


class MLPINR(nn.Module):
    """Coordinate MLP: ``encoding -> (depth + 1) x hidden layer -> Linear(out_dim) -> output map``.

    Attributes:
      width: features of every hidden layer.
      depth: hidden layers after the first one (the classic "4 hidden layers" MLP has 5 activated layers).
      out_dim: channels of the signal (3 for RGB).
      layer: hidden layer type, a name in :data:`layers.LAYERS` (``dense``, ``sine``, ...). A layer may return
        complex features (WIRE); the head then reads their real and imaginary parts.
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
        if jnp.iscomplexobj(h):  # complex layers (WIRE): Re(W h) with complex W == real W' on [Re h, Im h]
            h = jnp.concatenate([h.real, h.imag], axis=-1)
        kernel_init, bias_init = layer_cls(self.width, **self.layer_kwargs).head_initializers()
        out = Linear(self.out_dim, kernel_init=kernel_init, bias_init=bias_init, name="head")(h)
        return get_activation(self.output_activation)(out) + self.output_offset


#: Fields of a layer/encoding module that the INR sets itself, so they are not user options.
RESERVED_FIELDS = frozenset({"features", "is_first", "dtype", "parent", "name"})


def component_options(cls: type[nn.Module]) -> dict[str, Any]:
    """User-settable fields of a registered layer or encoding class with their defaults (name -> default)."""
    options = {}
    for f in dataclasses.fields(cls):
        if f.name in RESERVED_FIELDS or not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            options[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            options[f.name] = f.default_factory()
    return options


def _check_options(kind: str, name: str, cls: type[nn.Module], options: Mapping[str, Any]) -> None:
    valid = component_options(cls)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} of {kind} {name!r}; valid options: "
                         f"{', '.join(f'{k} (default {v!r})' for k, v in valid.items()) or 'none'}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that defines an INR's architecture; ``build_model(config)`` makes the module.

    A config is plain data (JSON round-trips exactly): which encoding and hidden-layer type to use by their
    registry names, with their options as dicts, plus the widths. :func:`model_config` builds one from a
    preset and flat keyword overrides (``model_config("siren", omega0=20, width=128)``).

    Attributes:
      model: name of the preset the config started from (:data:`MODEL_PRESETS`); informational once built.
      encoding: coordinate encoding, a name in :data:`encodings.ENCODINGS` (``none``, ``nerf``, ``fourier``,
        ...).
      encoding_options: fields of that encoding (e.g. ``{"num_frequencies": 10}``); unset fields keep the
        encoding's defaults.
      layer: hidden layer type, a name in :data:`layers.LAYERS` (``dense``, ``sine``, ...).
      layer_options: fields of that layer type for every hidden layer (e.g. ``{"omega0": 30.0}``).
      first_layer_options: overrides of ``layer_options`` for the first hidden layer only.
      width: hidden width.
      depth: hidden layers after the first (the classic "4 hidden layers" MLP has depth 4: 5 activated layers).
      output_activation: name in ``layers.ACTIVATIONS`` applied to the linear head (``sigmoid`` keeps colours
        in (0, 1); ``identity`` for sine-type networks).
      output_offset: constant added after the output activation (0.5 centres zero-mean networks on mid-grey).
      out_dim: signal channels.
      in_dim: coordinate dimension (2 for images).
      dtype: ``float32`` or ``bfloat16`` compute dtype of matrix products (parameters are always float32);
        ``auto`` picks bfloat16 where the hardware has native bfloat16 products (see ``precision``).
    """

    model: str = "relu_pe"
    encoding: str = "nerf"
    encoding_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    layer: str = "dense"
    layer_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    first_layer_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    width: int = 256
    depth: int = 4
    output_activation: str = "sigmoid"
    output_offset: float = 0.0
    out_dim: int = 3
    in_dim: int = 2
    dtype: str = "auto"

    def validate(self) -> ModelConfig:
        """Raises ``ValueError`` naming the bad field and the valid choices; returns self."""
        if self.model not in MODEL_PRESETS:
            raise ValueError(f"unknown model {self.model!r}; choose one of: {', '.join(sorted(MODEL_PRESETS))}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {self.encoding!r}; choose one of: {', '.join(ENCODINGS.names())}")
        if self.layer not in LAYERS:
            raise ValueError(f"unknown layer {self.layer!r}; choose one of: {', '.join(LAYERS.names())}")
        if self.output_activation not in ACTIVATIONS:
            raise ValueError(f"unknown output_activation {self.output_activation!r}; choose one of: "
                             f"{', '.join(sorted(ACTIVATIONS))}")
        if self.dtype not in DTYPES and self.dtype != "auto":
            raise ValueError(f"unknown dtype {self.dtype!r}; choose one of: auto, {', '.join(DTYPES)}")
        for name in ("width", "out_dim", "in_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.depth < 0:
            raise ValueError(f"depth must be >= 0, got {self.depth}")
        encoding_cls, layer_cls = ENCODINGS.get(self.encoding), LAYERS.get(self.layer)
        _check_options("encoding", self.encoding, encoding_cls, self.encoding_options)
        _check_options("layer", self.layer, layer_cls, self.layer_options)
        _check_options("layer", self.layer, layer_cls, self.first_layer_options)
        for cls, options in ((encoding_cls, self.encoding_options), (layer_cls, self.layer_options),
                             (layer_cls, {**self.layer_options, **self.first_layer_options})):
            check = getattr(cls, "check_options", None)
            if check is not None:
                check(dict(options))
        return self

    def to_dict(self) -> dict[str, Any]:
        return {f.name: dict(v) if isinstance(v := getattr(self, f.name), Mapping) else v
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelConfig:
        """Builds a config from a dict such as :meth:`to_dict`'s, or a partial one: fields left out come
        from the preset named by ``values["model"]`` (default ``relu_pe``), and flat option names work as
        in :func:`model_config` (``{"model": "siren", "omega0": 20}``). Unknown keys raise ``ValueError``
        listing the valid ones."""
        values = dict(values)
        return model_config(values.pop("model", "relu_pe"), **values)


# Positional encoding + ReLU MLP, the classic tutorial INR (Mildenhall et al. 2020; Tancik et al. 2020).
register_preset("relu_pe", encoding="nerf", encoding_options={"num_frequencies": 10}, layer="dense",
                layer_options={"activation": "relu"}, width=256, depth=4, output_activation="sigmoid")
# Gaussian Fourier feature network (Tancik et al. 2020): random Fourier features + ReLU MLP.
register_preset("ffn", encoding="fourier", encoding_options={"num_features": 256, "scale": 10.0}, layer="dense",
                layer_options={"activation": "relu"}, width=256, depth=3, output_activation="sigmoid")
# SIREN (Sitzmann et al. 2020): raw coordinates, sine layers, linear output centred on mid-grey; Adam 1e-4
# (supplement; 1e-3 makes its sines jump periods). float32: omega0 = 30 scales the rounding error of
# bfloat16 products to ~0.1 rad of phase.
register_preset("siren", training={"lr": 1e-4}, encoding="none", layer="sine",
                layer_options={"omega0": 30.0}, first_layer_options={"omega0": 30.0}, width=256, depth=3,
                output_activation="identity", output_offset=0.5, dtype="float32")

#: Flat keyword names accepted by :func:`model_config` for options (name -> (where, option name)).
#: Any other option name of the chosen layer or encoding works too (layer first).
OPTION_ALIASES: dict[str, tuple[str, str]] = {
    "num_frequencies": ("encoding_options", "num_frequencies"),
    "fourier_features": ("encoding_options", "num_features"),
    "fourier_scale": ("encoding_options", "scale"),
    "first_omega0": ("first_layer_options", "omega0"),
    "fast_sine": ("layer_options", "fast"),
}


def model_config(model: str | None = None, base: ModelConfig | None = None, **overrides: Any) -> ModelConfig:
    """A validated :class:`ModelConfig` from a preset (or ``base``) and flat overrides.

    Args:
      model: preset name in :data:`MODEL_PRESETS`; ``None`` keeps ``base`` (or ``relu_pe`` without base).
      base: config to modify instead of the preset's defaults.
      **overrides: ModelConfig fields (``width=128``, ``layer="gauss"``) or options of the chosen layer or
        encoding by name (``omega0=20``, ``num_frequencies=6``, ``scale=3.0``), or an alias from
        :data:`OPTION_ALIASES`. ``None`` values are ignored. Switching ``layer`` or ``encoding`` resets that
        component's options to its defaults.

    Raises:
      ValueError: unknown preset, field or option, naming the valid ones.
    """
    if model is not None and model not in MODEL_PRESETS:
        raise ValueError(f"unknown model {model!r}; choose one of: {', '.join(sorted(MODEL_PRESETS))}")
    if model is None and base is None:
        model = "relu_pe"
    values = base.to_dict() if model is None else {"model": model, **MODEL_PRESETS[model]}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    field_names = {f.name for f in dataclasses.fields(ModelConfig)}
    for component in ("layer", "encoding"):
        if component in overrides and overrides[component] != values.get(component):
            values[f"{component}_options"] = {}
            if component == "layer":
                values["first_layer_options"] = {}
    values.update({k: v for k, v in overrides.items() if k in field_names})
    values = {k: dict(v) if isinstance(v, Mapping) else v for k, v in values.items()}
    layer_cls = LAYERS.get(values.get("layer", ModelConfig.layer))
    encoding_cls = ENCODINGS.get(values.get("encoding", ModelConfig.encoding))
    for key, value in overrides.items():
        if key in field_names:
            continue
        if key in OPTION_ALIASES:
            where, option = OPTION_ALIASES[key]
        elif key in component_options(layer_cls):
            where, option = "layer_options", key
        elif key in component_options(encoding_cls):
            where, option = "encoding_options", key
        else:
            raise ValueError(
                f"unknown model setting {key!r}; valid: fields {', '.join(sorted(field_names))}; options of layer "
                f"{values.get('layer')!r}: {', '.join(component_options(layer_cls)) or 'none'}; options of encoding "
                f"{values.get('encoding')!r}: {', '.join(component_options(encoding_cls)) or 'none'}")
        values.setdefault(where, {})[option] = value
        if key == "omega0" and where == "layer_options" and "omega0" in values.get("first_layer_options", {}):
            values["first_layer_options"]["omega0"] = value  # one omega0 for all layers unless first_omega0
    if "first_omega0" in overrides:
        values["first_layer_options"]["omega0"] = overrides["first_omega0"]
    return ModelConfig(**values).validate()


def build_model(config: ModelConfig) -> MLPINR:
    """Makes the Flax module described by ``config`` (validated first)."""
    config.validate()
    return MLPINR(
        width=config.width,
        depth=config.depth,
        out_dim=config.out_dim,
        layer=config.layer,
        layer_kwargs=dict(config.layer_options),
        first_layer_kwargs=dict(config.first_layer_options),
        encoding=config.encoding,
        encoding_kwargs=dict(config.encoding_options),
        output_activation=config.output_activation,
        output_offset=config.output_offset,
        dtype=resolve_dtype(config.dtype),
    )


def count_params(params: Any) -> int:
    """Total number of scalars in a parameter pytree."""
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
