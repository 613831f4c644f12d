"""Weight initialisers of INR papers, as standalone functions with the ``jax.nn.initializers`` signature
``init(key, shape, dtype) -> array`` so hypernetworks and tests can reuse their scales.

Kernels are stored ``(fan_in, fan_out)`` as in Flax, so ``fan_in = shape[0]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

Initializer = Callable[[jax.Array, tuple[int, ...], jnp.dtype], jax.Array]


def uniform_init(bound: float) -> Initializer:
    """U(-bound, bound) for any shape."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype: jnp.dtype = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

    return init


def siren_first_layer_init(fan_in: int) -> Initializer:
    """SIREN first layer (Sitzmann et al. 2020, "Implicit Neural Representations with Periodic Activation
    Functions", Sec. 3.2): W ~ U(-1/n, 1/n) with n = fan_in, so that sin(omega0 (W x + b)) spans several
    periods over x in [-1, 1]."""
    return uniform_init(1.0 / fan_in)


def siren_hidden_init(fan_in: int, omega0: float) -> Initializer:
    """SIREN hidden/output layers (Sitzmann et al. 2020, Sec. 3.2 and supplement 1.5):
    W ~ U(-sqrt(6/n)/omega0, sqrt(6/n)/omega0), n = fan_in, which keeps pre-activations of
    sin(omega0 (W x + b)) distributed as a standard arcsine-friendly normal at every depth."""
    return uniform_init(math.sqrt(6.0 / fan_in) / omega0)


def torch_default_init(fan_in: int) -> Initializer:
    """PyTorch ``nn.Linear`` default for both kernel and bias: U(-1/sqrt(n), 1/sqrt(n)), n = fan_in
    (Kaiming-uniform with a = sqrt(5)). The classic ReLU-MLP INR tutorials train with this init."""
    return uniform_init(1.0 / math.sqrt(fan_in))


def finer_first_bias_init(scale: float) -> Initializer:
    """FINER first-layer bias (Liu et al. 2024, "FINER: Flexible spectral-bias tuning in Implicit NEural
    Representation by Variable-periodic Activation Functions"): b ~ U(-k, k) with k = ``scale``,
    independent of fan_in. A large k spreads the first layer's pre-activations z over a wide range, so that
    sin(omega0 (|z| + 1) z) starts with a broad band of local frequencies."""
    if not scale >= 0:
        raise ValueError(f"finer_first_bias_init: scale must be >= 0, got {scale}")
    return uniform_init(scale)


def wire_head_init(fan_in: int) -> Initializer:
    """Final linear layer of WIRE (Saragadam et al. 2023, "WIRE: Wavelet Implicit Neural Representations")
    read as a real layer on ``[Re h, Im h]``: U(-sqrt(2/n), sqrt(2/n)) with n = fan_in = 2 * width.

    The reference output layer is a complex ``nn.Linear(width, out)`` whose real and imaginary weight parts
    are PyTorch-default U(-1/sqrt(width), 1/sqrt(width)); its real output ``Re(W h + b) = Re W Re h -
    Im W Im h + Re b`` is a real layer on the 2 * width concatenated features with that same bound
    1/sqrt(width) = sqrt(2/n), for weights and bias alike."""
    return uniform_init(math.sqrt(2.0 / fan_in))
