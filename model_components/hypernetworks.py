"""Hypernetworks: networks that map a signal (an image) to an INR in one forward pass; their contract, registry
and config.

The contract of a hypernetwork (every entry of :data:`HYPERNETWORKS` builds a Flax module that keeps it; see
:class:`HyperNetwork`):

    variables = hyper.init(key, images, coords)               # images (B, H, W, C) in [0, 1]; coords (P, d)
    values = hyper.apply(variables, images, coords)           # (B, P, C): image b's INR at the coords
    inr_vars = hyper.apply(variables, images, method="encode")  # image b's INR variables: leaves (B, ...)
    inr = hyper.inr()                                         # the INR module (keeps the INR contract)
    inr.apply(jax.tree.map(lambda v: v[b], inr_vars), coords)   # == values[b]; coords (..., d) any shape

* ``coords`` of ``__call__`` are shared by the batch, ``(P, d)``, or one set per image, ``(B, P, d)``; points of
  [-1, 1]^d in the grid convention of ``inr_utils.grids`` (so ``inr_utils.grids.grid((H, W))`` reshaped to
  ``(H*W, 2)`` reconstructs the images).
* ``encode`` emits, per image, the variables of the INR returned by ``inr()``: ``{"params": ..., ...}``, plain
  pytrees with a leading batch axis. ``inr()`` is an ordinary INR (``model_components.inrs`` contract), so
  rendering at any size, evaluation and every JAX transformation work on an encoded image exactly as on a fitted
  INR (``vmap`` over the batch axis). Weights shared by every image (a base network, a decoder) are part of
  each image's emitted variables.
* ``apply`` is pure and composes with ``jax.grad``, ``vmap`` and ``jit`` (with respect to the hypernetwork's
  params, the images and the coords).

:class:`HyperConfig` is frozen, JSON-serialisable plain data naming an architecture (a name in
:data:`HYPERNETWORKS`) plus its options (that architecture's options dataclass, with defaults and
``validate(config)`` / ``build(config)`` methods, like the INR architectures of :mod:`model_components.inrs`);
:func:`build_hypernetwork` makes the module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

import flax.linen as nn
import jax

from model_components.la_inr import LAINROptions
from model_components.options import check_value, field_types
from model_components.precision import DTYPES
from model_components.registry import Registry
from model_components.trans_inr import TransINROptions
from model_components.weight_hypernet import WeightHypernetOptions

__all__ = ["HYPERNETWORKS", "HyperConfig", "HyperNetwork", "build_hypernetwork", "hyper_config"]


class HyperNetwork(Protocol):
    """What every module built by :func:`build_hypernetwork` is (a Flax Linen module keeping this contract).

    ``init(key, images (B, H, W, C), coords (P, d)) -> variables``;
    ``apply(variables, images, coords (P, d) or (B, P, d)) -> values (B, P, C)`` float32;
    ``apply(variables, images, method="encode") -> INR variables with leaves (B, ...)``;
    ``inr() -> nn.Module``: the INR those variables are for (``apply(variables_b, coords (..., d)) -> (..., C)``).
    """

    def init(self, rngs: Any, images: jax.Array, coords: jax.Array) -> Any: ...

    def apply(self, variables: Any, *args: Any, **kwargs: Any) -> Any: ...

    def inr(self) -> nn.Module: ...


#: Architecture name -> its options dataclass (whose ``build`` makes the module). The explicit list.
HYPERNETWORKS: Registry[type] = Registry("hypernetwork", {
    "lainr": LAINROptions,
    "weights": WeightHypernetOptions,
    "transinr": TransINROptions,
})


def _option_names(options_cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(options_cls)]


@dataclasses.dataclass(frozen=True)
class HyperConfig:
    """Everything that defines a hypernetwork: an architecture, its options and the images it takes.

    Attributes:
      architecture: a name in :data:`HYPERNETWORKS`.
      options: that architecture's options dataclass.
      image_size: ``(H, W)`` of the input images in pixels.
      channels: C, channels of the images and of the INR's output (3 for RGB).
      dtype: compute dtype of matrix products (``float32``, ``bfloat16``); parameters are float32.
    """

    architecture: str
    options: Any
    image_size: tuple[int, int] = (32, 32)
    channels: int = 3
    dtype: str = "float32"

    def __getattr__(self, name: str) -> Any:  # an option's name reads as an attribute of the config
        options = self.__dict__.get("options")
        if not name.startswith("__") and dataclasses.is_dataclass(options) and name in _option_names(type(options)):
            return getattr(options, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def validate(self) -> HyperConfig:
        """Raises ``ValueError`` naming the bad field or option and the fix; returns self."""
        options_cls = HYPERNETWORKS.get(self.architecture)
        if not isinstance(self.options, options_cls):
            raise ValueError(f"options of hypernetwork {self.architecture!r} must be a {options_cls.__name__}, got "
                             f"{type(self.options).__name__}; build configs with hyper_config()")
        size = tuple(self.image_size)
        if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise ValueError(f"image_size must be two positive ints (height, width), got {self.image_size!r}")
        check_value(self.channels, int, "channels")
        if self.channels <= 0:
            raise ValueError(f"channels must be positive, got {self.channels}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; choose one of: {', '.join(DTYPES.names())}")
        for name, annotation in field_types(options_cls).items():
            check_value(getattr(self.options, name), annotation, name)
        self.options.validate(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready flat data: ``{"architecture", <the options' fields>, "image_size", "channels", "dtype"}``."""
        options = {name: (list(v) if isinstance(v := getattr(self.options, name), tuple) else
                          dict(v) if isinstance(v, Mapping) else v) for name in _option_names(type(self.options))}
        return {"architecture": self.architecture, **options, "image_size": list(self.image_size),
                "channels": self.channels, "dtype": self.dtype}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> HyperConfig:
        """Inverse of :meth:`to_dict` (missing options take their defaults)."""
        values = dict(values)
        return hyper_config(values.pop("architecture"), **values)


_COMMON = ("image_size", "channels", "dtype")


def hyper_config(architecture: str, **overrides: Any) -> HyperConfig:
    """A validated :class:`HyperConfig` of ``architecture`` with its default options and ``overrides``.

    Args:
      architecture: a name in :data:`HYPERNETWORKS`.
      **overrides: ``image_size``, ``channels``, ``dtype``, or option fields of the architecture; ``None`` values
        are ignored. Lists become tuples (JSON round trip).

    Raises:
      ValueError: unknown architecture or option (listing the valid ones), or a bad value.
    """
    options_cls = HYPERNETWORKS.get(architecture)
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v is not None}
    common = {k: overrides.pop(k) for k in _COMMON if k in overrides}
    if "image_size" in common:
        common["image_size"] = tuple(common["image_size"])
    unknown = sorted(set(overrides) - set(_option_names(options_cls)))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} of hypernetwork {architecture!r}; valid: "
                         f"{', '.join([*_COMMON, *_option_names(options_cls)])}")
    return HyperConfig(architecture=architecture, options=options_cls(**overrides), **common).validate()


def build_hypernetwork(config: HyperConfig) -> nn.Module:
    """Makes the Flax module described by ``config`` (validated first) via its architecture's options."""
    config.validate()
    return config.options.build(config)
