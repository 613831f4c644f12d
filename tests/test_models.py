"""Whole INRs: initialisation, parameter counts, shapes, gradients, mixed precision, configs, registries."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from model_components import initializers
from model_components.catalog import LAYERS
from model_components.inrs import ModelConfig, build_model, count_params, model_config
from model_components.layers import DenseLayer, Linear, SineLayer, mixed_precision_matmul
from model_components.presets import MODEL_PRESETS
from model_components.registry import Registry

PRESETS = sorted(MODEL_PRESETS)


def _small(name: str, **overrides) -> ModelConfig:
    """A small preset model; float32 unless ``dtype`` is given (the presets' ``auto`` is hardware dependent)."""
    extra = {"ffn": dict(fourier_features=16), "relu_pe": dict(num_frequencies=4)}.get(name, {})
    return model_config(name, **{"width": 32, "depth": 2, "dtype": "float32", **extra, **overrides})


def _init(config: ModelConfig, key=None, shape=(1, 2)):
    model = build_model(config)
    return model, model.init(key if key is not None else jax.random.key(0), jnp.zeros(shape, jnp.float32))


# ------------------------------------------------------------------------------------------ initialisation


def test_siren_init_statistics():
    width, omega0 = 256, 30.0
    _, variables = _init(model_config("siren", width=width, depth=3))
    params = variables["params"]
    first = np.asarray(params["layer_0"]["Linear_0"]["kernel"])
    assert first.shape == (2, width)
    bound = 1.0 / 2  # 1 / fan_in
    assert np.all(np.abs(first) <= bound)
    assert abs(first.std() / (bound / math.sqrt(3)) - 1) < 0.1  # uniform: std = bound / sqrt(3)
    assert np.abs(first).max() > 0.9 * bound  # uses the whole range

    hidden_bound = math.sqrt(6.0 / width) / omega0
    for name in ("layer_1", "layer_2", "layer_3"):
        kernel = np.asarray(params[name]["Linear_0"]["kernel"])
        assert kernel.shape == (width, width)
        assert np.all(np.abs(kernel) <= hidden_bound)
        assert abs(kernel.std() / (hidden_bound / math.sqrt(3)) - 1) < 0.03
        assert abs(kernel.mean()) < 0.02 * hidden_bound
    head = np.asarray(params["head"]["kernel"])
    assert head.shape == (width, 3)
    assert np.all(np.abs(head) <= hidden_bound)  # SIREN head uses the hidden-layer scale
    # biases: PyTorch default U(-1/sqrt(n), 1/sqrt(n)) as in the reference code
    assert np.all(np.abs(np.asarray(params["layer_0"]["Linear_0"]["bias"])) <= 1 / math.sqrt(2))
    assert np.all(np.abs(np.asarray(params["layer_1"]["Linear_0"]["bias"])) <= 1 / math.sqrt(width))
    assert np.all(np.abs(np.asarray(params["head"]["bias"])) <= 1 / math.sqrt(width))


def test_relu_pe_init_is_torch_default():
    _, variables = _init(model_config("relu_pe", width=128, depth=1))
    params = variables["params"]
    k0 = np.asarray(params["layer_0"]["Linear_0"]["kernel"])  # fan_in 42
    assert k0.shape == (42, 128)
    assert np.all(np.abs(k0) <= 1 / math.sqrt(42))
    assert abs(k0.std() / (1 / math.sqrt(42) / math.sqrt(3)) - 1) < 0.05
    k1 = np.asarray(params["layer_1"]["Linear_0"]["kernel"])
    assert np.all(np.abs(k1) <= 1 / math.sqrt(128))


def test_initializer_functions():
    key = jax.random.key(3)
    for init, bound in ((initializers.siren_first_layer_init(4), 0.25),
                        (initializers.siren_hidden_init(24, 30.0), 0.5 / 30.0),
                        (initializers.torch_default_init(16), 0.25)):
        w = np.asarray(init(key, (4000,), jnp.float32))
        assert np.all(np.abs(w) <= bound) and np.abs(w).max() > 0.99 * bound


# ------------------------------------------------------------------------------------------ sizes and shapes


def test_relu_pe_param_count_matches_pytorch_reference():
    # 42*256+256 + 4*(256*256+256) + 256*3+3, the PyTorch reference MLP with 5 hidden Linear layers.
    _, variables = _init(model_config("relu_pe"))
    assert count_params(variables["params"]) == 274947
    assert 42 * 256 + 256 + 4 * (256 * 256 + 256) + 256 * 3 + 3 == 274947


def test_param_counts_of_other_presets():
    _, v = _init(model_config("siren"))
    assert count_params(v["params"]) == (2 * 256 + 256) + 3 * (256 * 256 + 256) + (256 * 3 + 3)
    _, v = _init(model_config("ffn"))
    assert count_params(v["params"]) == (512 * 256 + 256) + 3 * (256 * 256 + 256) + (256 * 3 + 3)
    assert v["constants"]["encoding"]["B"].shape == (2, 256)  # not counted as a parameter


@pytest.mark.parametrize("name", PRESETS)
def test_output_shapes_any_leading_axes(name):
    model, variables = _init(_small(name))
    for shape in ((7, 2), (4, 5, 2), (2,)):
        out = jax.eval_shape(model.apply, variables, jax.ShapeDtypeStruct(shape, jnp.float32))
        assert out.shape == shape[:-1] + (3,)
        assert out.dtype == jnp.float32
    one_channel, v1 = _init(_small(name, out_dim=1))
    assert jax.eval_shape(one_channel.apply, v1, jax.ShapeDtypeStruct((6, 2), jnp.float32)).shape == (6, 1)


@pytest.mark.parametrize("name", PRESETS)
def test_leading_axes_do_not_change_values(name):
    model, variables = _init(_small(name))
    coords = jax.random.uniform(jax.random.key(1), (4, 5, 2), minval=-1, maxval=1)
    apply = jax.jit(model.apply)
    batched = apply(variables, coords)
    assert batched.shape == (4, 5, 3)
    flat = apply(variables, coords.reshape(20, 2)).reshape(4, 5, 3)
    np.testing.assert_allclose(np.asarray(batched), np.asarray(flat), atol=1e-6)


def test_output_ranges():
    coords = jax.random.uniform(jax.random.key(2), (256, 2), minval=-1, maxval=1)
    for name in ("relu_pe", "ffn"):
        model, variables = _init(_small(name))
        out = np.asarray(model.apply(variables, coords))
        assert np.all((out > 0) & (out < 1))  # sigmoid
    model, variables = _init(_small("siren"))
    out = np.asarray(model.apply(variables, coords))
    assert abs(out.mean() - 0.5) < 0.25  # centred on mid-grey by the 0.5 offset


def test_integer_coords_rejected():
    model, variables = _init(_small("relu_pe"))
    with pytest.raises(TypeError, match="float"):
        model.apply(variables, jnp.zeros((3, 2), jnp.int32))


@pytest.mark.parametrize("name", PRESETS)
def test_finite_nonzero_gradients(name):
    model, variables = _init(_small(name))
    coords = jax.random.uniform(jax.random.key(1), (64, 2), minval=-1, maxval=1)
    target = jnp.full((64, 3), 0.3)

    def loss(params):
        return jnp.mean((model.apply({**variables, "params": params}, coords) - target) ** 2)

    grads = jax.grad(loss)(variables["params"])
    leaves = jax.tree_util.tree_leaves(grads)
    assert len(leaves) == len(jax.tree_util.tree_leaves(variables["params"]))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert all(float(jnp.max(jnp.abs(g))) > 0 for g in leaves)


def test_siren_fast_sine_matches_jnp_sin():
    layer_fast, layer_exact = SineLayer(16, omega0=30.0, fast=True), SineLayer(16, omega0=30.0, fast=False)
    x = jax.random.uniform(jax.random.key(0), (32, 8), minval=-1, maxval=1)
    variables = layer_fast.init(jax.random.key(1), x)
    np.testing.assert_allclose(np.asarray(layer_fast.apply(variables, x)),
                               np.asarray(layer_exact.apply(variables, x)), atol=1e-5)


# ------------------------------------------------------------------------------------------ mixed precision


@pytest.mark.parametrize("name, atol", [("relu_pe", 0.02), ("ffn", 0.02), ("siren", 0.1)])
def test_bfloat16_close_to_float32(name, atol):
    model32, variables = _init(_small(name))
    model16 = build_model(_small(name, dtype="bfloat16"))
    v16 = model16.init(jax.random.key(0), jnp.zeros((1, 2)))
    # same parameters (float32 storage) whatever the compute dtype
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(lambda a, b: bool(jnp.all(a == b)), variables, v16))
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(v16))
    coords = jax.random.uniform(jax.random.key(1), (128, 2), minval=-1, maxval=1)
    out32, out16 = model32.apply(variables, coords), model16.apply(variables, coords)
    assert out16.dtype == jnp.float32
    err = float(jnp.max(jnp.abs(out32 - out16)))
    assert err < atol
    assert err > 0  # bfloat16 really was used

    def loss(params, model):
        return jnp.mean((model.apply({**variables, "params": params}, coords) - 0.5) ** 2)

    g16 = jax.grad(loss)(variables["params"], model16)
    g32 = jax.grad(loss)(variables["params"], model32)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(g16))
    assert all(g.dtype == jnp.float32 for g in jax.tree_util.tree_leaves(g16))
    flat16 = jnp.concatenate([g.ravel() for g in jax.tree_util.tree_leaves(g16)])
    flat32 = jnp.concatenate([g.ravel() for g in jax.tree_util.tree_leaves(g32)])
    cos = float(jnp.dot(flat16, flat32) / (jnp.linalg.norm(flat16) * jnp.linalg.norm(flat32)))
    assert cos > 0.95


