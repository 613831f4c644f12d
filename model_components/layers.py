"""INR layers: a mixed-precision ``Linear`` and the hidden layers an INR stacks.

Each hidden layer maps ``(..., fan_in) -> (..., features)`` and is registered in :data:`LAYERS`. A hidden
layer class also says how the INR's final linear layer should be initialised for it (``head_initializers``),
since e.g. SIREN's output layer uses the hidden-layer scale.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from model_components import initializers
from model_components.fast_math import fast_sin
from model_components.registry import Registry


def __getattr__(name: str) -> Any:  # the layer registry moved to model_components.catalog (an explicit list)
    if name == "LAYERS":
        from model_components.catalog import LAYERS

        return LAYERS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Maps fan_in to an initializer; INR inits depend on fan_in, which a layer only knows when first called.
FanInInit = Callable[[int], initializers.Initializer]

#: Elementwise activations by name (the explicit list of the activation registry).
ACTIVATIONS: Registry[Callable[[jax.Array], jax.Array]] = Registry("activation", {
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "tanh": jnp.tanh,
    "softplus": jax.nn.softplus,
    "leaky_relu": jax.nn.leaky_relu,
    "sigmoid": jax.nn.sigmoid,
    "identity": lambda x: x,
})


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def mixed_precision_matmul(x: jax.Array, kernel: jax.Array, dtype: Any) -> jax.Array:
    """``x @ kernel`` with multiplications in ``dtype`` (e.g. bfloat16) and float32 accumulation/output.

    The backward pass keeps the input-gradient product in ``dtype`` too (in float32 for outputs of at most
    :data:`NARROW_OUTPUT` features, where it is a few fused multiply-adds), but computes the kernel gradient
    (a contraction over the batch, where low precision would sum thousands of rounded terms) from float32
    operands. On XLA:CPU with AVX512-BF16 this runs the forward and input-gradient products about twice as
    fast as float32.

    Args:
      x: ``(..., n)`` float array.
      kernel: ``(n, m)`` float array.
      dtype: multiplication dtype.

    Returns:
      ``(..., m)`` float32 array.
    """
    return jnp.dot(x.astype(dtype), kernel.astype(dtype), preferred_element_type=jnp.float32)


#: Output widths m up to which the input gradient is computed elementwise (RGB heads and the like).
NARROW_OUTPUT = 4


def _mixed_matmul_fwd(x, kernel, dtype):
    return mixed_precision_matmul(x, kernel, dtype), (x, kernel)


def _mixed_matmul_bwd(dtype, residuals, grad_out):
    x, kernel = residuals
    if grad_out.shape[-1] <= NARROW_OUTPUT:
        # m broadcast multiply-adds in float32, which XLA fuses into the next elementwise op (the activation's
        # derivative); a product with K = m <= 4 is slow on XLA:CPU (16 SIRENs 2-32-32-3 train 7 % faster)
        grad_x = sum(grad_out[..., j:j + 1].astype(jnp.float32) * kernel[:, j].astype(jnp.float32)
                     for j in range(grad_out.shape[-1])).astype(x.dtype)
    else:
        grad_x = jax.lax.dot_general(  # (..., m) x (n, m) -> (..., n), contracting m
            grad_out.astype(dtype), kernel.astype(dtype), (((grad_out.ndim - 1,), (1,)), ((), ())),
            preferred_element_type=jnp.float32,
        ).astype(x.dtype)
    x2 = x.reshape(-1, x.shape[-1]).astype(jnp.float32)
    g2 = grad_out.reshape(-1, grad_out.shape[-1]).astype(jnp.float32)
    # The kernel gradient contracts over the batch. XLA:CPU runs it fastest as a product whose right operand
    # (its columns) is the wider of x and g, the other one transposed and materialised first: x^T g for all
    # but narrow outputs, (g^T x)^T when m is at most n / 4 (an RGB head: 2x faster for n = 32, 4-10x for
    # n = 256, measured; for n = m = 32 it is faster alone but slower inside a training step).
    if 4 * g2.shape[-1] <= x2.shape[-1]:
        grad_kernel = jax.lax.optimization_barrier(jnp.dot(jax.lax.optimization_barrier(g2.T), x2)).T
    else:
        grad_kernel = jnp.dot(jax.lax.optimization_barrier(x2.T), g2)
    return grad_x, grad_kernel.astype(kernel.dtype)


mixed_precision_matmul.defvjp(_mixed_matmul_fwd, _mixed_matmul_bwd)


def hyperparameter(module: nn.Module, name: str, value: float, learnable: bool = False) -> jax.Array:
    """A scalar hyperparameter of a layer (omega0, a Gaussian's width, ...) stored as a float32 variable.

    Learnable ones live in ``"params"`` (trained with the weights); fixed ones in ``"constants"``, which the
    optimizer never touches but which travels with the variables. Either way the value is an array in the
    model's variables rather than a Python constant baked into the compiled program, so sweeps can ``vmap``
    models that differ only in it (see ``inr_utils.sweeps``).
    """
    if learnable:
        return module.param(name, lambda key: jnp.asarray(value, jnp.float32))
    return module.variable("constants", name, lambda: jnp.asarray(value, jnp.float32)).value


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """Elementwise activation by name; raises ``ValueError`` listing the valid names."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of: {', '.join(sorted(ACTIVATIONS))}") from None


