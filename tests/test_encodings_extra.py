"""Multi-scale Fourier features and integer-lattice Fourier features."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from model_components.catalog import ENCODINGS
from model_components.encodings import (
    LatticeFourierFeatures,
    MultiScaleFourierFeatures,
    lattice_frequencies,
)
from model_components.inrs import ModelConfig, build_model, model_config

# ----------------------------------------------------------------------------------------------- multi-scale


@pytest.mark.parametrize("combine, include_input, expected", [("concat", False, 2 * 8 * 3), ("sum", False, 2 * 8),
                                                              ("concat", True, 2 * 8 * 3 + 2), ("sum", True, 18)])
def test_multiscale_shapes(combine, include_input, expected):
    enc = MultiScaleFourierFeatures(num_features=8, scales=(1.0, 4.0, 16.0), combine=combine,
                                    include_input=include_input)
    coords = jnp.zeros((5, 4, 2))
    variables = enc.init(jax.random.key(0), coords)
    out = enc.apply(variables, coords)
    assert out.shape == (5, 4, expected) == (5, 4, enc.output_dim(2))


def test_multiscale_matrices_are_constants_with_their_scales():
    scales = (1.0, 10.0, 50.0)
    enc = MultiScaleFourierFeatures(num_features=4000, scales=scales)
    variables = enc.init(jax.random.key(0), jnp.zeros((1, 2)))
    assert "params" not in variables
    matrices = np.asarray(variables["constants"]["B"])
    assert matrices.shape == (3, 2, 4000)
    for i, sigma in enumerate(scales):
        assert np.std(matrices[i]) == pytest.approx(sigma / 2, rel=0.05)  # per unit of x; 8000 draws: ~1% error
    # not trained: a model's gradient has no entry for them
    model = build_model(model_config("ffn", encoding="multiscale_fourier", width=16, depth=0, num_features=8))
    v = model.init(jax.random.key(0), jnp.zeros((1, 2)))
    grads = jax.grad(lambda p: jnp.sum(model.apply({"params": p, **{k: x for k, x in v.items() if k != "params"}},
                                                   jnp.ones((3, 2)))))(v["params"])
    assert "encoding" not in grads and v["constants"]["encoding"]["B"].shape == (2, 2, 8)


def test_multiscale_known_values():
    """B_1 = [[0.5], [0]] (sigma 1 slot), B_2 = [[0], [0.25]]: at x = (0.5, 1), 2 pi B^T x = pi/2 and pi/2."""
    enc = MultiScaleFourierFeatures(num_features=1, scales=(1.0, 2.0))
    matrices = jnp.array([[[0.5], [0.0]], [[0.0], [0.25]]])
    x = jnp.array([[0.5, 1.0]])
    concat = enc.apply({"constants": {"B": matrices}}, x)[0]
    np.testing.assert_allclose(np.asarray(concat), [math.cos(math.pi / 2), 1.0, math.cos(math.pi / 2), 1.0],
                               atol=1e-6)
    x = jnp.array([[0.25, 1.0]])  # angles pi/4 and pi/2
    summed = MultiScaleFourierFeatures(num_features=1, scales=(1.0, 2.0), combine="sum").apply(
        {"constants": {"B": matrices}}, x)[0]
    h = math.sqrt(0.5)
    np.testing.assert_allclose(np.asarray(summed), [h + 0.0, h + 1.0], atol=1e-6)


def test_multiscale_sum_is_the_sum_of_the_concatenated_blocks():
    coords = jax.random.uniform(jax.random.key(1), (6, 2), minval=-1, maxval=1)
    concat_enc = MultiScaleFourierFeatures(num_features=5, scales=(1.0, 3.0, 9.0))
    variables = concat_enc.init(jax.random.key(2), coords)
    concat = np.asarray(concat_enc.apply(variables, coords)).reshape(6, 3, 10)
    summed = MultiScaleFourierFeatures(num_features=5, scales=(1.0, 3.0, 9.0), combine="sum").apply(variables, coords)
    np.testing.assert_allclose(np.asarray(summed), concat.sum(axis=1), atol=1e-5)


@pytest.mark.parametrize("options", [{"num_features": 0}, {"scales": []}, {"scales": [1.0, -2.0]},
                                     {"scales": 3.0}, {"combine": "mean"}])
def test_multiscale_bad_options(options):
    with pytest.raises(ValueError):
        model_config("ffn", encoding="multiscale_fourier", **options)


# ----------------------------------------------------------------------------------------------- lattice


def test_lattice_frequencies_half_and_full():
    full = lattice_frequencies(2, 2, half=False)
    assert full.shape == (25, 2) and len({tuple(k) for k in full}) == 25
    half = lattice_frequencies(2, 2, half=True)
    assert half.shape == (12, 2)
    as_set = {tuple(k) for k in half}
    assert (0, 0) not in as_set
    assert not any((-a, -b) in as_set for a, b in as_set)  # no duplicate +-k
    assert as_set | {(-a, -b) for a, b in as_set} | {(0, 0)} == {tuple(k) for k in full}
    np.testing.assert_array_equal(lattice_frequencies(2, 1), [[0, 1], [1, -1], [1, 0], [1, 1]])
    assert lattice_frequencies(3, 1).shape == (13, 3)


def test_lattice_known_values():
    """K = 1 in 2-D: k = (0,1), (1,-1), (1,0), (1,1); at x = (0.5, 0.25), k.x = 0.25, 0.25, 0.5, 0.75."""
    enc = LatticeFourierFeatures(max_frequency=1)
    x = jnp.array([[0.5, 0.25]])
    variables = enc.init(jax.random.key(0), x)
    assert not jax.tree_util.tree_leaves(variables)  # fixed frequencies, no variables at all
    out = np.asarray(enc.apply(variables, x))[0]
    h = math.sqrt(0.5)
    np.testing.assert_allclose(out, [h, h, 0.0, -h, h, h, 1.0, h], atol=1e-6)
    with_input = LatticeFourierFeatures(max_frequency=1, include_input=True).apply({}, x)[0]
    np.testing.assert_allclose(np.asarray(with_input), [0.5, 0.25, *out], atol=1e-6)


@pytest.mark.parametrize("half, include_input, in_dim", [(True, False, 2), (False, False, 2), (True, True, 3),
                                                         (False, True, 1)])
def test_lattice_output_dim_matches(half, include_input, in_dim):
    enc = LatticeFourierFeatures(max_frequency=2, half=half, include_input=include_input)
    out = enc.apply({}, jnp.zeros((3, 2, in_dim)))
    assert out.shape == (3, 2, enc.output_dim(in_dim))
    assert LatticeFourierFeatures(max_frequency=8).output_dim(2) == 288


def test_lattice_bad_options():
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="max_frequency"):
            model_config("ffn", encoding="lattice_fourier", max_frequency=bad)


# ----------------------------------------------------------------------------------------------- in models


@pytest.mark.parametrize("encoding, options", [("multiscale_fourier", {"scales": [1, 10], "num_features": 4}),
                                               ("multiscale_fourier", {"combine": "sum", "num_features": 4}),
                                               ("lattice_fourier", {"max_frequency": 3})])
def test_config_round_trip_and_model_runs(encoding, options):
    assert encoding in ENCODINGS
    config = model_config("ffn", encoding=encoding, width=16, depth=0, **options)
    restored = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored.to_dict() == json.loads(json.dumps(config.to_dict()))
    model = build_model(restored)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 2)))
    out = model.apply(variables, jnp.full((4, 2), 0.3))
    assert out.shape == (4, 3) and np.all(np.isfinite(np.asarray(out)))