def test_auto_dtype_resolution():
    from model_components.precision import resolve_dtype

    assert resolve_dtype("float32") == "float32" and resolve_dtype("bfloat16") == "bfloat16"
    resolved = resolve_dtype("auto")
    assert resolved in ("float32", "bfloat16")
    assert model_config("relu_pe").dtype == "auto"
    assert model_config("siren").dtype == "float32"  # bfloat16 phase error at omega0 = 30 is too large
    assert build_model(model_config("relu_pe")).dtype == resolved
    assert build_model(model_config("siren")).dtype == "float32"
    if jax.default_backend() == "cpu":
        from model_components.precision import cpu_has_native_bf16

        assert resolved == ("bfloat16" if cpu_has_native_bf16() else "float32")


def test_mixed_precision_matmul_gradients():
    x = jax.random.normal(jax.random.key(0), (16, 8))
    w = jax.random.normal(jax.random.key(1), (8, 4))
    y = mixed_precision_matmul(x, w, jnp.bfloat16)
    assert y.dtype == jnp.float32 and y.shape == (16, 4)
    np.testing.assert_allclose(np.asarray(y), np.asarray(x @ w), rtol=0.05, atol=0.05)
    gx, gw = jax.grad(lambda a, b: jnp.sum(mixed_precision_matmul(a, b, jnp.bfloat16) ** 2), (0, 1))(x, w)
    ex, ew = jax.grad(lambda a, b: jnp.sum((a @ b) ** 2), (0, 1))(x, w)
    assert gx.shape == x.shape and gw.shape == w.shape
    np.testing.assert_allclose(np.asarray(gw), np.asarray(ew), rtol=0.05, atol=0.2)
    np.testing.assert_allclose(np.asarray(gx), np.asarray(ex), rtol=0.05, atol=0.2)


