"""fast_sin / fast_cos: accuracy against jnp.sin/cos and exact custom derivatives."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from model_components.fast_math import fast_cos, fast_sin

DENSE = jnp.linspace(-100.0, 100.0, 1_000_001, dtype=jnp.float32)  # step 2e-4


@pytest.mark.parametrize("fast, exact", [(fast_sin, jnp.sin), (fast_cos, jnp.cos)])
def test_accuracy_on_dense_grid(fast, exact):
    err = float(jnp.max(jnp.abs(fast(DENSE) - exact(DENSE))))
    assert err < 1e-6


@pytest.mark.parametrize("fast, exact", [(fast_sin, np.sin), (fast_cos, np.cos)])
def test_accuracy_against_float64(fast, exact):
    x = np.asarray(DENSE)
    err = np.max(np.abs(np.asarray(fast(x), np.float64) - exact(x.astype(np.float64))))
    assert err < 1e-6


def test_special_points():
    x = jnp.array([0.0, np.pi / 2, np.pi, 3 * np.pi / 2, -np.pi / 2, 10 * np.pi], jnp.float32)
    np.testing.assert_allclose(np.asarray(fast_sin(x)), [0, 1, 0, -1, -1, 0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(fast_cos(x)), [1, 0, -1, 0, 0, 1], atol=1e-6)
    assert float(fast_sin(jnp.float32(0.0))) == 0.0  # odd polynomial: exactly zero


def test_shape_and_dtype_preserved():
    x = jnp.ones((3, 4, 5), jnp.float32)
    assert fast_sin(x).shape == (3, 4, 5) and fast_sin(x).dtype == jnp.float32
    xb = jnp.linspace(-3, 3, 11, dtype=jnp.bfloat16)
    out = fast_sin(xb)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out, np.float32), np.sin(np.asarray(xb, np.float32)), atol=1e-2)


def test_gradients_equal_cos_and_minus_sin():
    x = jnp.linspace(-20.0, 20.0, 2001, dtype=jnp.float32)
    dsin = jax.vmap(jax.grad(fast_sin))(x)
    dcos = jax.vmap(jax.grad(fast_cos))(x)
    np.testing.assert_allclose(np.asarray(dsin), np.cos(np.asarray(x)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(dcos), -np.sin(np.asarray(x)), atol=1e-6)
    # exact custom JVP: identical to the other polynomial
    np.testing.assert_array_equal(np.asarray(dsin), np.asarray(fast_cos(x)))


def test_second_and_third_derivatives():
    x = jnp.linspace(-5.0, 5.0, 101, dtype=jnp.float32)
    d2 = jax.vmap(jax.grad(jax.grad(fast_sin)))(x)
    d3 = jax.vmap(jax.grad(jax.grad(jax.grad(fast_sin))))(x)
    np.testing.assert_allclose(np.asarray(d2), -np.sin(np.asarray(x)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(d3), -np.cos(np.asarray(x)), atol=1e-6)


def test_jit_and_chain_rule():
    f = jax.jit(jax.grad(lambda w: jnp.sum(fast_sin(3.0 * w))))
    w = jnp.array([0.1, 0.7, -2.0], jnp.float32)
    np.testing.assert_allclose(np.asarray(f(w)), 3.0 * np.cos(3.0 * np.asarray(w)), atol=1e-5)


@pytest.mark.parametrize("fn", [fast_sin, fast_cos])
def test_rejects_integer_input(fn):
    with pytest.raises(TypeError, match="floating"):
        fn(jnp.arange(4, dtype=jnp.int32))
