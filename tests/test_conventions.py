"""Conventions checked against the reference code (README "Conventions"; issue 14): one test per aligned
convention, each with a known answer."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from model_components.encodings import GaussianFourierFeatures, MultiScaleFourierFeatures, PositionalEncoding
from model_components.hash_grid import HashGridEncoding, grid_layout, hash_grid_lookup
from model_components.wave_layers import FinerLayer, RealWireLayer, sinc


def _pixel_centres(n: int) -> np.ndarray:
    """``(n * n, 2)`` pixel centres of an n x n image over [-1, 1] (as inr_utils.grids)."""
    axis = -1.0 + (2.0 * np.arange(n) + 1.0) / n
    y, x = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([x, y], axis=-1).reshape(-1, 2).astype(np.float32)


def test_nerf_default_has_no_channel_constant_on_a_256_pixel_grid():
    """Item 1: with 2^k (the NeRF code) no channel of the default L = 10 is constant over the pixel centres of
    a 256-pixel image; with the paper's 2^k pi octaves 7-9 give 10 constant channels (5 per coordinate)."""
    coords = jnp.asarray(_pixel_centres(256))
    enc = PositionalEncoding(include_input=False)
    out = np.asarray(enc.apply({}, coords))
    assert out.shape == (256 * 256, 40)
    assert np.ptp(out, axis=0).min() > 0.4  # the lowest cosine, cos(x) on [-1, 1], spans 0.46
    with_pi = np.asarray(PositionalEncoding(include_input=False, pi=True).apply({}, coords))
    assert int(np.sum(np.ptp(with_pi, axis=0) < 1e-3)) == 10


def test_nerf_default_frequencies_are_powers_of_two():
    x = jnp.asarray([[0.3, -0.7]], jnp.float32)
    out = np.asarray(PositionalEncoding(num_frequencies=3, include_input=False).apply({}, x))[0]
    expected = np.concatenate([np.sin([0.3, 0.6, 1.2, -0.7, -1.4, -2.8]), np.cos([0.3, 0.6, 1.2, -0.7, -1.4, -2.8])])
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_fourier_sigma_is_in_the_papers_unit():
    """Item 2: gamma = [cos(2 pi B (v - 1/2)), sin(...)] with v = (x + 1) / 2 in [0, 1] (Tancik et al.'s
    coordinates, centred), B ~ N(0, sigma^2) stored per unit of x as B / 2. B = 3 (3 cycles per image side) is
    stored 1.5. Hand values: x = 0.5 is v = 0.75, 2 pi 3 (0.75 - 0.5) = 1.5 pi; x = -1 is v = 0: -3 pi."""
    b = jnp.asarray([[1.5], [0.0]])  # (d, m): 3 cycles per image side along x
    enc = GaussianFourierFeatures(num_features=1, scale=1.0)
    x = jnp.asarray([[0.5, 0.4], [-1.0, 0.0], [0.0, 0.7]], jnp.float32)
    out = np.asarray(enc.apply({"constants": {"B": b}}, x))
    expected = np.array([[math.cos(1.5 * math.pi), math.sin(1.5 * math.pi)],
                         [math.cos(-3 * math.pi), math.sin(-3 * math.pi)], [1.0, 0.0]])
    np.testing.assert_allclose(out, expected, atol=1e-5)
    # one period of a B = 1 feature spans the whole image (x from -1 to 1), as on the paper's [0, 1)
    one = np.asarray(enc.apply({"constants": {"B": jnp.asarray([[0.5], [0.0]])}},
                               jnp.asarray([[-1.0, 0.0], [1.0, 0.0]], jnp.float32)))
    np.testing.assert_allclose(one[0], one[1], atol=1e-5)
    drawn = GaussianFourierFeatures(num_features=20000, scale=10.0).init(jax.random.key(0), jnp.zeros((1, 2)))
    assert abs(float(np.std(drawn["constants"]["B"])) / 5.0 - 1.0) < 0.03  # sigma 10 per side = 5 per unit of x


def test_multiscale_fourier_uses_the_same_unit():
    b = jnp.asarray([[[1.0], [0.0]]])  # (S=1, d, m): sigma-unit value 2
    enc = MultiScaleFourierFeatures(num_features=1, scales=(1.0,))
    out = np.asarray(enc.apply({"constants": {"B": b}}, jnp.asarray([[-0.5, 0.0]], jnp.float32)))
    np.testing.assert_allclose(out[0], [math.cos(-math.pi), math.sin(-math.pi)], atol=1e-5)  # v - 1/2 = -0.25