class Linear(nn.Module):
    """Affine map ``y = x W + b`` with fan-in-aware initialisers and mixed precision.

    Attributes:
      features: output width.
      kernel_init: fan_in -> initializer for W of shape ``(fan_in, features)``.
      bias_init: fan_in -> initializer for b of shape ``(features,)``.
      dtype: compute dtype of the matrix product (e.g. ``jnp.bfloat16``); ``None`` keeps the input's.
        Products always accumulate and return in float32 or wider, so only the multiplications lose bits.
      param_dtype: storage dtype of W and b.

    Shapes: ``(..., fan_in) -> (..., features)``.
    """

    features: int
    kernel_init: FanInInit = initializers.torch_default_init
    bias_init: FanInInit = initializers.torch_default_init
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        kernel = self.param("kernel", self.kernel_init(fan_in), (fan_in, self.features), self.param_dtype)
        bias = self.param("bias", self.bias_init(fan_in), (self.features,), self.param_dtype)
        out_dtype = jnp.promote_types(x.dtype, jnp.float32)
        if out_dtype != jnp.float32:  # float64 inputs keep plain (exact) products
            y = jnp.dot(x, kernel.astype(out_dtype))
        else:  # float32 too: its custom kernel gradient is faster on XLA:CPU than autodiff's
            y = mixed_precision_matmul(x, kernel, jnp.dtype(self.dtype or jnp.float32))
        return y + bias.astype(out_dtype)


class DenseLayer(nn.Module):
    """``activation(x W + b)`` with PyTorch's default init U(-1/sqrt(n), 1/sqrt(n)) for W and b.

    Attributes:
      features: output width.
      activation: name from :data:`ACTIVATIONS` (``relu`` for the classic positional-encoding MLP).
      is_first: unused here (kept so every layer type shares one signature).
      dtype: compute dtype of the matrix product, see :class:`Linear`.
    """

    features: int
    activation: str = "relu"
    is_first: bool = False
    dtype: Any = None

    @staticmethod
    def check_options(options: dict[str, Any]) -> None:
        get_activation(options.get("activation", "relu"))

    def head_initializers(self) -> tuple[FanInInit, FanInInit]:
        return initializers.torch_default_init, initializers.torch_default_init

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return get_activation(self.activation)(Linear(self.features, dtype=self.dtype)(x))


class SineLayer(nn.Module):
    """SIREN layer (Sitzmann et al. 2020, Sec. 3): ``sin(omega0 (x W + b))``.

    W follows :func:`initializers.siren_first_layer_init` for the first layer and
    :func:`initializers.siren_hidden_init` after it; b ~ U(-1/sqrt(n), 1/sqrt(n)) as in the reference code.

    Attributes:
      features: output width.
      omega0: frequency factor omega0 (30 in the paper, for both first and hidden layers); stored as a
        variable (see :func:`hyperparameter`).
      learnable: train omega0 with the weights.
      is_first: whether this layer reads the (encoded) coordinates.
      fast: use :func:`fast_math.fast_sin` (same values to ~2e-7, several times faster on CPU) instead of
        ``jnp.sin``.
      dtype: compute dtype of the matrix product, see :class:`Linear`.
    """

    features: int
    omega0: float = 30.0
    learnable: bool = False
    is_first: bool = False
    fast: bool = True
    dtype: Any = None

    @staticmethod
    def check_options(options: dict[str, Any]) -> None:
        if not options.get("omega0", 30.0) > 0:
            raise ValueError(f"omega0 must be positive, got {options['omega0']}")

    def head_initializers(self) -> tuple[FanInInit, FanInInit]:
        return (lambda n: initializers.siren_hidden_init(n, self.omega0)), initializers.torch_default_init

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.is_first:
            kernel_init = initializers.siren_first_layer_init
        else:
            kernel_init = lambda n: initializers.siren_hidden_init(n, self.omega0)  # noqa: E731
        pre = Linear(self.features, kernel_init=kernel_init, dtype=self.dtype)(x)
        sine = fast_sin if self.fast else jnp.sin
        return sine(hyperparameter(self, "omega0", self.omega0, self.learnable) * pre)
