"""Every registered layer, encoding and model preset composes with JAX's transformations.

The models are built from the registries (:data:`LAYERS`, :data:`ENCODINGS`, :data:`MODEL_PRESETS`), so a newly
registered component is covered without editing this file. Each tiny model (width 8, depth 1, small encodings)
runs in float64 and is checked for: ``jax.grad``, ``jax.jvp``, ``jax.jacfwd``, ``jax.jacrev`` and
``jax.hessian`` with respect to the coordinates and to the parameters, against central finite differences and
against each other; ``jax.vmap`` over a batch of coordinates and over a stack of parameter sets; all of it under
``jax.jit`` (and, for one model, op by op with the same values).
"""

from __future__ import annotations

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from model_components.catalog import ENCODINGS, LAYERS
from model_components.inrs import build_model, model_config
from model_components.layers import Linear, mixed_precision_matmul
from model_components.presets import MODEL_PRESETS
from model_components.wave_layers import finer

#: Small options for encodings whose defaults are large (the loop covers every registered encoding anyway).
TINY_ENCODING_OPTIONS = {
    "nerf": {"num_frequencies": 2},
    "fourier": {"num_features": 4, "scale": 1.0},
    "multiscale_fourier": {"num_features": 2, "scales": (1.0, 2.0)},
    "lattice_fourier": {"max_frequency": 1},
    # levels of 2 and 4 cells per axis; the second one (25 vertices > 16 rows) is hashed
    "hashgrid": {"num_levels": 2, "features_per_level": 2, "log2_table_size": 4, "base_resolution": 2,
                 "max_resolution": 4, "init_scale": 0.5},
}
#: Options per layer type for the tiny models (none needed so far; the paper defaults are used).
TINY_LAYER_OPTIONS: dict[str, dict] = {
    # FINER's default (as in its reference code) treats |z| + 1 as a constant when differentiating, so its
    # derivatives are by design not those of the function; the true ones are checked here.
    "finer": {"scale_grad": True},
    # INCODE's harmonizer at its default size (~30k weights) would make the parameter Hessian 30k x 30k; a tiny
    # one with weights large enough that (a, b, c, d) depend on them visibly.
    "incode": {"thumbnail": 16, "harmonizer_channels": (2,), "harmonizer_hidden": (3,), "harmonizer_std": 0.3},
}

# Hash grid cells are 1/2 and 1/4 of [0, 1] wide: these points lie well inside cells, so finite differences
# of the piecewise-bilinear encoding do not straddle a cell boundary.
POINTS = np.array([[0.1234, -0.3456], [-0.6789, 0.2468], [0.4321, 0.8765]])


def test_override_dicts_name_registered_entries():
    assert set(TINY_ENCODING_OPTIONS) <= set(ENCODINGS.names())
    assert set(TINY_LAYER_OPTIONS) <= set(LAYERS.names())


def _tiny(config_kwargs: dict) -> dict:
    """``model_config`` keyword arguments of a tiny float32 version of a config."""
    preset = MODEL_PRESETS[config_kwargs["model"]]
    encoding = config_kwargs.get("encoding", preset.get("encoding"))
    layer = config_kwargs.get("layer", preset.get("layer"))
    kwargs = dict(config_kwargs, width=8, depth=1, dtype="float32")
    if encoding in TINY_ENCODING_OPTIONS:
        kwargs["encoding_options"] = TINY_ENCODING_OPTIONS[encoding]
    kwargs.update(TINY_LAYER_OPTIONS.get(layer, {}))
    return kwargs


def _cases() -> dict[str, dict]:
    """Every preset, then every layer (on raw coordinates) and every encoding (before tanh layers) that no preset
    uses."""
    cases = {f"preset-{name}": _tiny({"model": name}) for name in sorted(MODEL_PRESETS)}
    used = {(kind, MODEL_PRESETS[name].get(kind)) for name in MODEL_PRESETS for kind in ("layer", "encoding")}
    for name in LAYERS.names():
        if ("layer", name) not in used:
            cases[f"layer-{name}"] = _tiny({"model": "siren", "layer": name, "encoding": "none"})
    for name in ENCODINGS.names():
        if ("encoding", name) not in used:
            cases[f"encoding-{name}"] = _tiny({"model": "relu_pe", "encoding": name, "activation": "tanh"})
    return cases


