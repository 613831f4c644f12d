"""Coordinate encodings: NeRF positional encoding and Gaussian Fourier features."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from model_components.catalog import ENCODINGS
from model_components.encodings import GaussianFourierFeatures, IdentityEncoding, PositionalEncoding


def _apply(module, coords, key=None):
    variables = module.init(key if key is not None else jax.random.key(0), coords)
    return module.apply(variables, coords), variables


def test_nerf_shape_l10_with_input():
    enc = PositionalEncoding(num_frequencies=10, include_input=True)
    out, variables = _apply(enc, jnp.zeros((2, 2)))
    assert out.shape == (2, 42)
    assert enc.output_dim(2) == 42
    assert not jax.tree_util.tree_leaves(variables)  # no parameters or constants


@pytest.mark.parametrize("num_frequencies", [0, 1, 3, 10])
@pytest.mark.parametrize("include_input", [True, False])
@pytest.mark.parametrize("in_dim", [1, 2, 3])
def test_nerf_output_dim_matches_actual(num_frequencies, include_input, in_dim):
    enc = PositionalEncoding(num_frequencies=num_frequencies, include_input=include_input)
    out, _ = _apply(enc, jnp.zeros((5, 4, in_dim)))
    assert out.shape == (5, 4, enc.output_dim(in_dim))


def test_nerf_known_values():
    """Layout is ``[p, sin block, cos block]``, each block coordinate-major:
    ``[sin(2^0 pi x) .. sin(2^(L-1) pi x), sin(2^0 pi y) .. sin(2^(L-1) pi y), cos(...x...), cos(...y...)]``.

    Hand values for L = 3 at (x, y) = (0.5, 0.25):
      sin(pi/2)=1, sin(pi)=0, sin(2 pi)=0;  sin(pi/4)=sqrt2/2, sin(pi/2)=1, sin(pi)=0
      cos(pi/2)=0, cos(pi)=-1, cos(2 pi)=1; cos(pi/4)=sqrt2/2, cos(pi/2)=0, cos(pi)=-1
    """
    h = math.sqrt(2.0) / 2.0
    expected = np.array([0.5, 0.25,
                         1.0, 0.0, 0.0, h, 1.0, 0.0,
                         0.0, -1.0, 1.0, h, 0.0, -1.0], dtype=np.float32)
    out, _ = _apply(PositionalEncoding(num_frequencies=3, pi=True), jnp.array([[0.5, 0.25]], jnp.float32))
    np.testing.assert_allclose(np.asarray(out[0]), expected, atol=1e-6)

    out_no_input, _ = _apply(PositionalEncoding(num_frequencies=3, include_input=False, pi=True),
                             jnp.array([[0.5, 0.25]], jnp.float32))
    np.testing.assert_allclose(np.asarray(out_no_input[0]), expected[2:], atol=1e-6)


def test_nerf_random_values_against_numpy():
    rng = np.random.default_rng(0)
    coords = rng.uniform(-1, 1, size=(7, 2)).astype(np.float32)
    num_frequencies = 5
    out, _ = _apply(PositionalEncoding(num_frequencies=num_frequencies), jnp.asarray(coords))
    freqs = 2.0 ** np.arange(num_frequencies)  # the NeRF code's 2^k (no pi), our default
    angles = (coords.astype(np.float64)[:, :, None] * freqs).reshape(7, -1)
    expected = np.concatenate([coords, np.sin(angles), np.cos(angles)], axis=-1)
    np.testing.assert_allclose(np.asarray(out), expected, atol=2e-5)


def test_nerf_zero_frequencies_returns_raw_coords():
    coords = jnp.array([[0.3, -0.7], [1.0, 0.0]], jnp.float32)
    for include_input in (True, False):
        enc = PositionalEncoding(num_frequencies=0, include_input=include_input)
        out, _ = _apply(enc, coords)
        np.testing.assert_array_equal(np.asarray(out), np.asarray(coords))
        assert enc.output_dim(2) == 2


def test_nerf_negative_frequencies_rejected():
    with pytest.raises(ValueError, match="num_frequencies"):
        _apply(PositionalEncoding(num_frequencies=-1), jnp.zeros((1, 2)))


def test_identity_encoding():
    coords = jnp.arange(6.0).reshape(3, 2)
    out, _ = _apply(IdentityEncoding(), coords)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(coords))
    assert IdentityEncoding().output_dim(5) == 5


def test_registry_names():
    assert ENCODINGS.names() == ["fourier", "hashgrid", "lattice_fourier", "multiscale_fourier", "nerf", "none"]
    assert ENCODINGS.get("nerf") is PositionalEncoding
    assert ENCODINGS.get("fourier") is GaussianFourierFeatures


@pytest.mark.parametrize("include_input", [False, True])
def test_fourier_shape_and_output_dim(include_input):
    enc = GaussianFourierFeatures(num_features=16, scale=2.0, include_input=include_input)
    out, _ = _apply(enc, jnp.zeros((3, 5, 2)))
    assert out.shape == (3, 5, 32 + 2 * include_input)
    assert enc.output_dim(2) == out.shape[-1]


def test_fourier_matrix_in_constants_not_params():
    enc = GaussianFourierFeatures(num_features=8, scale=1.0)
    _, variables = _apply(enc, jnp.zeros((1, 2)))
    assert "params" not in variables
    assert set(variables) == {"constants"}
    assert variables["constants"]["B"].shape == (2, 8)


def test_fourier_matrix_std_close_to_scale():
    scale = 7.0
    enc = GaussianFourierFeatures(num_features=20000, scale=scale)
    _, variables = _apply(enc, jnp.zeros((1, 2)))
    b = np.asarray(variables["constants"]["B"])
    # 40000 samples: the std estimate has relative standard error ~ 1/sqrt(2 * 40000) = 0.35 %.
    assert abs(b.std() / (scale / 2) - 1.0) < 0.03  # sigma per unit of v = (x + 1) / 2: sigma / 2 per unit of x
    assert abs(b.mean()) < 0.05 * scale


def test_fourier_matrix_depends_on_key():
    enc = GaussianFourierFeatures(num_features=8, scale=1.0)
    _, v0 = _apply(enc, jnp.zeros((1, 2)), jax.random.key(0))
    _, v1 = _apply(enc, jnp.zeros((1, 2)), jax.random.key(1))
    _, v0b = _apply(enc, jnp.zeros((1, 2)), jax.random.key(0))
    assert not np.allclose(v0["constants"]["B"], v1["constants"]["B"])
    np.testing.assert_array_equal(v0["constants"]["B"], v0b["constants"]["B"])


@pytest.mark.parametrize("include_input", [False, True])
def test_fourier_values_are_cos_sin_of_2pi_vB(include_input):
    rng = np.random.default_rng(1)
    coords = rng.uniform(-1, 1, size=(6, 2)).astype(np.float32)
    enc = GaussianFourierFeatures(num_features=10, scale=3.0, include_input=include_input)
    out, variables = _apply(enc, jnp.asarray(coords))
    b = np.asarray(variables["constants"]["B"], np.float64)
    angles = 2 * np.pi * coords.astype(np.float64) @ b
    expected = np.concatenate([np.cos(angles), np.sin(angles)], axis=-1)
    if include_input:
        expected = np.concatenate([coords, expected], axis=-1)
    np.testing.assert_allclose(np.asarray(out), expected, atol=1e-4)
