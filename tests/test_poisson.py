"""Gradient and Laplacian supervision (inr_utils.applications.poisson, objectives): autodiff derivatives of an INR
against finite differences and jax.hessian, the Laplacian of a known quadratic, a tiny gradient fit recovering the
image, bad input, and experiments/poisson_fit.py end to end (tiny) and refusing bad flags."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_script

from inr_utils.applications import poisson as P
from inr_utils.applications.objectives import field_gradient, field_laplacian, field_second_derivatives
from inr_utils.errors import InputError
from inr_utils.initialization import init_state
from inr_utils.tables import read_csv
from inr_utils.training import merge_variables
from model_components.inrs import build_model


def _siren_field():
    config = P.poisson_config(width=16, depth=1)
    model, (state, _) = build_model(config.model), init_state(config)
    variables = merge_variables(state.params, state.constants)
    return lambda x: model.apply(variables, x)


def test_autodiff_gradient_equals_finite_difference():
    field = _siren_field()
    x = jnp.asarray([[0.1, -0.3], [0.5, 0.2], [-0.7, 0.9]], jnp.float32)
    grad = np.asarray(field_gradient(field, x))
    h = 1e-3
    for k in range(2):
        e = np.zeros(2, np.float32)
        e[k] = h
        fd = (np.asarray(field(x + e)) - np.asarray(field(x - e)))[:, 0] / (2 * h)
        np.testing.assert_allclose(grad[:, k], fd, rtol=2e-2, atol=2e-3)


def test_second_derivatives_by_jvp_equal_hessian_diagonal():
    field = _siren_field()
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (5, 2)), jnp.float32)
    diag = np.asarray(field_second_derivatives(field, x))
    hess = np.asarray(jax.vmap(jax.hessian(lambda p: field(p)[0]))(x))
    np.testing.assert_allclose(diag, np.diagonal(hess, axis1=1, axis2=2), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.asarray(field_laplacian(field, x)), diag.sum(-1), rtol=1e-4, atol=1e-3)


def test_laplacian_of_a_quadratic_is_exact():
    def field(x):  # f = 3 x^2 - 2 y^2 + x y + 0.5 x: Laplacian 6 - 4 = 2 everywhere
        return (3 * x[..., 0] ** 2 - 2 * x[..., 1] ** 2 + x[..., 0] * x[..., 1] + 0.5 * x[..., 0])[..., None]

    x = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (7, 2)), jnp.float32)
    np.testing.assert_allclose(np.asarray(field_laplacian(field, x)), 2.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(field_second_derivatives(field, x)), [[6.0, -4.0]] * 7, atol=1e-5)
    grad = np.asarray(field_gradient(field, x))
    np.testing.assert_allclose(grad[:, 0], 6 * x[:, 0] + x[:, 1] + 0.5, atol=1e-5)


def test_sobel_and_stencil_targets_of_a_ramp():
    ramp = np.tile(np.arange(16, dtype=np.float32) * 0.01, (16, 1))  # +0.01 per column
    grad = P.sobel_gradient(ramp)[2:-2, 2:-2]
    np.testing.assert_allclose(grad[..., 0], 0.01, atol=1e-6)
    np.testing.assert_allclose(grad[..., 1], 0.0, atol=1e-6)
    assert np.abs(P.discrete_laplacian(ramp)[2:-2, 2:-2]).max() < 1e-6


def test_gradient_fit_recovers_a_tiny_image():
    coords = P.image_grid((16, 16))
    image = (0.5 + 0.3 * np.sin(2.0 * coords[..., 0]) * np.cos(1.5 * coords[..., 1])).astype(np.float32)
    result = P.fit_poisson(image, "gradient", P.poisson_config(steps=300, width=32, depth=2, lr=1e-3, omega0=5.0))
    assert result.fit.history.loss[-1, 0] < 0.1 * result.fit.history.loss[0, 0]
    assert result.psnr > 35.0, result.psnr  # 47 dB measured; omega0 = 30 aliases at 16 px (~16 dB)
    assert result.fitted.shape == result.target.shape == (16, 16, 2)


def test_match_mean_and_affine():
    target = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(P.match_mean(target + 3.0, target), target, atol=1e-6)
    np.testing.assert_allclose(P.match_affine(2.0 * target - 1.0, target), target, atol=1e-5)


def test_bad_input():
    with pytest.raises(InputError, match="supervision"):
        P.fit_poisson(np.zeros((16, 16), np.float32), "divergence")
    with pytest.raises(InputError, match="8x8"):
        P.fit_poisson(np.zeros((4, 4), np.float32))


def test_script_end_to_end_and_bad_flags(tmp_path):
    out = tmp_path / "poisson"
    code, stdout, stderr = run_script("poisson_fit.py", "--size", "16", "--steps", "20", "--width", "16",
                                      "--out", out)
    assert code == 0, stderr
    rows = read_csv(out / "results.csv")
    assert [r["supervision"] for r in rows] == ["gradient", "laplacian"]
    assert (out / "figure.png").stat().st_size > 0 and str(out) in stdout
    bad = tmp_path / "bad"
    code, _, stderr = run_script("poisson_fit.py", "--modes", "curl", "--out", bad)
    assert code == 2 and stderr.strip().count("\n") == 0 and "curl" in stderr
    assert not bad.exists()


def test_operator_step_with_identity_equals_the_library_step():
    from inr_utils.applications.objectives import identity_operator, make_operator_step
    from inr_utils.losses import LOSSES
    from inr_utils.optim import build_optimizer
    from inr_utils.training import make_train_step

    config = P.poisson_config(width=16, depth=1)
    model, (state, key) = build_model(config.model), init_state(config)
    coords = jnp.asarray(P.image_grid((4, 4)).reshape(-1, 2))
    values = jnp.linspace(0, 1, 16, dtype=jnp.float32)[:, None]
    optimizer = build_optimizer(config)
    ours, _ = make_operator_step(model.apply, identity_operator, LOSSES.get("mse"), optimizer)(
        state, (coords, values), key)
    library, _ = make_train_step(model.apply, LOSSES.get("mse"), optimizer)(state, (coords, values), key)
    for a, b in zip(jax.tree.leaves(ours.params), jax.tree.leaves(library.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def test_fit_operator_refuses_a_target_of_the_wrong_shape():
    from inr_utils.applications.objectives import fit_operator, identity_operator

    coords = P.image_grid((4, 4)).reshape(-1, 2)
    with pytest.raises(InputError, match="shape"):
        fit_operator(P.poisson_config(steps=2, width=8, depth=1), identity_operator, coords, np.zeros((15, 1)))
    with pytest.raises(InputError, match="NaN"):
        fit_operator(P.poisson_config(steps=2, width=8, depth=1), identity_operator, coords,
                     np.full((16, 1), np.nan))