CASES = _cases()


def _to64(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating)
                                  else a, tree)


def _probe(f, theta, x, xs, thetas, w, u, v):
    """All transformations of ``f(theta, x) -> (c,)`` at one point, plus central finite differences.

    ``xs[0]`` is ``x`` and ``thetas[0]`` is ``theta``, so the vmapped results can be checked against the
    unbatched ones; the finite differences evaluate ``f`` at stacked perturbed points with ``vmap``.
    """
    s = lambda t, p: jnp.vdot(w, f(t, p))  # noqa: E731  (a scalar function of both arguments)
    grad_x = jax.grad(s, argnums=1)
    grad_theta = jax.grad(s)
    h1 = h2 = 1e-6
    eye = jnp.eye(x.size, dtype=x.dtype)
    steps1, steps2 = jnp.concatenate([eye, -eye]) * h1, jnp.concatenate([eye, -eye]) * h2
    n = x.size
    f_x = jax.vmap(lambda p: f(theta, p))(x + steps1)  # (2d, c)
    g_x = jax.vmap(lambda p: grad_x(theta, p))(x + steps2)  # (2d, d)
    f_t = jax.vmap(lambda t: f(t, x))(theta + h1 * jnp.stack([u, -u]))
    g_t = jax.vmap(lambda t: grad_theta(t, x))(theta + h2 * jnp.stack([v, -v]))
    return {
        "y": f(theta, x),
        # coordinates
        "jacfwd_x": jax.jacfwd(f, argnums=1)(theta, x),
        "jacrev_x": jax.jacrev(f, argnums=1)(theta, x),
        "jvp_x": jax.jvp(lambda p: f(theta, p), (x,), (v[:n],))[1],
        "grad_x": grad_x(theta, x),
        "hessian_x": jax.hessian(s, argnums=1)(theta, x),
        # parameters
        "jacfwd_theta": jax.jacfwd(f)(theta, x),
        "jacrev_theta": jax.jacrev(f)(theta, x),
        "jvp_theta": jax.jvp(lambda t: f(t, x), (theta,), (u,))[1],
        "grad_theta": grad_theta(theta, x),
        "hessian_theta": jax.hessian(s)(theta, x),
        # vmap over coordinates and over parameter sets
        "vmap_x": jax.vmap(lambda p: f(theta, p))(xs),
        "vmap_theta": jax.vmap(lambda t: f(t, x))(thetas),
        "y_x1": f(theta, xs[1]),
        "y_theta1": f(thetas[1], x),
        # central differences
        "fd_jac_x": ((f_x[:n] - f_x[n:]) / (2 * h1)).T,
        "fd_hessian_x": ((g_x[:n] - g_x[n:]) / (2 * h2)).T,
        "fd_jvp_theta": (f_t[0] - f_t[1]) / (2 * h1),
        "fd_hvp_theta": (g_t[0] - g_t[1]) / (2 * h2),
    }


#: Cheaper XLA compilation for the one-off test programs (the values do not depend on it).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}


