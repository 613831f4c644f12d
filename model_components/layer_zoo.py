"""The INR layer zoo beyond ReLU and SIREN: the base class every zoo layer shares (:class:`ZooLayer`), the
bump-shaped "beyond periodicity" family (Gaussian, quadratic, multi-quadratic, Laplacian, super-Gaussian,
exp-sin), and the model presets of every zoo layer. WIRE's Gabor wavelets, FINER, HOSC/AdaHOSC and sinc are in
:mod:`model_components.wave_layers`; :mod:`model_components.catalog` registers both.

Every layer follows the contract of :class:`layers.SineLayer`: fields ``features``, the activation's
hyperparameters with the paper's defaults, ``learnable``, ``is_first``, ``dtype`` (and ``fast`` where a sine
or cosine is evaluated); the hyperparameters are read through :func:`layers.hyperparameter`, so they are
variables (``"constants"``, or ``"params"`` when learnable) that sweeps can ``vmap`` over;
``head_initializers`` says how the INR's final linear layer is initialised; ``check_options`` rejects bad
option values with a ``ValueError`` naming the option. Each layer also has a model preset of about
200k parameters (``model_config("gauss")``) with a learning rate checked on an image (:data:`PRESETS`).

The activations themselves are plain functions (:func:`gauss`, :func:`wave_layers.gabor_wavelet`, ...) so
hypernetworks and tests can apply them to any pre-activation.

Shapes: every layer maps ``(..., fan_in) -> (..., features)``; float32 out, except WIRE's complex64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from numbers import Real
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from model_components import initializers
from model_components.fast_math import fast_cos, fast_sin
from model_components.layers import FanInInit, Linear, hyperparameter

# ----------------------------------------------------------------------------------------------- activations


def sin_of(fast: bool) -> Callable[[jax.Array], jax.Array]:
    """The sine to use: :func:`fast_math.fast_sin` if ``fast`` else ``jnp.sin``."""
    return fast_sin if fast else jnp.sin


def cos_of(fast: bool) -> Callable[[jax.Array], jax.Array]:
    """The cosine to use: :func:`fast_math.fast_cos` if ``fast`` else ``jnp.cos``."""
    return fast_cos if fast else jnp.cos


def gauss(z: jax.Array, sigma: jax.Array | float) -> jax.Array:
    """Gaussian ``exp(-z^2 / (2 sigma^2))``, elementwise."""
    return jnp.exp(-jnp.square(z) / (2.0 * jnp.square(sigma)))


def quadratic(z: jax.Array, a: jax.Array | float) -> jax.Array:
    """Quadratic (Cauchy) bump ``1 / (1 + (a z)^2)``, elementwise."""
    return 1.0 / (1.0 + jnp.square(a * z))


def multiquadratic(z: jax.Array, a: jax.Array | float) -> jax.Array:
    """Inverse multi-quadratic ``1 / sqrt(1 + (a z)^2)``, elementwise."""
    return jax.lax.rsqrt(1.0 + jnp.square(a * z))


def laplacian(z: jax.Array, a: jax.Array | float) -> jax.Array:
    """Laplacian ``exp(-|z| / a)``, elementwise."""
    return jnp.exp(-jnp.abs(z) / a)


def supergaussian(z: jax.Array, a: jax.Array | float, b: jax.Array | float) -> jax.Array:
    """Super-Gaussian as written by Ramasinghe & Lucey (2022): ``[exp(-z^2 / (2 a^2))]^b``, evaluated as
    ``exp(-b z^2 / (2 a^2))`` (the same function, without a power of an underflowing exponential)."""
    return jnp.exp(-b * jnp.square(z) / (2.0 * jnp.square(a)))


def expsin(z: jax.Array, a: jax.Array | float, fast: bool = True) -> jax.Array:
    """``exp(-sin(a z))``, elementwise."""
    return jnp.exp(-sin_of(fast)(a * z))


# ----------------------------------------------------------------------------------------------- shared parts


def _check_number(options: Mapping[str, Any], name: str, default: float, layer: str, minimum: float = 0.0,
                  inclusive: bool = False) -> None:
    """Raises ``ValueError`` unless ``options[name]`` (default ``default``) is a finite number above
    ``minimum`` (or equal to it, if ``inclusive``); the message names ``layer`` and the option."""
    value = options.get(name, default)
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= minimum if inclusive else value > minimum)
    if not ok:
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        raise ValueError(f"layer {layer!r}: option {name} must be a finite number {bound}, got {value!r}")


class ZooLayer(nn.Module):
    """Base of the zoo layers: the shared fields, option checks from class-level lists, PyTorch-default head,
    hyperparameters as variables.

    Attributes (every zoo layer):
      features: output width.
      learnable: train the activation's hyperparameters (those in ``LEARNABLE``) with the weights, one
        scalar each per layer.
      is_first: whether this layer reads the (encoded) coordinates; only layers with a first-layer init
        (FINER, HOSC, WIRE) use it.
      dtype: compute dtype of the matrix product, see :class:`layers.Linear`.

    Class attributes:
      LAYER_NAME: the registry name (for error messages).
      HYPERPARAMETERS: activation hyperparameters, stored as variables by :func:`layers.hyperparameter`.
      LEARNABLE: those of them that ``learnable=True`` trains (default: all).
      POSITIVE: options that must be > 0; NON_NEGATIVE: options that must be >= 0.
      ACTIVATION: for layers that are ``ACTIVATION(x W + b, *hyperparameters[, fast])`` with PyTorch's default
        init (the default ``__call__``): the activation function.
    """

    features: int
    learnable: bool = False
    is_first: bool = False
    dtype: Any = None

    LAYER_NAME: ClassVar[str] = ""
    HYPERPARAMETERS: ClassVar[tuple[str, ...]] = ()
    LEARNABLE: ClassVar[tuple[str, ...] | None] = None
    POSITIVE: ClassVar[tuple[str, ...]] = ()
    NON_NEGATIVE: ClassVar[tuple[str, ...]] = ()
    ACTIVATION: ClassVar[Callable[..., jax.Array] | None] = None

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """Raises ``ValueError`` naming the first option whose value is out of range."""
        for name in cls.POSITIVE:
            _check_number(options, name, getattr(cls, name), cls.LAYER_NAME)
        for name in cls.NON_NEGATIVE:
            _check_number(options, name, getattr(cls, name), cls.LAYER_NAME, inclusive=True)

    @classmethod
    def learnable_names(cls) -> tuple[str, ...]:
        """Hyperparameters that ``learnable=True`` puts in ``"params"``."""
        return cls.HYPERPARAMETERS if cls.LEARNABLE is None else cls.LEARNABLE

    def head_initializers(self) -> tuple[FanInInit, FanInInit]:
        return initializers.torch_default_init, initializers.torch_default_init

    def _hp(self, name: str) -> jax.Array:
        """The hyperparameter ``name`` as a float32 variable (trainable if ``learnable`` and listed)."""
        learnable = bool(self.learnable) and name in self.learnable_names()
        return hyperparameter(self, name, getattr(self, name), learnable)

    def _siren_linear(self, x: jax.Array, omega0: float, bias_init: FanInInit | None = None) -> jax.Array:
        """``x W + b`` with SIREN's first-layer or hidden init for frequency ``omega0``."""
        if self.is_first:
            kernel_init = initializers.siren_first_layer_init
        else:
            kernel_init = lambda n: initializers.siren_hidden_init(n, omega0)  # noqa: E731
        return Linear(self.features, kernel_init=kernel_init,
                      bias_init=bias_init or initializers.torch_default_init, dtype=self.dtype)(x)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """``ACTIVATION(x W + b, *hyperparameters[, fast])``; layers with other structure override this."""
        z = Linear(self.features, dtype=self.dtype)(x)
        fast = {"fast": self.fast} if hasattr(self, "fast") else {}
        return type(self).ACTIVATION(z, *(self._hp(name) for name in self.HYPERPARAMETERS), **fast)


