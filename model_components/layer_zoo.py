"""The INR layer zoo beyond ReLU and SIREN: Gaussian and other "beyond periodicity" activations, WIRE's Gabor
wavelets, FINER, HOSC/AdaHOSC and sinc.

Every layer follows the contract of :class:`layers.SineLayer`: fields ``features``, the activation's
hyperparameters with the paper's defaults, ``learnable``, ``is_first``, ``dtype`` (and ``fast`` where a sine
or cosine is evaluated); the hyperparameters are read through :func:`layers.hyperparameter`, so they are
variables (``"constants"``, or ``"params"`` when learnable) that sweeps can ``vmap`` over;
``head_initializers`` says how the INR's final linear layer is initialised; ``check_options`` rejects bad
option values with a ``ValueError`` naming the option. Each layer also registers a model preset of about
200k parameters (``model_config("gauss")``) with a learning rate checked on an image.

The activations themselves are plain functions (:func:`gauss`, :func:`gabor_wavelet`, ...) so hypernetworks
and tests can apply them to any pre-activation.

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
from model_components.layers import FanInInit, Linear, hyperparameter, mixed_precision_matmul

# ----------------------------------------------------------------------------------------------- activations


def _sin(fast: bool) -> Callable[[jax.Array], jax.Array]:
    return fast_sin if fast else jnp.sin


def _cos(fast: bool) -> Callable[[jax.Array], jax.Array]:
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
    return jnp.exp(-_sin(fast)(a * z))


def finer(z: jax.Array, omega0: jax.Array | float, fast: bool = True, scale_grad: bool = True) -> jax.Array:
    """FINER's variable-periodic sine ``sin(omega0 (|z| + 1) z)``, elementwise.

    With ``scale_grad=False`` the factor ``|z| + 1`` is a constant for differentiation (as in the FINER
    reference code's default), so the derivative is ``omega0 (|z| + 1) cos(.)`` instead of
    ``omega0 (2 |z| + 1) cos(.)``; the values are the same.
    """
    scale = jnp.abs(z) + 1.0
    if not scale_grad:
        scale = jax.lax.stop_gradient(scale)
    return _sin(fast)(omega0 * scale * z)


def hosc(z: jax.Array, beta: jax.Array | float, omega0: jax.Array | float = 1.0, fast: bool = True) -> jax.Array:
    """HOSC ``tanh(beta sin(omega0 z))``, elementwise."""
    return jnp.tanh(beta * _sin(fast)(omega0 * z))


#: |omega z| below which :func:`sinc` uses its Taylor polynomial (see there).
_SINC_TAYLOR_BELOW = 0.5


def sinc(z: jax.Array, omega: jax.Array | float, fast: bool = True) -> jax.Array:
    """``sin(omega z) / (omega z)`` with its limit 1 at ``z = 0``, elementwise.

    For ``|u| = |omega z| < 0.5`` the Taylor polynomial ``1 - u^2/6 + u^4/120 - u^6/5040 + u^8/362880`` is
    used (truncation error below 3e-11): the quotient has a 0/0 at ``u = 0``, and its autodiff derivatives
    lose digits near it (the second derivative sums terms of size 2/u^2 that cancel to -1/3, which in float32
    is wrong by ~10% at |u| = 1e-3), whereas the polynomial's value and derivatives of every order are
    accurate there; the quotient's derivatives are accurate beyond 0.5.
    """
    u = omega * z
    small = jnp.abs(u) < _SINC_TAYLOR_BELOW
    safe = jnp.where(small, 1.0, u)
    u2 = jnp.square(jnp.where(small, u, 0.0))
    taylor = 1.0 + u2 * (-1.0 / 6.0 + u2 * (1.0 / 120.0 + u2 * (-1.0 / 5040.0 + u2 * (1.0 / 362880.0))))
    return jnp.where(small, taylor, _sin(fast)(safe) / safe)


def real_gabor_wavelet(z: jax.Array, omega0: jax.Array | float, s0: jax.Array | float,
                       fast: bool = True) -> jax.Array:
    """Real Gabor wavelet ``cos(omega0 z) exp(-(s0 z)^2)``, elementwise."""
    return _cos(fast)(omega0 * z) * jnp.exp(-jnp.square(s0 * z))


def gabor_wavelet(re: jax.Array, im: jax.Array | None, omega0: jax.Array | float, s0: jax.Array | float,
                  fast: bool = True) -> jax.Array:
    """WIRE's complex Gabor wavelet ``exp(i omega0 z) exp(-|s0 z|^2)`` of ``z = re + i im``, elementwise.

    Written out, ``exp(-omega0 im - s0^2 (re^2 + im^2)) (cos(omega0 re) + i sin(omega0 re))``: one real
    exponential and one sine/cosine pair (``im=None`` means a real z).

    Returns:
      complex64 array (complex128 for float64 input) of ``re``'s shape.
    """
    if im is None:
        log_amplitude = -jnp.square(s0 * re)
    else:
        log_amplitude = -omega0 * im - jnp.square(s0) * (jnp.square(re) + jnp.square(im))
    amplitude = jnp.exp(log_amplitude)
    phase = omega0 * re
    return jax.lax.complex(amplitude * _cos(fast)(phase), amplitude * _sin(fast)(phase))


# ----------------------------------------------------------------------------------------------- shared parts


def _check_number(options: Mapping[str, Any], name: str, default: float, layer: str, minimum: float = 0.0,
                  inclusive: bool = False) -> None:
    value = options.get(name, default)
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= minimum if inclusive else value > minimum)
    if not ok:
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        raise ValueError(f"layer {layer!r}: option {name} must be a finite number {bound}, got {value!r}")


class _ZooLayer(nn.Module):
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


class GaussLayer(_ZooLayer):
    """Gaussian-activated layer (Ramasinghe & Lucey 2022, "Beyond Periodicity: Towards a Unifying Framework
    for Activations in Coordinate-MLPs", Table 1): ``exp(-z^2 / (2 sigma^2))`` with ``z = x W + b``.

    W and b use PyTorch's default U(-1/sqrt(n), 1/sqrt(n)) (no special init is needed for these
    activations), and so does the INR's head.

    Attributes (besides :class:`_ZooLayer`'s):
      sigma: width of the Gaussian (the paper's ``a``); smaller is more local, i.e. higher frequencies.
        0.05 fits images best among the values we tried for coordinates in [-1, 1].
      learnable: train sigma with the weights (one scalar per layer).

    Shapes: ``(..., fan_in) -> (..., features)`` float32, values in (0, 1].
    """

    sigma: float = 0.05

    LAYER_NAME = "gauss"
    HYPERPARAMETERS = ("sigma",)
    POSITIVE = ("sigma",)
    ACTIVATION = staticmethod(gauss)


class QuadraticLayer(_ZooLayer):
    """Quadratic-activated layer (Ramasinghe & Lucey 2022, "Beyond Periodicity: Towards a Unifying Framework
    for Activations in Coordinate-MLPs", Table 1): ``1 / (1 + (a z)^2)`` with ``z = x W + b``.

    W and b: PyTorch default U(-1/sqrt(n), 1/sqrt(n)), as is the head.

    Attributes (besides :class:`_ZooLayer`'s):
      a: sharpness (inverse width) of the bump.
      learnable: train a with the weights.

    Shapes: ``(..., fan_in) -> (..., features)`` float32, values in (0, 1].
    """

    a: float = 30.0

    LAYER_NAME = "quadratic"
    HYPERPARAMETERS = ("a",)
    POSITIVE = ("a",)
    ACTIVATION = staticmethod(quadratic)


class MultiQuadraticLayer(_ZooLayer):
    """Multi-quadratic-activated layer (Ramasinghe & Lucey 2022, "Beyond Periodicity: Towards a Unifying
    Framework for Activations in Coordinate-MLPs", Table 1): ``1 / sqrt(1 + (a z)^2)`` with ``z = x W + b``.

    W and b: PyTorch default U(-1/sqrt(n), 1/sqrt(n)), as is the head.

    Attributes (besides :class:`_ZooLayer`'s):
      a: sharpness (inverse width) of the bump.
      learnable: train a with the weights.

    Shapes: ``(..., fan_in) -> (..., features)`` float32, values in (0, 1].
    """

    a: float = 60.0

    LAYER_NAME = "multiquadratic"
    HYPERPARAMETERS = ("a",)
    POSITIVE = ("a",)
    ACTIVATION = staticmethod(multiquadratic)


class LaplacianLayer(_ZooLayer):
    """Laplacian-activated layer (Ramasinghe & Lucey 2022, "Beyond Periodicity: Towards a Unifying Framework
    for Activations in Coordinate-MLPs", Table 1): ``exp(-|z| / a)`` with ``z = x W + b``.

    W and b: PyTorch default U(-1/sqrt(n), 1/sqrt(n)), as is the head. The kink at ``z = 0`` gets JAX's
    derivative of ``|z|`` there (0).

    Attributes (besides :class:`_ZooLayer`'s):
      a: width of the peak.
      learnable: train a with the weights.

    Shapes: ``(..., fan_in) -> (..., features)`` float32, values in (0, 1].
    """

    a: float = 0.03

    LAYER_NAME = "laplacian"
    HYPERPARAMETERS = ("a",)
    POSITIVE = ("a",)
    ACTIVATION = staticmethod(laplacian)


class SuperGaussianLayer(_ZooLayer):
    """Super-Gaussian-activated layer (Ramasinghe & Lucey 2022, "Beyond Periodicity: Towards a Unifying
    Framework for Activations in Coordinate-MLPs", Table 1): ``[exp(-z^2 / (2 a^2))]^b`` with ``z = x W + b``.

    As the paper writes it (and as common implementations compute it), this equals a Gaussian of width
    ``a / sqrt(b)``; a and b are kept separate (and separately learnable) to follow the paper.
    W and b: PyTorch default U(-1/sqrt(n), 1/sqrt(n)), as is the head.

    Attributes (besides :class:`_ZooLayer`'s):
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


class ExpSinLayer(_ZooLayer):
    """ExpSin-activated layer (Ramasinghe & Lucey 2022, "Beyond Periodicity: Towards a Unifying Framework
    for Activations in Coordinate-MLPs", Table 1): ``exp(-sin(a z))`` with ``z = x W + b``.

    W and b: PyTorch default U(-1/sqrt(n), 1/sqrt(n)), as is the head.

    Attributes (besides :class:`_ZooLayer`'s):
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


# ----------------------------------------------------------------------------------------------- WIRE


class ComplexLinear(nn.Module):
    """Complex affine map ``y = x W + b`` with W, b stored as real float32 parts.

    The real and imaginary parts are separate params (``kernel_re``, ``kernel_im``, ``bias_re``,
    ``bias_im``), so optimizers, checkpoints and hypernetworks only ever see real arrays. The product runs as
    one real matrix product ``[Re x, Im x] @ [[Re W, Im W], [-Im W, Re W]]`` (for a real x: ``x @ [Re W,
    Im W]``), in ``dtype`` like :class:`layers.Linear`.

    Attributes:
      features: output width.
      kernel_init: fan_in -> initializer of each part of W, shape ``(fan_in, features)``.
      bias_init: fan_in -> initializer of each part of b, shape ``(features,)``.
      dtype: compute dtype of the matrix product (``None``: float32).

    Shapes: ``(..., fan_in)`` real or complex -> ``(..., features)`` complex64.
    """

    features: int
    kernel_init: FanInInit = initializers.torch_default_init
    bias_init: FanInInit = initializers.torch_default_init
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in, m = x.shape[-1], self.features
        kernel_re = self.param("kernel_re", self.kernel_init(fan_in), (fan_in, m), jnp.float32)
        kernel_im = self.param("kernel_im", self.kernel_init(fan_in), (fan_in, m), jnp.float32)
        bias_re = self.param("bias_re", self.bias_init(fan_in), (m,), jnp.float32)
        bias_im = self.param("bias_im", self.bias_init(fan_in), (m,), jnp.float32)
        top = jnp.concatenate([kernel_re, kernel_im], axis=1)  # (n, 2m): multiplies Re x
        if jnp.iscomplexobj(x):
            bottom = jnp.concatenate([-kernel_im, kernel_re], axis=1)  # multiplies Im x
            inputs, kernel = jnp.concatenate([x.real, x.imag], axis=-1), jnp.concatenate([top, bottom], axis=0)
        else:
            inputs, kernel = x.astype(jnp.promote_types(x.dtype, jnp.float32)), top
        if self.dtype is None or jnp.dtype(self.dtype) == jnp.float32:
            y = jnp.dot(inputs, kernel)
        else:
            y = mixed_precision_matmul(inputs, kernel, jnp.dtype(self.dtype))
        return jax.lax.complex(y[..., :m] + bias_re, y[..., m:] + bias_im)


class WireLayer(_ZooLayer):
    """WIRE layer (Saragadam et al. 2023, "WIRE: Wavelet Implicit Neural Representations"): complex
    Gabor wavelet ``exp(i omega0 z) exp(-|s0 z|^2)`` of ``z = x W + b``.

    The first layer has real W, b on the real coordinates; later layers have complex W, b (stored as real
    and imaginary float32 params, see :class:`ComplexLinear`) acting on the previous layer's complex output.
    All parts follow the reference code's PyTorch-default init U(-1/sqrt(n), 1/sqrt(n)) (real and imaginary
    parts drawn independently). The INR head reads ``[Re h, Im h]`` with a real layer, which equals the
    reference's ``Re(W_out h + b_out)`` with complex W_out; :func:`initializers.wire_head_init` matches its
    init. The reference divides the hidden width by sqrt(2) to keep the parameter count of a real network
    of the same width; the ``wire`` preset (1 + 2 layers of 222) explains its choice in ``_WIRE_NOTE``.

    Attributes (besides :class:`_ZooLayer`'s):
      features: output width (complex features).
      omega0: frequency of the wavelet's carrier (20 in the reference code, first and later layers).
      s0: inverse width of its Gaussian envelope (10 in the reference code).
      learnable: train omega0 and s0 with the weights (one scalar each per layer).
      is_first: real weights on real inputs (the coordinates).
      fast: use :func:`fast_math.fast_sin` / ``fast_cos`` instead of ``jnp.sin`` / ``jnp.cos``.

    Shapes: ``(..., fan_in)`` real (first layer) or complex -> ``(..., features)`` complex64.
    """

    omega0: float = 20.0
    s0: float = 10.0
    fast: bool = True

    LAYER_NAME = "wire"
    HYPERPARAMETERS = ("omega0", "s0")
    POSITIVE = ("omega0", "s0")

    def head_initializers(self) -> tuple[FanInInit, FanInInit]:
        return initializers.wire_head_init, initializers.wire_head_init

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        omega0, s0 = self._hp("omega0"), self._hp("s0")
        if self.is_first and not jnp.iscomplexobj(x):
            z = Linear(self.features, dtype=self.dtype)(x)
            return gabor_wavelet(z, None, omega0, s0, self.fast)
        z = ComplexLinear(self.features, dtype=self.dtype)(x)
        return gabor_wavelet(z.real, z.imag, omega0, s0, self.fast)


class RealWireLayer(_ZooLayer):
    """Real Gabor wavelet layer (Saragadam et al. 2023, "WIRE: Wavelet Implicit Neural Representations"):
    ``cos(omega0 z) exp(-(s0 z)^2)`` with ``z = x W + b`` real.

    W and b: PyTorch default U(-1/sqrt(n), 1/sqrt(n)), as is the head. (The WIRE reference code's real
    variant feeds the cosine and the envelope from two separate linear maps; this layer uses the one
    pre-activation of the formula.)

    Attributes (besides :class:`_ZooLayer`'s):
      omega0: frequency of the carrier.
      s0: inverse width of the Gaussian envelope.
      learnable: train omega0 and s0 with the weights.
      fast: use :func:`fast_math.fast_cos` instead of ``jnp.cos``.

    Shapes: ``(..., fan_in) -> (..., features)`` float32, values in [-1, 1].
    """

    omega0: float = 20.0
    s0: float = 10.0
    fast: bool = True

    LAYER_NAME = "wire_real"
    HYPERPARAMETERS = ("omega0", "s0")
    POSITIVE = ("omega0", "s0")
    ACTIVATION = staticmethod(real_gabor_wavelet)


# ------------------------------------------------------------------------------- sine-like: FINER, HOSC, sinc


class FinerLayer(_ZooLayer):
    """FINER layer (Liu et al. 2024, "FINER: Flexible spectral-bias tuning in Implicit NEural Representation
    by Variable-periodic Activation Functions"): ``sin(omega0 (|z| + 1) z)`` with ``z = x W + b``.

    W follows SIREN (:func:`initializers.siren_first_layer_init` first, :func:`initializers.siren_hidden_init`
    after); the first layer's bias is U(-k, k) with k = ``first_bias_scale``
    (:func:`initializers.finer_first_bias_init`), a large k giving the network a wide initial spectrum;
    later biases use SIREN's U(-1/sqrt(n), 1/sqrt(n)). The head uses SIREN's hidden init.

    Attributes (besides :class:`_ZooLayer`'s):
      omega0: frequency factor (30 as in SIREN).
      first_bias_scale: k of the first layer's bias init. k = 1 fitted better than k = 20 in our check
        (64x64 astronaut, 300 steps: 133 dB against 80 dB); larger k suits signals with more high frequencies.
      scale_grad: differentiate through the ``|z| + 1`` factor; ``False`` treats it as a constant in the
        backward pass, as the FINER reference code does by default (``scale_req_grad=False``).
      learnable: train omega0 with the weights.
      fast: use :func:`fast_math.fast_sin` instead of ``jnp.sin``.

    Shapes: ``(..., fan_in) -> (..., features)`` float32, values in [-1, 1].
    """

    omega0: float = 30.0
    first_bias_scale: float = 1.0
    scale_grad: bool = False
    fast: bool = True

    LAYER_NAME = "finer"
    HYPERPARAMETERS = ("omega0",)
    POSITIVE = ("omega0",)
    NON_NEGATIVE = ("first_bias_scale",)

    def head_initializers(self) -> tuple[FanInInit, FanInInit]:
        return (lambda n: initializers.siren_hidden_init(n, self.omega0)), initializers.torch_default_init

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        bias_init = None
        if self.is_first:
            bias_init = lambda n: initializers.finer_first_bias_init(self.first_bias_scale)  # noqa: E731
        z = self._siren_linear(x, self.omega0, bias_init)
        return finer(z, self._hp("omega0"), self.fast, self.scale_grad)


class HoscLayer(_ZooLayer):
    """HOSC layer (Serrano et al. 2024, "HOSC: A Periodic Activation Function for Preserving Sharp Features
    in Implicit Neural Representations"): ``tanh(beta sin(omega0 z))`` with ``z = x W + b``.

    The 2024 paper writes ``tanh(beta sin(x))``; here SIREN's frequency factor omega0 is explicit (as in the
    authors' later form ``tanh(beta sin(omega0 x))``) and W follows SIREN's init for it
    (:func:`initializers.siren_first_layer_init`, :func:`initializers.siren_hidden_init`), b the PyTorch
    default; the head uses SIREN's hidden init. A large beta makes the activation close to a square wave,
    which keeps sharp edges sharp.

    Attributes (besides :class:`_ZooLayer`'s):
      beta: sharpness of the saturated sine.
      omega0: SIREN frequency factor (always a constant, even when ``learnable``).
      learnable: train beta with the weights (AdaHOSC, see :class:`AdaHoscLayer`).
      fast: use :func:`fast_math.fast_sin` instead of ``jnp.sin``.

    Shapes: ``(..., fan_in) -> (..., features)`` float32, values in (-1, 1).
    """

    beta: float = 8.0
    omega0: float = 30.0
    fast: bool = True

    LAYER_NAME = "hosc"
    HYPERPARAMETERS = ("beta", "omega0")
    LEARNABLE = ("beta",)
    POSITIVE = ("beta", "omega0")

    def head_initializers(self) -> tuple[FanInInit, FanInInit]:
        return (lambda n: initializers.siren_hidden_init(n, self.omega0)), initializers.torch_default_init

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        z = self._siren_linear(x, self.omega0)
        return hosc(z, self._hp("beta"), self._hp("omega0"), self.fast)


class AdaHoscLayer(HoscLayer):
    """AdaHOSC layer (Serrano et al. 2024, "HOSC: A Periodic Activation Function for Preserving Sharp
    Features in Implicit Neural Representations"): :class:`HoscLayer`, ``tanh(beta sin(omega0 z))``, with
    beta learnable per layer by default.

    Shapes: ``(..., fan_in) -> (..., features)`` float32.
    """

    learnable: bool = True

    LAYER_NAME = "adahosc"


class SincLayer(_ZooLayer):
    """Sinc-activated layer (Saratchandran et al. 2024, "A sampling theory perspective on activations for
    implicit neural representations"): ``sinc(omega z) = sin(omega z) / (omega z)`` (1 at 0) with
    ``z = x W + b``.

    W, b and the head use PyTorch's default U(-1/sqrt(n), 1/sqrt(n)), like the Gaussian-type layers of the
    same group's "beyond periodicity" work. (SIREN's init with omega in place of omega0 fitted far worse in
    our check: 27 dB against 81 dB on the 64x64 astronaut, 300 steps.)

    Attributes (besides :class:`_ZooLayer`'s):
      omega: bandwidth factor of the sinc.
      learnable: train omega with the weights.
      fast: use :func:`fast_math.fast_sin` instead of ``jnp.sin``.

    Shapes: ``(..., fan_in) -> (..., features)`` float32, values in [-0.22, 1].
    """

    omega: float = 30.0
    fast: bool = True

    LAYER_NAME = "sinc"
    HYPERPARAMETERS = ("omega",)
    POSITIVE = ("omega",)
    ACTIVATION = staticmethod(sinc)


#: Registered zoo layer names -> classes (the names their presets also carry).
ZOO_LAYERS: dict[str, type[nn.Module]] = {
    cls.LAYER_NAME: cls for cls in (GaussLayer, QuadraticLayer, MultiQuadraticLayer, LaplacianLayer,
                                    SuperGaussianLayer, ExpSinLayer, WireLayer, RealWireLayer, FinerLayer,
                                    HoscLayer, AdaHoscLayer, SincLayer)
}

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
