"""Fast, accurate elementwise sine and cosine for sine-activated INRs.

XLA's CPU backend evaluates ``jnp.sin`` at roughly 4-5 ns a value, which dominates the cost of a SIREN step on
a CPU. :func:`fast_sin` instead reduces the argument to r in [-pi/2, pi/2] with x = k*pi + r and evaluates
odd (sine) and even (cosine) minimax polynomials of degree 9 and 8:

    sin(x) = (-1)^k * (r + c3 r^3 + c5 r^5 + c7 r^7 + c9 r^9)
    cos(x) = (-1)^k * (1 + d2 r^2 + d4 r^4 + d6 r^6 + d8 r^8)

The coefficients were fitted on [-pi/2, pi/2] (polynomial error below 6e-8, so in float32 the result is
limited by rounding: about 2e-7 absolute for |x| < 100, growing slowly with |x| through the reduction).
The reduction subtracts k*pi in two parts (Cody-Waite), so it stays accurate for the argument magnitudes
an INR sees (|x| up to ~1e4). Derivatives are exact: d/dx fast_sin = fast_cos and vice versa (custom JVP),
so gradients and higher derivatives cost the same polynomial.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# pi split into a float32-exact high part and the remainder (Cody-Waite reduction).
_PI_HI = 3.140625
_PI_LO = 9.67653589793e-4
_INV_PI = 0.3183098861837907
_SIN_COEFFS = (-1.66666571e-01, 8.33301728e-03, -1.98066146e-04, 2.60005346e-06)
_COS_COEFFS = (-4.99999323e-01, 4.16639894e-02, -1.38559266e-03, 2.31943746e-05)


def _reduce(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns (r, sign) with x = k*pi + r, r in [-pi/2, pi/2], sign = (-1)^k; same shape as x."""
    k = jnp.round(x * _INV_PI)
    r = (x - k * _PI_HI) - k * _PI_LO
    sign = 1.0 - 2.0 * (k - 2.0 * jnp.floor(0.5 * k))
    return r, sign.astype(x.dtype)


def _sin_poly(r: jax.Array) -> jax.Array:
    c3, c5, c7, c9 = _SIN_COEFFS
    r2 = r * r
    return r + r * r2 * (c3 + r2 * (c5 + r2 * (c7 + r2 * c9)))


def _cos_poly(r: jax.Array) -> jax.Array:
    d2, d4, d6, d8 = _COS_COEFFS
    r2 = r * r
    return 1.0 + r2 * (d2 + r2 * (d4 + r2 * (d6 + r2 * d8)))


def _check_dtype(x: jax.Array) -> jax.Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"fast_sin/fast_cos need a floating-point array, got dtype {x.dtype}")
    return x


@jax.custom_jvp
def fast_sin(x: jax.Array) -> jax.Array:
    """Elementwise sine of a float array of any shape, cheaper than ``jnp.sin`` on XLA:CPU (a short polynomial
    after range reduction; ``benchmarks/`` has the timings).

    Args:
      x: float array, any shape (radians).

    Returns:
      Array of x's shape and dtype; max abs error vs ``jnp.sin`` about 2e-7 for |x| < 100 (float32).
    """
    x = _check_dtype(x)
    r, sign = _reduce(x.astype(jnp.promote_types(x.dtype, jnp.float32)))
    return (sign * _sin_poly(r)).astype(x.dtype)


@jax.custom_jvp
def fast_cos(x: jax.Array) -> jax.Array:
    """Elementwise cosine with the same reduction and accuracy as :func:`fast_sin`.

    Args:
      x: float array, any shape (radians).

    Returns:
      Array of x's shape and dtype.
    """
    x = _check_dtype(x)
    r, sign = _reduce(x.astype(jnp.promote_types(x.dtype, jnp.float32)))
    return (sign * _cos_poly(r)).astype(x.dtype)


@fast_sin.defjvp
def _fast_sin_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return fast_sin(x), fast_cos(x) * t


@fast_cos.defjvp
def _fast_cos_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return fast_cos(x), -fast_sin(x) * t