# ------------------------------------------------------------------------ "Beyond periodicity" family


class GaussLayer(ZooLayer):
    """Gaussian-activated layer (Ramasinghe & Lucey 2022, "Beyond Periodicity: Towards a Unifying Framework
    for Activations in Coordinate-MLPs", Table 1): ``exp(-z^2 / (2 sigma^2))`` with ``z = x W + b``.

    W and b use PyTorch's default U(-1/sqrt(n), 1/sqrt(n)) (no special init is needed for these
    activations), and so does the INR's head.

    Attributes (besides :class:`ZooLayer`'s):
      sigma: width of the Gaussian (the paper's ``a``); smaller is more local, i.e. higher frequencies.
        0.05 fits images best among the values we tried for coordinates in [-1, 1]. The Gauss baselines of
        the WIRE and FINER code write ``exp(-(s z)^2)``: s = 1 / (sigma sqrt(2)), so 0.05 is s = 14.1 (they
        use s = 10 to 30; README "Conventions", item 8).
      learnable: train sigma with the weights (one scalar per layer).

    Shapes: ``(..., fan_in) -> (..., features)`` float32, values in (0, 1].
    """

    sigma: float = 0.05

    LAYER_NAME = "gauss"
    HYPERPARAMETERS = ("sigma",)
    POSITIVE = ("sigma",)
    ACTIVATION = staticmethod(gauss)


