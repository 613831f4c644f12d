"""Oscillating layers of the INR zoo: WIRE's Gabor wavelets, FINER, HOSC/AdaHOSC and sinc.

Each is a :class:`model_components.layer_zoo.ZooLayer` (the contract, option checks and hyperparameters as
variables are described there); their model presets are in :data:`model_components.layer_zoo.PRESETS`, and
:mod:`model_components.catalog` registers them. The activations are plain functions (:func:`gabor_wavelet`,
:func:`finer`, ...) so hypernetworks and tests can apply them to any pre-activation.

Shapes: every layer maps ``(..., fan_in) -> (..., features)``; float32 out, except WIRE's complex64.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from model_components import initializers
from model_components.layer_zoo import ZooLayer, _check_number, cos_of, sin_of
from model_components.layers import FanInInit, Linear, mixed_precision_matmul

# ----------------------------------------------------------------------------------------------- activations


def finer(z: jax.Array, omega0: jax.Array | float, fast: bool = True, scale_grad: bool = True) -> jax.Array:
    """FINER's variable-periodic sine ``sin(omega0 (|z| + 1) z)``, elementwise.

    With ``scale_grad=False`` the factor ``|z| + 1`` is a constant for differentiation (as in the FINER
    reference code's default), so the derivative is ``omega0 (|z| + 1) cos(.)`` instead of
    ``omega0 (2 |z| + 1) cos(.)``; the values are the same.
    """
    scale = jnp.abs(z) + 1.0
    if not scale_grad:
        scale = jax.lax.stop_gradient(scale)
    return sin_of(fast)(omega0 * scale * z)


def hosc(z: jax.Array, beta: jax.Array | float, omega0: jax.Array | float = 1.0, fast: bool = True) -> jax.Array:
    """HOSC ``tanh(beta sin(omega0 z))``, elementwise."""
    return jnp.tanh(beta * sin_of(fast)(omega0 * z))


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
    return jnp.where(small, taylor, sin_of(fast)(safe) / safe)


def real_gabor_wavelet(z: jax.Array, omega0: jax.Array | float, s0: jax.Array | float,
                       fast: bool = True) -> jax.Array:
    """Real Gabor wavelet ``cos(omega0 z) exp(-(s0 z)^2)``, elementwise."""
    return cos_of(fast)(omega0 * z) * jnp.exp(-jnp.square(s0 * z))


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
    return jax.lax.complex(amplitude * cos_of(fast)(phase), amplitude * sin_of(fast)(phase))


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


class WireLayer(ZooLayer):
    """WIRE layer (Saragadam et al. 2023, "WIRE: Wavelet Implicit Neural Representations"): complex
    Gabor wavelet ``exp(i omega0 z) exp(-|s0 z|^2)`` of ``z = x W + b``.

    The first layer has real W, b on the real coordinates; later layers have complex W, b (stored as real
    and imaginary float32 params, see :class:`ComplexLinear`) acting on the previous layer's complex output.
    All parts follow the reference code's PyTorch-default init U(-1/sqrt(n), 1/sqrt(n)) (real and imaginary
    parts drawn independently). The INR head reads ``[Re h, Im h]`` with a real layer, which equals the
    reference's ``Re(W_out h + b_out)`` with complex W_out; :func:`initializers.wire_head_init` matches its
    init. The reference divides the hidden width by sqrt(2) to keep the parameter count of a real network
    of the same width; the ``wire`` preset (1 + 2 layers of 222) explains its choice in ``layer_zoo._WIRE_NOTE``.

    Attributes (besides :class:`ZooLayer`'s):
      features: output width (complex features).
      omega0: frequency of the wavelet's carrier (20, WIRE's suggestion for image representation).
      s0: inverse width of its Gaussian envelope: 30, WIRE's suggestion for images (README "Conventions",
        item 5: FINER's WIRE baseline uses 10, which fitted far worse in our check).
      learnable: train omega0 and s0 with the weights (one scalar each per layer).
      is_first: real weights on real inputs (the coordinates).
      fast: use :func:`fast_math.fast_sin` / ``fast_cos`` instead of ``jnp.sin`` / ``jnp.cos``.

    Shapes: ``(..., fan_in)`` real (first layer) or complex -> ``(..., features)`` complex64.
    """

    omega0: float = 20.0
    s0: float = 30.0
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


class RealWireLayer(ZooLayer):
    """Real Gabor wavelet layer (Saragadam et al. 2023, "WIRE: Wavelet Implicit Neural Representations"):
    ``cos(omega0 z) exp(-(s0 z)^2)`` with ``z = x W + b`` real, or, with ``two_maps=True``, the WIRE reference
    code's ``RealGaborLayer``: ``cos(omega0 (x W_f + b_f)) exp(-(s0 (x W_s + b_s))^2)``, the carrier and the
    envelope fed by two separate linear maps (twice the parameters of a layer).

    W and b: PyTorch default U(-1/sqrt(n), 1/sqrt(n)), as is the head. The default keeps the one
    pre-activation of the paper's formula (README "Conventions", item 5, has the measured difference).

    Attributes (besides :class:`ZooLayer`'s):
      omega0: frequency of the carrier.
      s0: inverse width of the Gaussian envelope.
      two_maps: separate linear maps for the carrier and the envelope, as in the reference code.
      learnable: train omega0 and s0 with the weights.
      fast: use :func:`fast_math.fast_cos` instead of ``jnp.cos``.

    Shapes: ``(..., fan_in) -> (..., features)`` float32, values in [-1, 1].
    """

    omega0: float = 20.0
    s0: float = 10.0
    two_maps: bool = False
    fast: bool = True

    LAYER_NAME = "wire_real"
    HYPERPARAMETERS = ("omega0", "s0")
    POSITIVE = ("omega0", "s0")

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        omega0, s0 = self._hp("omega0"), self._hp("s0")
        if not self.two_maps:
            return real_gabor_wavelet(Linear(self.features, dtype=self.dtype)(x), omega0, s0, self.fast)
        freq = Linear(self.features, dtype=self.dtype, name="freq")(x)
        scale = Linear(self.features, dtype=self.dtype, name="scale")(x)
        return cos_of(self.fast)(omega0 * freq) * jnp.exp(-jnp.square(s0 * scale))


# ------------------------------------------------------------------------------- sine-like: FINER, HOSC, sinc


class FinerLayer(ZooLayer):
    """FINER layer (Liu et al. 2024, "FINER: Flexible spectral-bias tuning in Implicit NEural Representation
    by Variable-periodic Activation Functions"): ``sin(omega0 (|z| + 1) z)`` with ``z = x W + b``.

    W follows SIREN (:func:`initializers.siren_first_layer_init` first, :func:`initializers.siren_hidden_init`
    after); the first layer's bias is U(-k, k) with k = ``first_bias_scale``
    (:func:`initializers.finer_first_bias_init`), a large k giving the network a wide initial spectrum, or,
    with ``first_bias_scale=None`` (the default, as in the FINER reference code, whose ``first_bias_scale``
    defaults to None), PyTorch's U(-1/sqrt(n), 1/sqrt(n)), 0.707 for 2-D coordinates (README "Conventions",
    item 4). Later biases use U(-1/sqrt(n), 1/sqrt(n)). The head uses SIREN's hidden init.

    Attributes (besides :class:`ZooLayer`'s):
      omega0: frequency factor (30 as in SIREN).
      first_bias_scale: k of the first layer's bias init, or None for PyTorch's default 1/sqrt(fan_in). k = 1
        fitted better than k = 20 in our check (64x64 astronaut, 300 steps: 133 dB against 80 dB); larger k
        suits signals with more high frequencies.
      scale_grad: differentiate through the ``|z| + 1`` factor; ``False`` treats it as a constant in the
        backward pass, as the FINER reference code does by default (``scale_req_grad=False``).
      learnable: train omega0 with the weights.
      fast: use :func:`fast_math.fast_sin` instead of ``jnp.sin``.

    Shapes: ``(..., fan_in) -> (..., features)`` float32, values in [-1, 1].
    """

    omega0: float = 30.0
    first_bias_scale: float | None = None
    scale_grad: bool = False
    fast: bool = True

    LAYER_NAME = "finer"
    HYPERPARAMETERS = ("omega0",)
    POSITIVE = ("omega0",)

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        super().check_options(options)
        if options.get("first_bias_scale") is not None:
            _check_number(options, "first_bias_scale", 0.0, cls.LAYER_NAME, inclusive=True)

    def head_initializers(self) -> tuple[FanInInit, FanInInit]:
        return (lambda n: initializers.siren_hidden_init(n, self.omega0)), initializers.torch_default_init

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        bias_init = None
        if self.is_first and self.first_bias_scale is not None:
            bias_init = lambda n: initializers.finer_first_bias_init(self.first_bias_scale)  # noqa: E731
        z = self._siren_linear(x, self.omega0, bias_init)
        return finer(z, self._hp("omega0"), self.fast, self.scale_grad)


class HoscLayer(ZooLayer):
    """HOSC layer (Serrano et al. 2024, "HOSC: A Periodic Activation Function for Preserving Sharp Features
    in Implicit Neural Representations"): ``tanh(beta sin(omega0 z))`` with ``z = x W + b``.

    The 2024 paper writes ``tanh(beta sin(x))``; here SIREN's frequency factor omega0 is explicit (as in the
    authors' later form ``tanh(beta sin(omega0 x))``) and W follows SIREN's init for it
    (:func:`initializers.siren_first_layer_init`, :func:`initializers.siren_hidden_init`), b the PyTorch
    default; the head uses SIREN's hidden init. A large beta makes the activation close to a square wave,
    which keeps sharp edges sharp. beta = 8 is the value public HOSC implementations default to.

    Attributes (besides :class:`ZooLayer`'s):
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


class SincLayer(ZooLayer):
    """Sinc-activated layer (Saratchandran et al. 2024, "A sampling theory perspective on activations for
    implicit neural representations"): ``sinc(omega z) = sin(omega z) / (omega z)`` (1 at 0) with
    ``z = x W + b``.

    Convention (README "Conventions", item 8): sampling theory's sinc is the normalised ``sin(pi u) / (pi u)``;
    ours is ``sin(u) / u``, the same function at ``omega = pi w`` for a bandwidth w (so omega = 30 is w = 9.55).

    W, b and the head use PyTorch's default U(-1/sqrt(n), 1/sqrt(n)), like the Gaussian-type layers of the
    same group's "beyond periodicity" work. (SIREN's init with omega in place of omega0 fitted far worse in
    our check: 27 dB against 81 dB on the 64x64 astronaut, 300 steps.)

    Attributes (besides :class:`ZooLayer`'s):
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
