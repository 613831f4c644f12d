"""Parameter templates: shapes without init, flatten/unflatten round trips (single, batched, vmapped)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from model_components.inrs import build_model, count_params, model_config
from model_components.templates import ParamTemplate, TreeTemplate, param_template


def _variables(config, seed=0):
    model = build_model(config)
    return model, model.init(jax.random.key(seed), jnp.zeros((1, config.in_dim), jnp.float32))


@pytest.mark.parametrize("name, extra", [("ffn", dict(fourier_features=4)), ("siren", {}),
                                         ("gauss", dict(learnable=True)), ("hashgrid", dict(num_levels=2))])
def test_template_matches_a_real_init(name, extra):
    config = model_config(name, width=8, depth=1, dtype="float32", in_dim=3, out_dim=2, **extra)
    template = param_template(config)
    assert isinstance(template, ParamTemplate)
    _, variables = _variables(config)
    params = variables["params"]
    constants = {k: v for k, v in variables.items() if k != "params"}
    assert jax.tree.structure(template.params.tree) == jax.tree.structure(params)
    assert jax.tree.map(lambda s: (s.shape, s.dtype), template.params.tree) == jax.tree.map(
        lambda x: (x.shape, x.dtype), params)
    assert jax.tree.map(lambda s: s.shape, template.constants.tree) == jax.tree.map(lambda x: x.shape, constants)
    assert template.size == count_params(params)
    # the same template from the module
    assert param_template(build_model(config), in_dim=3).size == template.size


def test_flatten_unflatten_round_trip_and_layout():
    config = model_config("siren", width=6, depth=1, in_dim=1, out_dim=1)
    template = param_template(config)
    _, variables = _variables(config)
    params = variables["params"]
    vector = template.flatten(params)
    assert vector.shape == (template.size,) and vector.dtype == jnp.float32
    # layout: tree_leaves order, each leaf raveled
    np.testing.assert_array_equal(np.asarray(vector),
                                  np.concatenate([np.ravel(x) for x in jax.tree.leaves(params)]))
    back = template.unflatten(vector)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), back, params)
    # a vector emitted by something else (a hypernetwork) gives a working parameter set
    model = build_model(config)
    other = template.unflatten(jnp.linspace(-0.1, 0.1, template.size))
    out = model.apply({**variables, "params": other}, jnp.zeros((4, 1)))
    assert out.shape == (4, 1)


def test_batches_of_vectors_and_vmap_agree():
    config = model_config("relu_pe", width=8, depth=1, num_frequencies=2, out_dim=3)
    template = param_template(config)
    batch = jnp.stack([template.flatten(_variables(config, seed)[1]["params"]) for seed in range(4)])  # (4, size)
    stacked = template.unflatten(batch)  # leaves (4, *shape)
    vmapped = jax.vmap(template.unflatten)(batch)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), stacked, vmapped)
    assert jax.tree.leaves(stacked)[0].shape[0] == 4
    np.testing.assert_array_equal(np.asarray(template.flatten(stacked)), np.asarray(batch))
    np.testing.assert_array_equal(np.asarray(jax.vmap(template.flatten)(stacked)), np.asarray(batch))
    # two batch axes, and inside jit and grad (a hypernetwork's loss differentiates through unflatten)
    assert jax.tree.leaves(template.unflatten(batch.reshape(2, 2, -1)))[0].shape[:2] == (2, 2)
    model = build_model(config)

    def loss(vector):
        return jnp.sum(model.apply({"params": template.unflatten(vector)}, jnp.ones((5, 2))) ** 2)

    grad = jax.jit(jax.grad(loss))(batch[0])
    assert grad.shape == (template.size,) and bool(jnp.all(jnp.isfinite(grad)))


def test_template_errors():
    template = TreeTemplate({"a": jax.ShapeDtypeStruct((2, 3), jnp.float32),
                             "b": jax.ShapeDtypeStruct((), jnp.float32)})
    assert template.size == 7 and template.sizes == [6, 1]
    with pytest.raises(ValueError, match="length 7"):
        template.unflatten(jnp.zeros(6))
    with pytest.raises(ValueError, match="structure"):
        template.flatten({"a": jnp.zeros((2, 3))})
    with pytest.raises(ValueError, match="does not end in"):
        template.flatten({"a": jnp.zeros((3, 2)), "b": jnp.zeros(())})
    with pytest.raises(ValueError, match="in_dim"):
        param_template(build_model(model_config("siren")))