@pytest.mark.parametrize("fan_in,features", [(2, 32), (32, 32), (32, 3), (256, 3)])
def test_mixed_precision_matmul_float32_gradients_match_autodiff(fan_in, features):
    # both kernel-gradient formulations (x^T g, and (g^T x)^T for narrow outputs) against plain autodiff
    x = jax.random.normal(jax.random.key(0), (5, 40, fan_in))
    w = jax.random.normal(jax.random.key(1), (fan_in, features))
    target = jax.random.normal(jax.random.key(2), (5, 40, features))
    gx, gw = jax.grad(lambda a, b: jnp.sum((mixed_precision_matmul(a, b, jnp.float32) - target) ** 2), (0, 1))(x, w)
    ex, ew = jax.grad(lambda a, b: jnp.sum((a @ b - target) ** 2), (0, 1))(x, w)
    assert gw.shape == w.shape and gw.dtype == w.dtype
    np.testing.assert_allclose(np.asarray(gw), np.asarray(ew), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.asarray(gx), np.asarray(ex), rtol=1e-4, atol=1e-3)


def test_linear_matches_manual_affine():
    layer = Linear(5)
    x = jax.random.normal(jax.random.key(0), (3, 4))
    variables = layer.init(jax.random.key(1), x)
    p = variables["params"]
    np.testing.assert_allclose(np.asarray(layer.apply(variables, x)),
                               np.asarray(x) @ np.asarray(p["kernel"]) + np.asarray(p["bias"]), atol=1e-5)


# ------------------------------------------------------------------------------------------ configs