class QuadraticLayer(ZooLayer):
    """Quadratic-activated layer (Ramasinghe & Lucey 2022, "Beyond Periodicity: Towards a Unifying Framework
    for Activations in Coordinate-MLPs", Table 1): ``1 / (1 + (a z)^2)`` with ``z = x W + b``.

    W and b: PyTorch default U(-1/sqrt(n), 1/sqrt(n)), as is the head.

    Attributes (besides :class:`ZooLayer`'s):
      a: sharpness (inverse width) of the bump.
      learnable: train a with the weights.

    Shapes: ``(..., fan_in) -> (..., features)`` float32, values in (0, 1].
    """

    a: float = 30.0

    LAYER_NAME = "quadratic"
    HYPERPARAMETERS = ("a",)
    POSITIVE = ("a",)
    ACTIVATION = staticmethod(quadratic)


class MultiQuadraticLayer(ZooLayer):
    """Multi-quadratic-activated layer (Ramasinghe & Lucey 2022, "Beyond Periodicity: Towards a Unifying
    Framework for Activations in Coordinate-MLPs", Table 1): ``1 / sqrt(1 + (a z)^2)`` with ``z = x W + b``.

    W and b: PyTorch default U(-1/sqrt(n), 1/sqrt(n)), as is the head.

    Attributes (besides :class:`ZooLayer`'s):
      a: sharpness (inverse width) of the bump.
      learnable: train a with the weights.

    Shapes: ``(..., fan_in) -> (..., features)`` float32, values in (0, 1].
    """

    a: float = 60.0

    LAYER_NAME = "multiquadratic"
    HYPERPARAMETERS = ("a",)
    POSITIVE = ("a",)
    ACTIVATION = staticmethod(multiquadratic)


class LaplacianLayer(ZooLayer):
    """Laplacian-activated layer (Ramasinghe & Lucey 2022, "Beyond Periodicity: Towards a Unifying Framework
    for Activations in Coordinate-MLPs", Table 1): ``exp(-|z| / a)`` with ``z = x W + b``.

    W and b: PyTorch default U(-1/sqrt(n), 1/sqrt(n)), as is the head. The kink at ``z = 0`` gets JAX's
    derivative of ``|z|`` there (0).

    Attributes (besides :class:`ZooLayer`'s):
      a: width of the peak.
      learnable: train a with the weights.

    Shapes: ``(..., fan_in) -> (..., features)`` float32, values in (0, 1].
    """

    a: float = 0.03

    LAYER_NAME = "laplacian"
    HYPERPARAMETERS = ("a",)
    POSITIVE = ("a",)
    ACTIVATION = staticmethod(laplacian)


class SuperGaussianLayer(ZooLayer):
    """Super-Gaussian-activated layer (Ramasinghe & Lucey 2022, "Beyond Periodicity: Towards a Unifying
    Framework for Activations in Coordinate-MLPs", Table 1): ``[exp(-z^2 / (2 a^2))]^b`` with ``z = x W + b``.

    As the paper writes it (and as common implementations compute it), this equals a Gaussian of width
    ``a / sqrt(b)``; a and b are kept separate (and separately learnable) to follow the paper.
    W and b: PyTorch default U(-1/sqrt(n), 1/sqrt(n)), as is the head.

    Attributes (besides :class:`ZooLayer`'s):
      a: width of the Gaussian before the power.
      b: power.
      learnable: train a and b with the weights.

    Shapes: ``(..., fan_in) -> (..., features)`` float32, values in (0, 1].
    """

    a: float = 0.05
    b: float = 2.0

    LAYER_NAME = "supergaussian"
    HYPERPARAMETERS = ("a", "b")
    POSITIVE = ("a", "b")
    ACTIVATION = staticmethod(supergaussian)