def test_finer_first_bias_defaults_to_pytorch_bound():
    """Item 4: first-layer bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) unless first_bias_scale is given."""
    x = jnp.zeros((1, 2))
    default = FinerLayer(512, is_first=True).init(jax.random.PRNGKey(0), x)["params"]["Linear_0"]["bias"]
    assert 0.6 < float(jnp.max(jnp.abs(default))) <= 1.0 / math.sqrt(2.0)
    wide = FinerLayer(512, is_first=True, first_bias_scale=1.0).init(jax.random.PRNGKey(0), x)
    assert float(jnp.max(jnp.abs(wide["params"]["Linear_0"]["bias"]))) > 0.9


def test_wire_real_two_maps_matches_reference_formula():
    """Item 5: cos(omega0 (x W_f + b_f)) exp(-(s0 (x W_s + b_s))^2) with two linear maps."""
    layer = RealWireLayer(4, omega0=20.0, s0=10.0, two_maps=True, fast=False)
    x = jax.random.uniform(jax.random.PRNGKey(1), (5, 3), minval=-1.0, maxval=1.0)
    variables = layer.init(jax.random.PRNGKey(0), x)
    p = variables["params"]
    freq = x @ p["freq"]["kernel"] + p["freq"]["bias"]
    scale = x @ p["scale"]["kernel"] + p["scale"]["bias"]
    np.testing.assert_allclose(layer.apply(variables, x), jnp.cos(20.0 * freq) * jnp.exp(-jnp.square(10.0 * scale)),
                               atol=1e-5)
    assert set(RealWireLayer(4).init(jax.random.PRNGKey(0), x)["params"]) == {"Linear_0"}


def test_hash_grid_finest_level_not_degenerate_at_pixel_centres():
    """Item 6: with tiny-cuda-nn's x (N - 1) + 0.5 the pixel centres of a 256 image at N_max = 256 no longer
    weight their 4 finest corners 1/4 each (without the offset they all do)."""
    coords01 = jnp.asarray((_pixel_centres(256) + 1.0) * 0.5)
    layout = grid_layout(2, 16, 15, 16, 256)
    _, plain = hash_grid_lookup(coords01, layout)
    np.testing.assert_allclose(np.asarray(plain[:, -1, :]), 0.25, atol=1e-6)
    _, aligned = hash_grid_lookup(coords01, layout, half_cell_offset=True)
    finest = np.asarray(aligned[:, -1, :])
    assert np.ptp(finest[:, 0]) > 0.5
    np.testing.assert_allclose(finest.sum(axis=-1), 1.0, atol=1e-5)
    assert HashGridEncoding().half_cell_offset


def test_hash_grid_offset_positions_known_values():
    """x = 0 sits at p = 0.5 and x = 1 at p = N - 0.5 on every level (a half cell inside the vertices)."""
    layout = grid_layout(2, 1, 15, 4, 4)  # one level, N = 4: p = 3 x + 0.5
    rows, weights = hash_grid_lookup(jnp.asarray([[0.0, 1.0]]), layout, half_cell_offset=True)
    # x: p = 0.5 -> cell 0, t = 0.5; y: p = 3.5 -> cell 3, t = 0.5: all four corners 1/4
    np.testing.assert_allclose(np.asarray(weights[0, 0]), 0.25, atol=1e-6)
    assert sorted(np.asarray(rows[0, 0]).tolist()) == [15, 16, 20, 21]  # v = (0|1) + 5 (3|4)


def test_sinc_is_the_normalised_sinc_at_omega_pi():
    """Item 8: sin(omega z) / (omega z) with omega = pi w is the sampling-theory sinc(w z) = sin(pi w z) /
    (pi w z) (numpy's np.sinc): the two conventions differ only by the factor pi in omega."""
    z = np.linspace(-2.0, 2.0, 41, dtype=np.float32)
    np.testing.assert_allclose(sinc(jnp.asarray(z), math.pi * 3.0, fast=False), np.sinc(3.0 * z), atol=1e-6)
