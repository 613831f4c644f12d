"""INR layers: a mixed-precision ``Linear`` and the hidden layers an INR stacks.

Each hidden layer maps ``(..., fan_in) -> (..., features)`` and is registered in
:data:`model_components.catalog.LAYERS`. A hidden layer class also says how the INR's final linear layer should
be initialised for it (``head_initializers``), since e.g. SIREN's output layer uses the hidden-layer scale.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from model_components import initializers
from model_components.fast_math import fast_sin
from model_components.registry import Registry

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


#: Output widths up to which the input gradient is computed with elementwise multiply-adds instead of a matrix
#: product (RGB heads): XLA:CPU runs products with such a thin side slowly. (The kernel gradient of raw 2-D/3-D
#: coordinates stays a product: as n multiply-add reductions it trained 64 CIFAR SIRENs about 7 % slower.)
NARROW_OUTPUT = 4


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def mixed_precision_matmul(x: jax.Array, kernel: jax.Array, dtype: Any) -> jax.Array:
    """``x @ kernel`` with multiplications in ``dtype`` (e.g. bfloat16) and float32 (or wider) accumulation/output.

    Differentiable in every mode (``grad``, ``jvp``, ``jacfwd``, ``jacrev``, ``hessian``, under ``vmap`` and
    ``jit``): the derivative is a custom JVP, ``d(x K) = dx K + x dK``, whose terms are written so that JAX's
    transposition of them (reverse mode) yields the products XLA:CPU runs fastest:

    * ``dx K``: a float32 product with K rounded to ``dtype`` as in the forward product (the backward input
      gradient ``g K^T`` is then a float32 product: transposition cannot give a bfloat16 product with float32
      output), or, for outputs of at most :data:`NARROW_OUTPUT` features, m elementwise multiply-adds,
      which XLA fuses with the neighbouring elementwise ops;
    * ``x dK``: from float32 operands (the kernel gradient contracts over the batch, where low precision
      would sum thousands of rounded terms); as ``(dK^T x^T)^T`` behind optimisation barriers when
      ``4 m <= n`` (so the backward product is ``(g^T x)^T``, whose right operand is the wider one), a plain
      product otherwise.

    The tangent terms are linear in the tangents and built from differentiable primitives, so higher
    derivatives (a Hessian, a Laplacian) compose too.

    Args:
      x: ``(..., n)`` float array.
      kernel: ``(n, m)`` float array.
      dtype: multiplication dtype.

    Returns:
      ``(..., m)`` array of the accumulation dtype: float32, or float64 for float64 operands.
    """
    return jnp.dot(x.astype(dtype), kernel.astype(dtype), preferred_element_type=_accumulation_dtype(x, kernel))


def _accumulation_dtype(x: jax.Array, kernel: jax.Array) -> Any:
    return jnp.promote_types(jnp.promote_types(x.dtype, kernel.dtype), jnp.float32)


def _input_tangent(dx: jax.Array, kernel: jax.Array, dtype: Any, acc: Any) -> jax.Array:
    """``dx @ kernel``, ``(..., n) -> (..., m)`` in ``acc``; transposes to the input gradient ``g K^T``."""
    m = kernel.shape[-1]
    if m <= NARROW_OUTPUT:  # transposes to sum_j g_j K[:, j]: m broadcast multiply-adds, fused by XLA
        dx_acc, k_acc = dx.astype(acc), kernel.astype(acc)
        return jnp.stack([jnp.sum(dx_acc * k_acc[:, j], axis=-1) for j in range(m)], axis=-1)
    # The transpose of a product multiplies the cotangent in the product's output dtype, so a bfloat16 product
    # with float32 output cannot come out of transposition; XLA:CPU turns a bfloat16-output product into a
    # float32 one anyway. So: float32 operands (the kernel rounded as in the forward product), float32 result.
    return jnp.dot(dx.astype(acc), kernel.astype(dtype).astype(acc))


def _kernel_tangent(x: jax.Array, dkernel: jax.Array, acc: Any) -> jax.Array:
    """``x @ dkernel`` from ``acc`` operands, ``(..., n) -> (..., m)``; transposes to the kernel gradient."""
    n, m = dkernel.shape
    x2 = x.reshape(-1, n).astype(acc)
    dk = dkernel.astype(acc)
    if 4 * m <= n:  # narrow output: transposes to barrier(barrier(g^T) x)^T, a product with a wide right side
        t_t = jax.lax.dot_general(jax.lax.optimization_barrier(dk.T), x2, (((1,), (1,)), ((), ())))  # (m, B)
        t = jax.lax.optimization_barrier(t_t).T
    else:
        t = jnp.dot(x2, dk)
    return t.reshape(*x.shape[:-1], m)


@partial(mixed_precision_matmul.defjvp, symbolic_zeros=True)
def _mixed_matmul_jvp(dtype, primals, tangents):
    x, kernel = primals
    dx, dkernel = tangents
    y = mixed_precision_matmul(x, kernel, dtype)
    acc = _accumulation_dtype(x, kernel)
    # Symbolic zeros: no wasted product for an input that is not differentiated (e.g. the coordinates).
    terms = []
    if not isinstance(dx, SymbolicZero):
        terms.append(_input_tangent(dx, kernel, dtype, acc))
    if not isinstance(dkernel, SymbolicZero):
        terms.append(_kernel_tangent(x, dkernel, acc))
    if not terms:
        return y, jnp.zeros_like(y)
    return y, terms[0] if len(terms) == 1 else terms[0] + terms[1]


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
        # float64 inputs keep full-precision products; float32 ones use mixed_precision_matmul too, whose
        # derivative rule gives XLA:CPU faster backward products than plain autodiff's
        compute_dtype = out_dtype if out_dtype != jnp.float32 else jnp.dtype(self.dtype or jnp.float32)
        y = mixed_precision_matmul(x, kernel.astype(out_dtype), compute_dtype)
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
      fast: use :func:`fast_math.fast_sin` (same values to ~2e-7, cheaper on CPU) instead of
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