class ExpSinLayer(ZooLayer):
    """ExpSin-activated layer (Ramasinghe & Lucey 2022, "Beyond Periodicity: Towards a Unifying Framework
    for Activations in Coordinate-MLPs", Table 1): ``exp(-sin(a z))`` with ``z = x W + b``.

    W and b: PyTorch default U(-1/sqrt(n), 1/sqrt(n)), as is the head.

    Attributes (besides :class:`ZooLayer`'s):
      a: frequency of the inner sine.
      learnable: train a with the weights.
      fast: use :func:`fast_math.fast_sin` instead of ``jnp.sin``.

    Shapes: ``(..., fan_in) -> (..., features)`` float32, values in [1/e, e].
    """

    a: float = 5.0
    fast: bool = True

    LAYER_NAME = "expsin"
    HYPERPARAMETERS = ("a",)
    POSITIVE = ("a",)
    ACTIVATION = staticmethod(expsin)


# ----------------------------------------------------------------------------------------------- presets
# 1 + 3 hidden layers of 256 (WIRE: 1 + 2 of 222 complex features, see _WIRE_NOTE): about 199k parameters
# each. The activation options were checked on scikit-image's astronaut at 64x64 together with the learning
# rates of ``inr_utils.presets.TRAINING_PRESETS`` (where the check and its PSNRs are written down). Zero-centred
# activations get a linear head + 0.5 (like SIREN), positive bumps a sigmoid head (as in the "beyond
# periodicity" reference code).

_CENTRED = dict(output_activation="identity", output_offset=0.5)
_POSITIVE = dict(output_activation="sigmoid")
_PRESETS: dict[str, tuple[dict[str, Any], int, dict[str, Any]]] = {
    # name: (layer options, width, head)
    "gauss": ({"sigma": 0.05}, 256, _POSITIVE),
    "quadratic": ({"a": 30.0}, 256, _POSITIVE),
    "multiquadratic": ({"a": 60.0}, 256, _POSITIVE),
    "laplacian": ({"a": 0.03}, 256, _POSITIVE),
    "supergaussian": ({"a": 0.05, "b": 2.0}, 256, _POSITIVE),
    "expsin": ({"a": 5.0}, 256, _POSITIVE),
    "wire": ({"omega0": 10.0, "s0": 10.0}, 222, _CENTRED),  # see _WIRE_NOTE; 64x64 check: omega0 20: 73.2 dB
    "wire_real": ({"omega0": 20.0, "s0": 10.0}, 256, _CENTRED),
    "finer": ({"omega0": 30.0, "first_bias_scale": 1.0}, 256, _CENTRED),
    "hosc": ({"beta": 8.0, "omega0": 30.0}, 256, _CENTRED),
    "adahosc": ({"beta": 8.0, "omega0": 30.0}, 256, _CENTRED),
    "sinc": ({"omega": 30.0}, 256, _CENTRED),
}

# _WIRE_NOTE: WIRE is 1 + 2 hidden layers of 222 complex features (about 200k parameters, and the reference
# code's depth) with omega0 = 10: every extra Gabor layer makes its activations sparser (the envelope
# exp(-s0^2 |z|^2) is near 0 for |z| > 0.3), and with 1 + 3 x 181 (256 / sqrt(2)) and the paper's
# omega0 = 20 it fitted 64x64 images (73 dB) but stalled on 256x256 ones. Astronaut 256x256, batches of
# 4096, lr 1e-3, 200 steps: 1+3 x 181, omega0 20: 11.0 dB (lr 1e-4..5e-3 alike); 1+2 x 222, omega0 20:
# 14.7 dB; 1+3 x 181, omega0 10: 24.0 dB; 1+2 x 222, omega0 10: 27.7 dB.
_DEPTHS = {"wire": 2}

#: Model presets of the zoo layers (preset name -> ModelConfig fields); listed in
#: :data:`model_components.presets.MODEL_PRESETS`.
PRESETS: dict[str, dict[str, Any]] = {
    name: dict(encoding="none", layer=name, layer_options=dict(options), width=width,
               depth=_DEPTHS.get(name, 3), dtype="float32", **head)
    for name, (options, width, head) in _PRESETS.items()
}