@pytest.mark.parametrize("name", PRESETS)
def test_model_config_round_trip(name):
    config = model_config(name, width=48, depth=2, dtype="bfloat16")
    assert config.model == name and config.width == 48 and config.dtype == "bfloat16"
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    # a rebuilt config makes the same network
    m1, v1 = _init(config)
    m2, v2 = _init(ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))))
    assert m1 == m2
    coords = jnp.linspace(-1, 1, 10).reshape(5, 2)
    np.testing.assert_array_equal(np.asarray(m1.apply(v1, coords)), np.asarray(m2.apply(v2, coords)))


def test_model_config_presets_fill_defaults():
    siren = model_config("siren")
    assert (siren.encoding, siren.output_activation, siren.depth) == ("none", "identity", 3)
    ffn = model_config("ffn", width=None)  # None overrides are ignored
    assert (ffn.encoding, ffn.width, ffn.encoding_options["num_features"]) == ("fourier", 256, 256)


def test_model_config_routes_flat_overrides():
    siren = model_config("siren", omega0=20.0)
    assert siren.layer_options["omega0"] == 20.0 and siren.first_layer_options["omega0"] == 20.0
    siren = model_config("siren", omega0=20.0, first_omega0=40.0)
    assert siren.layer_options["omega0"] == 20.0 and siren.first_layer_options["omega0"] == 40.0
    ffn = model_config("ffn", fourier_scale=3.0, fourier_features=8)
    assert ffn.encoding_options == {"num_features": 8, "scale": 3.0}
    # switching the encoding drops the old encoding's options
    pe = model_config("ffn", encoding="nerf", num_frequencies=4)
    assert pe.encoding_options == {"num_frequencies": 4}
    # a modified config keeps everything not overridden
    again = model_config(base=siren, width=64)
    assert again.width == 64 and again.first_layer_options["omega0"] == 40.0
    with pytest.raises(ValueError, match="num_frequencies"):
        model_config("siren", num_frequencies=3)  # siren has no NeRF encoding
    with pytest.raises(ValueError, match="valid options"):
        model_config("siren", layer_options={"omgea0": 3.0})


def test_unknown_field_rejected_with_valid_fields():
    with pytest.raises(ValueError) as err:
        ModelConfig.from_dict({"widht": 3})
    assert "widht" in str(err.value) and "width" in str(err.value) and "depth" in str(err.value)


def test_unknown_model_rejected_with_choices():
    for make in (lambda: model_config("nosuch"), lambda: ModelConfig(model="nosuch").validate(),
                 lambda: ModelConfig.from_dict({"model": "nosuch"})):
        with pytest.raises(ValueError) as err:
            make()
        assert "nosuch" in str(err.value)
        assert all(name in str(err.value) for name in ("ffn", "relu_pe", "siren"))


def test_unknown_encoding_rejected_with_choices():
    with pytest.raises(ValueError) as err:
        model_config("relu_pe", encoding="hash")
    assert "hash" in str(err.value) and all(n in str(err.value) for n in ("fourier", "nerf", "none"))
    with pytest.raises(ValueError, match="relu"):
        model_config("relu_pe", activation="relux")
    with pytest.raises(ValueError, match="bfloat16"):
        model_config("relu_pe", dtype="float64")


@pytest.mark.parametrize("model, field, value", [
    ("relu_pe", "width", 0), ("relu_pe", "depth", -1), ("relu_pe", "out_dim", 0), ("siren", "omega0", 0.0),
    ("ffn", "fourier_scale", -1.0), ("relu_pe", "num_frequencies", -2)])
def test_bad_numbers_rejected(model, field, value):
    with pytest.raises(ValueError, match=field):
        model_config(model, **{field: value})


def test_depth_zero_has_one_hidden_layer():
    _, v = _init(model_config("relu_pe", width=8, depth=0, num_frequencies=0))
    assert sorted(v["params"]) == ["head", "layer_0"]


# ------------------------------------------------------------------------------------------ registries


def test_registry_duplicate_and_unknown_names():
    reg: Registry[int] = Registry("widget")
    reg.register("a")(1)
    reg.register("b")(2)
    assert reg.get("a") == 1 and "b" in reg and list(reg) == ["a", "b"]
    with pytest.raises(KeyError, match="already registered"):
        reg.register("a")(3)
    assert reg.get("a") == 1  # the first registration survives
    with pytest.raises(KeyError) as err:
        reg.get("c")
    assert "widget" in str(err.value) and "a, b" in str(err.value)


def test_layer_registry():
    assert LAYERS.get("dense") is DenseLayer and LAYERS.get("sine") is SineLayer
    with pytest.raises(KeyError) as err:
        LAYERS.get("conv")
    assert "'conv'" in str(err.value) and all(f"{name}," in str(err.value) + "," for name in LAYERS.names())
