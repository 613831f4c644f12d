"""Whole INRs: the contract every model keeps, the registry of architectures, and the config that builds one.

The contract of an INR (every entry of :data:`MODELS` builds a Flax module that keeps it; see :class:`INR`):

    variables = model.init(key, coords)            # {"params": ..., "constants": ...}
    values = model.apply(variables, coords)        # coords (..., d) float -> values (..., c) float32

* ``coords`` are points of the signal's domain in [-1, 1]^d (the grid convention of ``inr_utils.grids``), with
  any number of leading axes, which are kept: ``d`` is 1 for audio, 2 for images, 3 for video or volumes.
* ``variables["params"]`` is what training updates; ``variables["constants"]`` (absent when there are none)
  is what travels with the model but is never trained (Fourier matrices, fixed omega0s). Both are plain
  pytrees of float arrays whose shapes do not depend on the coords' leading axes, so a hypernetwork can emit
  them (:mod:`model_components.templates`) and ``vmap`` can stack models along a leading model axis.
* ``apply`` is pure and composes with ``jax.grad``, ``jvp``, ``jacfwd``, ``jacrev``, ``hessian``, ``vmap`` and
  ``jit``, with respect to the coords and to the params.

:class:`ModelConfig` is frozen, JSON-serialisable plain data naming an architecture (a name in :data:`MODELS`)
plus its options (that architecture's options dataclass, e.g. :class:`~model_components.mlp.MLPOptions`);
:func:`build_model` makes the Flax module, so a saved config always rebuilds the same network.
:func:`model_config` starts from a preset (:data:`MODEL_PRESETS`) and applies flat overrides.

Adding an architecture: in one new module, write the Flax module and a frozen options dataclass with defaults
and ``validate(config)`` / ``build(config)`` methods (optionally ``route_overrides`` for flat names, see
:class:`ArchitectureOptions`); then list it in :data:`MODELS` below (and add presets to
:data:`~model_components.presets.MODEL_PRESETS` if wanted).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

import flax.linen as nn
import jax

from model_components.local_global import LocalGlobalOptions
from model_components.mlp import MLPOptions
from model_components.options import check_value, field_types
from model_components.precision import DTYPES
from model_components.presets import MODEL_PRESETS
from model_components.registry import Registry

__all__ = ["CONVENTIONS", "INR", "ArchitectureOptions", "MODELS", "ModelConfig", "build_model", "count_params",
           "model_config"]


class INR(Protocol):
    """What every model built by :func:`build_model` is (a Flax Linen module keeping this contract).

    ``init(key, coords (..., d)) -> variables`` with ``variables = {"params": ..., "constants": ...}``;
    ``apply(variables, coords (..., d)) -> values (..., c)``: float coords in [-1, 1]^d, any leading axes kept,
    float32 values; ``d = config.in_dim``, ``c = config.out_dim``.
    """

    def init(self, rngs: Any, coords: jax.Array) -> Any: ...

    def apply(self, variables: Any, coords: jax.Array) -> jax.Array: ...


class ArchitectureOptions(Protocol):
    """The options dataclass of an architecture in :data:`MODELS` (frozen, every field with a default and a type
    annotation, which :meth:`ModelConfig.validate` checks values against).

    Methods:
      validate(config): raises ``ValueError`` naming a bad option and the fix (field types are checked first).
      build(config): the Flax module (an :class:`INR`) for ``config`` (whose ``options`` is self); reads
        ``config.in_dim``, ``config.out_dim`` and ``config.dtype``.
      route_overrides(options, overrides) (classmethod, optional): applies flat keyword overrides of
        :func:`model_config` to a dict of option fields; without it only field names are accepted.
    """

    def validate(self, config: ModelConfig) -> None: ...

    def build(self, config: ModelConfig) -> nn.Module: ...


#: Architecture name -> its options dataclass (whose ``build`` makes the module). The explicit list of models.
MODELS: Registry[type] = Registry("architecture", {
    "mlp": MLPOptions,
    "local_global": LocalGlobalOptions,
})

#: ModelConfig fields shared by every architecture (everything else of a preset or override is an option).
COMMON_FIELDS = ("model", "architecture", "out_dim", "in_dim", "dtype")


def _option_names(options_cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(options_cls)]


def _options_dict(options: Any) -> dict[str, Any]:
    return {name: dict(v) if isinstance(v := getattr(options, name), Mapping) else v
            for name in _option_names(type(options))}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that defines an INR: an architecture and its options; ``build_model(config)`` makes the module.

    A config is plain data (JSON round-trips exactly, :meth:`to_dict` / :meth:`from_dict`). The options' fields
    also read as attributes of the config: ``config.width`` is ``config.options.width``.

    Attributes:
      model: name of the preset the config started from (:data:`MODEL_PRESETS`), or of the architecture when it
        started from the architecture's defaults; informational once built.
      architecture: a name in :data:`MODELS` (``mlp``).
      options: that architecture's options dataclass (``mlp``: :class:`~model_components.mlp.MLPOptions`:
        encoding, layer and their options, width, depth, output map).
      out_dim: signal channels c.
      in_dim: coordinate dimension d (1 audio, 2 images, 3 video/volumes).
      dtype: ``float32``, ``bfloat16`` or ``float16`` compute dtype of matrix products (parameters are always
        float32); ``auto`` picks bfloat16 where the hardware has native bfloat16 products (see ``precision``).
    """

    model: str = "relu_pe"
    architecture: str = "mlp"
    options: Any = dataclasses.field(default_factory=MLPOptions)
    out_dim: int = 3
    in_dim: int = 2
    dtype: str = "auto"

    def __getattr__(self, name: str) -> Any:  # only called when normal lookup fails: an option's name
        options = self.__dict__.get("options")
        if not name.startswith("__") and options is not None and dataclasses.is_dataclass(options) and \
                name in _option_names(type(options)):
            return getattr(options, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def validate(self) -> ModelConfig:
        """Raises ``ValueError`` naming the bad field or option, the expected type or the valid choices; returns
        self."""
        if self.model not in MODELS:
            MODEL_PRESETS.get(self.model)
        options_cls = MODELS.get(self.architecture)
        if not isinstance(self.options, options_cls):
            raise ValueError(f"options of architecture {self.architecture!r} must be a {options_cls.__name__}, got "
                             f"{type(self.options).__name__}; build configs with model_config()")
        clash = sorted(set(_option_names(options_cls)) & set(COMMON_FIELDS))
        if clash:
            raise ValueError(f"architecture {self.architecture!r} has options named like ModelConfig fields {clash}; "
                             "rename them")
        for name in ("out_dim", "in_dim"):
            check_value(getattr(self, name), int, name)
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.dtype != "auto" and self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; choose one of: auto, {', '.join(DTYPES.names())}")
        for name, annotation in field_types(options_cls).items():
            check_value(getattr(self.options, name), annotation, name)
        self.options.validate(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The config as flat JSON-ready data: ``{"model", "architecture", <the options' fields>, "out_dim",
        "in_dim", "dtype"}`` (an architecture's option names never clash with these fields). Configs saved before
        architectures were named are the same dict without ``architecture``."""
        return {"model": self.model, "architecture": self.architecture, **_options_dict(self.options),
                "out_dim": self.out_dim, "in_dim": self.in_dim, "dtype": self.dtype, "conventions": CONVENTIONS}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelConfig:
        """Builds a config from a dict such as :meth:`to_dict`'s, or a partial one: fields left out come
        from the preset named by ``values["model"]`` (default ``relu_pe``), and flat option names work as
        in :func:`model_config` (``{"model": "siren", "omega0": 20}``); the options may also come nested as
        ``{"options": {...}}`` (``dataclasses.asdict``'s form). Dicts of configs saved before architectures were
        named (no ``architecture``) load as ``mlp`` configs, and a preset renamed since loads under its new name
        (:data:`RENAMED_PRESETS`). Unknown keys raise ``ValueError`` listing the valid ones."""
        values = dict(values)
        conventions = values.pop("conventions", None)
        if conventions is not None and conventions != CONVENTIONS:
            raise ValueError(f"this model config was written with option conventions {conventions!r}; this version "
                             f"of flax-inr reads {CONVENTIONS} (and older configs, which have none): update flax-inr")
        if conventions is None and "encoding" in values and isinstance(values.get("encoding_options"), Mapping):
            values["encoding_options"] = _before_conventions(values["encoding"], values["encoding_options"])
        name = values.pop("model", "relu_pe")
        return model_config(RENAMED_PRESETS.get(name, name), **values)


#: Presets renamed since configs were first saved: old name -> the preset a saved config of it loads as (its
#: saved options rebuild the same network). ``lg_siren_concat`` became ``lg_siren`` when ``concat_and_fc``, the
#: reference code's join, became the Local-Global default (``fc_and_add`` is now ``lg_siren_add``).
RENAMED_PRESETS = {"lg_siren_concat": "lg_siren"}

#: The option conventions a saved config is written with (``"conventions"`` in :meth:`ModelConfig.to_dict`).
#: 2: NeRF positional encoding ``sin(2^k x)`` (was ``2^k pi``), Fourier-feature scales in cycles per side of the
#: domain (were per unit of the [-1, 1] coordinates, i.e. half), hash grid with tiny-cuda-nn's half-cell offset
#: (README, "Conventions"). A saved config with no such field was written before and is read with the options
#: that rebuild its network (:func:`_before_conventions`).
CONVENTIONS = 2


def _before_conventions(encoding: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The encoding options of a config saved before :data:`CONVENTIONS`, in today's terms (the same network)."""
    options = dict(options)
    if encoding == "nerf":
        options.setdefault("pi", True)
    elif encoding == "fourier":
        options["scale"] = 2.0 * options.get("scale", 10.0)
    elif encoding == "multiscale_fourier":
        options["scales"] = [2.0 * s for s in options.get("scales", (1.0, 10.0))]
    elif encoding == "hashgrid":
        options.setdefault("half_cell_offset", False)
    return options


def _route_by_field_name(options_cls: type, options: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    names = _option_names(options_cls)
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"unknown model setting(s) {unknown}; valid: fields {', '.join(COMMON_FIELDS[1:])} and the "
                         f"options {', '.join(names)}")
    return {**options, **overrides}


def model_config(model: str | None = None, base: ModelConfig | None = None, **overrides: Any) -> ModelConfig:
    """A validated :class:`ModelConfig` from a preset (or ``base``) and flat overrides.

    Args:
      model: preset name in :data:`MODEL_PRESETS`, or an architecture name in :data:`MODELS` (its default
        options); ``None`` keeps ``base`` (without base: the ``architecture`` override's defaults, or ``relu_pe``).
      base: config to modify instead of the preset's defaults.
      **overrides: ModelConfig fields (``in_dim=3``, ``dtype="float32"``, ``architecture=...``), option fields
        of the architecture (``width=128``, ``layer="gauss"``), an ``options`` dict of them, or what the
        architecture's ``route_overrides`` accepts (MLP: options of the chosen layer or encoding by name,
        ``omega0=20``, ``num_frequencies=6``, ``scale=3.0``, or an alias from
        :data:`model_components.mlp.OPTION_ALIASES`). ``None`` values are ignored. Switching the architecture
        resets its options to the defaults; switching the MLP's ``layer`` or ``encoding`` resets that
        component's options.

    Raises:
      ValueError: unknown preset, field or option, or a value of the wrong type, naming the valid ones.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if model is None and base is None:
        model = overrides.get("architecture", "relu_pe")
    if model is not None:
        # a preset, or an architecture's name for its default options (an architecture without presets)
        fields = {"architecture": model} if model not in MODEL_PRESETS and model in MODELS else \
            dict(MODEL_PRESETS.get(model))
        common = {"model": model, **{k: fields.pop(k) for k in COMMON_FIELDS if k in fields}}
        options = fields
    else:
        common = {k: getattr(base, k) for k in COMMON_FIELDS}
        options = _options_dict(base.options)
    architecture = overrides.pop("architecture", common.get("architecture", "mlp"))
    options_cls = MODELS.get(architecture)
    if architecture != common.get("architecture", "mlp"):
        options = {}
    common["architecture"] = architecture
    common.update({k: overrides.pop(k) for k in COMMON_FIELDS[2:] if k in overrides})
    nested = overrides.pop("options", None)
    if nested is not None:
        if not isinstance(nested, Mapping):
            raise ValueError(f"options must be a mapping of the {architecture} architecture's options, got {nested!r}")
        unknown = sorted(set(nested) - set(_option_names(options_cls)))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} of architecture {architecture!r}; valid options: "
                             f"{', '.join(_option_names(options_cls))}")
        overrides = {**nested, **overrides}
    route = getattr(options_cls, "route_overrides", None)
    options = route(options, overrides) if route else _route_by_field_name(options_cls, options, overrides)
    unknown = sorted(set(options) - set(_option_names(options_cls)))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} of architecture {architecture!r}; valid options: "
                         f"{', '.join(_option_names(options_cls))}")
    return ModelConfig(**common, options=options_cls(**options)).validate()


def build_model(config: ModelConfig) -> nn.Module:
    """Makes the Flax module described by ``config`` (validated first) via its architecture in :data:`MODELS`."""
    config.validate()
    return config.options.build(config)


def count_params(params: Any) -> int:
    """Total number of scalars in a parameter pytree."""
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