def _close(actual, desired, rtol, what):
    """``|actual - desired| <= rtol * (max |desired| + 1e-3)`` elementwise (scale-aware absolute tolerance)."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape, what
    assert np.all(np.isfinite(actual)), f"{what}: not finite"
    scale = np.max(np.abs(desired)) + 1e-3
    err = np.max(np.abs(actual - desired)) / scale
    assert err <= rtol, f"{what}: relative error {err:.2e} > {rtol:.0e}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_transformation_matches_finite_differences(case):
    with jax.enable_x64(True):
        model = build_model(model_config(**CASES[case]))
        x = jnp.asarray(POINTS[0])
        variables = _to64(model.init(jax.random.key(0), jnp.asarray(POINTS[:1], jnp.float32)))
        params = variables["params"]
        constants = {k: v for k, v in variables.items() if k != "params"}
        theta, unravel = ravel_pytree(params)
        f = lambda t, p: model.apply({"params": unravel(t), **constants}, p)  # noqa: E731
        keys = jax.random.split(jax.random.key(1), 4)
        w = jax.random.normal(keys[0], (model.out_dim,), jnp.float64)
        u = jax.random.normal(keys[1], theta.shape, jnp.float64)
        v = jax.random.normal(keys[2], theta.shape, jnp.float64)
        thetas = jnp.stack([theta, theta + 0.01 * jax.random.normal(keys[3], theta.shape, jnp.float64)])
        args = (theta, x, jnp.asarray(POINTS), thetas, w, u, v)
        probe = jax.jit(lambda *a: _probe(f, *a)).lower(*args).compile(FAST_COMPILE)
        e = {k: np.asarray(a) for k, a in probe(*args).items()}
        w, u, v = np.asarray(w), np.asarray(u), np.asarray(v)

    # transformations agree with each other (exactly up to rounding)
    _close(e["jacrev_x"], e["jacfwd_x"], 1e-10, f"{case}: jacrev_x vs jacfwd_x")
    _close(e["jvp_x"], e["jacfwd_x"] @ v[:x.size], 1e-10, f"{case}: jvp_x")
    _close(e["grad_x"], w @ e["jacrev_x"], 1e-10, f"{case}: grad_x")
    _close(e["hessian_x"], e["hessian_x"].T, 1e-9, f"{case}: hessian_x symmetric")
    _close(e["jacrev_theta"], e["jacfwd_theta"], 1e-10, f"{case}: jacrev_theta vs jacfwd_theta")
    _close(e["jvp_theta"], e["jacfwd_theta"] @ u, 1e-10, f"{case}: jvp_theta")
    _close(e["grad_theta"], w @ e["jacrev_theta"], 1e-10, f"{case}: grad_theta")
    _close(e["hessian_theta"], e["hessian_theta"].T, 1e-9, f"{case}: hessian_theta symmetric")
    # vmap equals the unbatched calls
    _close(e["vmap_x"][0], e["y"], 1e-12, f"{case}: vmap over coordinates")
    _close(e["vmap_x"][1], e["y_x1"], 1e-12, f"{case}: vmap over coordinates")
    _close(e["vmap_theta"][0], e["y"], 1e-12, f"{case}: vmap over parameter sets")
    _close(e["vmap_theta"][1], e["y_theta1"], 1e-12, f"{case}: vmap over parameter sets")
    # derivatives equal finite differences (float64; the tolerance covers the polynomial sine's 1e-7 error)
    _close(e["jacfwd_x"], e["fd_jac_x"], 1e-5, f"{case}: jacobian_x vs finite differences")
    _close(e["hessian_x"], e["fd_hessian_x"], 1e-4, f"{case}: hessian_x vs finite differences")
    _close(e["jvp_theta"], e["fd_jvp_theta"], 1e-5, f"{case}: jvp_theta vs finite differences")
    _close(e["hessian_theta"] @ v, e["fd_hvp_theta"], 1e-4, f"{case}: hessian_theta vs finite differences")
    assert np.abs(e["jacfwd_x"]).max() > 0 and np.abs(e["grad_theta"]).max() > 0  # not trivially zero


def test_eager_transformations_equal_jitted_ones():
    # op by op (no jit) the transformations give the jitted values; one model, as eager evaluation is slow
    model = build_model(model_config(**CASES["preset-siren"]))
    x = jnp.asarray(POINTS[0], jnp.float32)
    variables = model.init(jax.random.key(0), x[None])
    f = lambda p: jnp.sum(model.apply(variables, p))  # noqa: E731
    g = lambda v: jnp.sum(model.apply(v, x))  # noqa: E731

    def derivatives(p, v):
        return [jax.jvp(f, (p,), (jnp.ones(2),))[1], jax.grad(g)(v)]

    for got, want in zip(jax.tree_util.tree_leaves(derivatives(x, variables)),
                         jax.tree_util.tree_leaves(jax.jit(derivatives)(x, variables)), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fan_in,features", [(2, 16), (32, 16), (16, 16), (32, 3), (16, 2)])
def test_linear_float32_derivatives_equal_plain_dot(fan_in, features):
    # every branch of the custom JVP (raw coordinates, narrow outputs, wide products) against a plain jnp.dot
    x = jax.random.normal(jax.random.key(0), (5, 7, fan_in))
    layer = Linear(features)
    params = layer.init(jax.random.key(1), x)["params"]
    target = jax.random.normal(jax.random.key(2), (5, 7, features))

    def derivatives(apply, p, a):
        loss = lambda p, a: jnp.sum(jnp.sin(apply(p, a) - target) ** 2)  # noqa: E731
        point_loss = lambda p, a: jnp.sum(jnp.sin(apply(p, a) - target[0, 0]) ** 2)  # noqa: E731
        return [jax.grad(loss, argnums=(0, 1))(p, a),
                jax.jvp(lambda b: apply(p, b), (a,), (jnp.cos(a),))[1],
                jax.jvp(lambda q: apply(q, a), (p,), (p,))[1],
                jax.hessian(point_loss, argnums=(0, 1))(p, a[0, 0])]

    def run(apply):
        return jax.jit(partial(derivatives, apply)).lower(params, x).compile(FAST_COMPILE)(params, x)

    got = run(lambda p, a: layer.apply({"params": p}, a))
    want = run(lambda p, a: a @ p["kernel"] + p["bias"])
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-4)


def test_bfloat16_products_compose_and_stay_close_to_float32():
    config = model_config("relu_pe", width=16, depth=1, num_frequencies=2, dtype="float32")
    model32, model16 = build_model(config), build_model(model_config(base=config, dtype="bfloat16"))
    variables = model32.init(jax.random.key(0), jnp.zeros((1, 2)))
    x = jnp.asarray(POINTS[0], jnp.float32)

    def run(model):
        def derivatives(v, p):
            f = lambda p: jnp.sum(model.apply(v, p))  # noqa: E731
            g = lambda v: jnp.sum(model.apply(v, p))  # noqa: E731
            return [jax.hessian(f)(p), jax.jvp(f, (p,), (jnp.ones(2),))[1],
                    jax.jacfwd(g)(v)["params"]["head"]["kernel"], jax.grad(g)(v)["params"]["head"]["kernel"]]

        return jax.jit(derivatives).lower(variables, x).compile(FAST_COMPILE)(variables, x)

    for got, want in zip(run(model16), run(model32), strict=True):
        assert np.all(np.isfinite(np.asarray(got)))
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0.1, atol=0.05 * np.abs(want).max())


def test_mixed_precision_matmul_second_derivatives():
    # hessian of a scalar of x @ W, w.r.t. x (narrow output) and W (wide product), equals the plain product's
    x = jax.random.normal(jax.random.key(0), (3, 8))

    @jax.jit
    def hessians(a, b):
        fast = lambda a, b: jnp.sum(jnp.tanh(mixed_precision_matmul(a, b, jnp.float32)))  # noqa: E731
        plain = lambda a, b: jnp.sum(jnp.tanh(a @ b))  # noqa: E731
        return [jax.hessian(f, argnum)(a, b) for f in (fast, plain) for argnum in (0, 1)]

    for features in (3, 16):
        fx, fw, px, pw = hessians(x, jax.random.normal(jax.random.key(1), (8, features)))
        np.testing.assert_allclose(np.asarray(fx), np.asarray(px), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(fw), np.asarray(pw), rtol=1e-4, atol=1e-5)


def test_finer_default_derivative_treats_the_scale_as_constant():
    # scale_grad=False (FINER's reference default): d/dz = omega0 (|z| + 1) cos(omega0 (|z| + 1) z) in every mode
    z = jnp.array([-0.7, -0.1, 0.05, 0.4])
    f = lambda t: finer(t, 3.0, scale_grad=False)  # noqa: E731
    want = 3.0 * (jnp.abs(z) + 1) * jnp.cos(3.0 * (jnp.abs(z) + 1) * z)
    grad, tangent = jax.jit(lambda t: (jax.vmap(jax.grad(f))(t), jax.jvp(f, (t,), (jnp.ones(4),))[1]))(z)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(want), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(tangent), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_cases_cover_every_registered_name():
    configs = [model_config(**kwargs) for kwargs in CASES.values()]
    assert {c.layer for c in configs} == set(LAYERS.names())
    assert {c.encoding for c in configs} == set(ENCODINGS.names())
    assert {c.model for c in configs} == set(MODEL_PRESETS)
    assert all(isinstance(build_model(c), nn.Module) for c in configs)
