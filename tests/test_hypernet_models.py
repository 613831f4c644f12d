"""Tests of the hypernetwork models of model_components: the weight hypernetwork (full and low-rank) and Trans-INR.

Every model keeps the hypernetwork contract: ``encode`` emits the exact parameter template of its INR with a
leading batch axis, and ``apply`` equals the INR built directly with ``build_model`` from those variables.
"""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from model_components.hypernetworks import HYPERNETWORKS, build_hypernetwork, hyper_config
from model_components.inrs import build_model
from model_components.templates import param_template

SIZE = 16

#: (id, architecture, tiny options) of every hypernetwork model tested here.
TINY = {
    "weights_full": ("weights", dict(mode="full", encoder_widths=(8, 16), latent_dim=32, inr_width=16, inr_depth=1)),
    "weights_lowrank": ("weights", dict(mode="lowrank", encoder_widths=(8, 16), latent_dim=32, inr_width=16,
                                        inr_depth=1, rank=2)),
    "weights_mlp_ffn": ("weights", dict(mode="full", encoder="mlp", encoder_widths=(32,), latent_dim=16,
                                        inr_model="ffn", inr_width=16, inr_depth=1,
                                        inr_options={"fourier_features": 8, "fourier_scale": 2.0})),
    "transinr": ("transinr", dict(patch_size=4, dim=32, depth=1, heads=2, n_groups=4, inr_width=16, inr_depth=1,
                                  pe_frequencies=4)),
}


def tiny_images(count: int = 4, size: int = SIZE, seed: int = 0) -> jax.Array:
    """Smooth coloured sinusoid images, ``(count, size, size, 3)`` in [0.1, 0.9], different per image."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    images = []
    for _ in range(count):
        freq, phase = rng.uniform(0.5, 2.0, (3, 2)), rng.uniform(0.0, 2 * np.pi, 3)
        images.append(np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (freq[c, 0] * x + freq[c, 1] * y) + phase[c])
                                for c in range(3)], axis=-1))
    return jnp.asarray(np.stack(images), jnp.float32)


def pixel_coords(size: int = SIZE) -> jax.Array:
    """Pixel centres in [-1, 1], ``(size * size, 2)`` in (x, y) order, row-major (the grid convention)."""
    centres = -1.0 + (2.0 * jnp.arange(size) + 1.0) / size
    yy, xx = jnp.meshgrid(centres, centres, indexing="ij")
    return jnp.stack([xx, yy], axis=-1).reshape(-1, 2)


def make(name: str, **overrides):
    architecture, options = TINY[name]
    config = hyper_config(architecture, image_size=(SIZE, SIZE), **{**options, **overrides})
    return config, build_hypernetwork(config)


@functools.cache
def initialised(name: str):
    """(config, module, variables) of a tiny hypernetwork, initialised once on 3 images (jitted: compiling is
    cheaper than running Flax op by op)."""
    config, hyper = make(name)
    variables = jax.jit(hyper.init)(jax.random.key(0), tiny_images(3), pixel_coords())
    return config, hyper, variables


_JITTED: dict = {}


def jitted(hyper, method: str | None = None):
    """``jax.jit`` of ``hyper.apply`` (of ``method``), compiled once per module and method (modules with dict
    fields are not hashable, so the cache is keyed by identity; the modules live in ``initialised``'s cache)."""
    key = (id(hyper), method)
    if key not in _JITTED:
        _JITTED[key] = jax.jit(functools.partial(hyper.apply, method=method) if method else hyper.apply)
    return _JITTED[key]


@pytest.fixture(params=["weights_full", "weights_lowrank", "transinr"])
def model(request):
    """(config, module, variables) of each tiny hypernetwork."""
    return initialised(request.param)


def test_registered():
    assert {architecture for architecture, _ in TINY.values()} <= set(HYPERNETWORKS)


def test_emitted_pytree_is_the_inr_template(model):
    check_template(*model)


def test_mlp_encoder_and_inr_with_constants():
    """An MLP encoder and an INR with constants (a Fourier matrix): template, values and shared constants."""
    config, hyper, variables = initialised("weights_mlp_ffn")
    check_template(config, hyper, variables)
    assert "ImageEncoder" not in str(variables["params"]["encoder"]) and "dense_0" in variables["params"]["encoder"]
    matrix = variables["constants"]["inr"]["constants"]["encoding"]["B"]
    emitted = jitted(hyper, "encode")(variables, tiny_images(3))
    np.testing.assert_array_equal(emitted["constants"]["encoding"]["B"][1], matrix)
    values = jitted(hyper)(variables, tiny_images(3), pixel_coords())
    inr = build_model(config.options.inr_config(config))
    np.testing.assert_allclose(inr.apply(jax.tree.map(lambda v: v[1], emitted), pixel_coords()), values[1],
                               atol=1e-5, rtol=1e-5)


def check_template(config, hyper, variables):
    images = tiny_images(3)
    emitted = jitted(hyper, "encode")(variables, images)
    template = param_template(config.options.inr_config(config))
    assert jax.tree.structure(emitted["params"]) == jax.tree.structure(template.params.tree)
    for leaf, want in zip(jax.tree.leaves(emitted["params"]), template.params.leaves, strict=True):
        assert leaf.shape == (3, *want.shape) and leaf.dtype == want.dtype
    constants = {k: v for k, v in emitted.items() if k != "params"}
    assert jax.tree.structure(constants) == jax.tree.structure(template.constants.tree)
    for leaf, want in zip(jax.tree.leaves(constants), template.constants.leaves, strict=True):
        assert leaf.shape == (3, *want.shape)
    assert template.unflatten(template.flatten(emitted["params"])) is not None


def test_apply_equals_the_inr_built_from_emitted_variables(model):
    config, hyper, variables = model
    images, coords = tiny_images(3), pixel_coords()
    values = jitted(hyper)(variables, images, coords)
    assert values.shape == (3, SIZE * SIZE, 3) and values.dtype == jnp.float32
    emitted = jitted(hyper, "encode")(variables, images)
    inr = build_model(config.options.inr_config(config))
    for b in range(3):
        direct = inr.apply(jax.tree.map(lambda v, b=b: v[b], emitted), coords)
        np.testing.assert_allclose(direct, values[b], atol=1e-5, rtol=1e-5)
    assert type(hyper.inr()) is type(inr)


def test_shared_and_per_image_coords_agree(model):
    _, hyper, variables = model
    images = tiny_images(3)
    coords = jax.random.uniform(jax.random.key(1), (7, 2), minval=-1.0, maxval=1.0)
    apply = jitted(hyper)
    shared = apply(variables, images, coords)
    per_image = apply(variables, images, jnp.broadcast_to(coords, (3, 7, 2)))
    np.testing.assert_allclose(shared, per_image, atol=1e-6)
    # per-image coords really are per image: image 0 at other points changes only image 0's values
    moved = jnp.stack([coords[::-1], coords, coords])
    out = apply(variables, images, moved)
    np.testing.assert_allclose(out[0], shared[0][::-1], atol=1e-6)
    np.testing.assert_allclose(out[1:], shared[1:], atol=1e-6)


def test_grad_is_finite_and_nonzero(model):
    _, hyper, variables = model
    images, coords = tiny_images(3), pixel_coords()
    params = variables["params"]
    others = {k: v for k, v in variables.items() if k != "params"}

    def loss(p):
        return jnp.mean((hyper.apply({"params": p, **others}, images, coords) - images.reshape(3, -1, 3)) ** 2)

    grads = jax.jit(jax.grad(loss))(params)
    leaves = jax.tree.leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert float(sum(jnp.sum(jnp.abs(g)) for g in leaves)) > 0
    # the image-dependent part learns from the start: the image encoder / patch embedding, or (low rank, whose
    # V heads start at zero so that the INR starts as the base one) the V heads
    if "u_head_kernel" in grads:
        image_dependent = [v for k, v in grads.items() if k.startswith("v_")]
    else:
        image_dependent = grads["encoder"] if "encoder" in grads else grads["patches"]
    assert float(sum(jnp.sum(jnp.abs(g)) for g in jax.tree.leaves(image_dependent))) > 0


@pytest.mark.parametrize("name", ["weights_full", "transinr"])  # (the low-rank INR is the same kind of MLP)
def test_derivatives_compose(name):
    """A symmetric, finite Hessian (forward over reverse) with respect to a query point; jvp w.r.t. the images."""
    _, hyper, variables = initialised(name)
    images = tiny_images(1)

    def red(point):
        return hyper.apply(variables, images, point[None])[0, 0, 0]

    hessian = jax.jit(jax.hessian(red))(jnp.array([0.3, -0.2]))
    assert hessian.shape == (2, 2) and bool(jnp.all(jnp.isfinite(hessian)))
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-4, rtol=1e-3)
    _, tangent = jax.jit(lambda im, t: jax.jvp(lambda x: hyper.apply(variables, x, jnp.zeros((1, 2))), (im,), (t,)))(
        images, jnp.ones_like(images))
    assert tangent.shape == (1, 1, 3) and bool(jnp.all(jnp.isfinite(tangent)))


@pytest.mark.parametrize("name", ["weights_lowrank", "transinr"])
def test_vmap_over_images_equals_batch(name):
    _, hyper, variables = initialised(name)
    images, coords = tiny_images(3), pixel_coords()
    batch = jitted(hyper)(variables, images, coords)
    one_by_one = jax.jit(jax.vmap(lambda im: hyper.apply(variables, im[None], coords)[0]))(images)
    np.testing.assert_allclose(one_by_one, batch, atol=1e-5)


def test_lowrank_starts_as_the_base_inr():
    config, hyper, variables = initialised("weights_lowrank")
    images, coords = tiny_images(3), pixel_coords()
    base = variables["params"]["base"]
    constants = variables.get("constants", {}).get("inr", {})
    inr = build_model(config.options.inr_config(config))
    expected = inr.apply({"params": base, **constants}, coords)
    values = jitted(hyper)(variables, images, coords)
    for b in range(3):
        np.testing.assert_allclose(values[b], expected, atol=1e-6)


def test_full_mode_starts_near_the_inr_init():
    _, hyper, variables = initialised("weights_full")
    emitted = jitted(hyper, "encode")(variables, tiny_images(3))["params"]
    heads = variables["params"]
    kernel = emitted["layer_1"]["Linear_0"]["kernel"]  # (3, 16, 16)
    init = heads["emit_layer_1_Linear_0_kernel"]["bias"].reshape(16, 16)
    deviation = float(jnp.sqrt(jnp.mean((kernel - init) ** 2)) / jnp.sqrt(jnp.mean(init ** 2)))
    assert 0.02 < deviation < 0.5  # head_init_scale 0.1 of the leaf's scale
    assert float(jnp.max(jnp.abs(kernel[0] - kernel[1]))) > 0  # each image gets its own weights


def _overfit_psnr(name: str, steps: int, learning_rate: float) -> tuple[float, float]:
    _, hyper, variables = initialised(name)
    images, coords = tiny_images(4, seed=1), pixel_coords()
    target = images.reshape(4, -1, 3)
    variables = dict(variables)
    params = variables.pop("params")
    optimizer = optax.adam(learning_rate)

    def loss(p):
        return jnp.mean((hyper.apply({"params": p, **variables}, images, coords) - target) ** 2)

    @jax.jit
    def train(p):
        def step(carry, _):
            p, state = carry
            grads = jax.grad(loss)(p)
            updates, state = optimizer.update(grads, state, p)
            return (optax.apply_updates(p, updates), state), None

        (p, _), _ = jax.lax.scan(step, (p, optimizer.init(p)), None, length=steps)
        return p

    before = float(jax.jit(loss)(params))
    after = float(jax.jit(loss)(train(params)))
    return -10 * np.log10(before), -10 * np.log10(after)


@pytest.mark.parametrize("name, steps, learning_rate, gain", [
    ("weights_full", 60, 1e-3, 5.0),
    ("weights_lowrank", 60, 1e-3, 5.0),
    ("transinr", 200, 1e-3, 6.0),  # Trans-INR starts slower (unit-norm columns; measured +12 dB at 300 steps)
])
def test_jitted_adam_overfits_four_images(name, steps, learning_rate, gain):
    before, after = _overfit_psnr(name, steps, learning_rate)
    assert after > before + gain, (before, after)


def test_hyper_config_round_trips():
    config = hyper_config("weights", mode="lowrank", rank=3, encoder_widths=[8, 16], image_size=[16, 16],
                          inr_model="siren", inr_options={"omega0": 20.0})
    data = json.loads(json.dumps(config.to_dict()))
    again = type(config).from_dict(data)
    assert again == config
    assert again.rank == 3 and again.encoder_widths == (8, 16)
    module = build_hypernetwork(again)
    assert module.inr().layer_kwargs["omega0"] == 20.0
    config = hyper_config("transinr", n_groups=8, inr_width=32, pe_frequencies=5)
    again = type(config).from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and build_hypernetwork(again).inr().encoding_kwargs["num_frequencies"] == 5


@pytest.mark.parametrize("overrides, match", [
    (dict(mode="dense"), "mode"),
    (dict(encoder="resnet"), "encoder"),
    (dict(rank=0), "rank"),
    (dict(latent_dim=-1), "latent_dim"),
    (dict(encoder_widths=()), "encoder_widths"),
    (dict(inr_model="nonexistent"), "inr_model"),
    (dict(inr_options={"bogus_option": 1}), "inr_options"),
    (dict(head_init_scale=-1.0), "head_init_scale"),
    (dict(rank="2"), "rank"),
])
def test_bad_weight_options_raise(overrides, match):
    with pytest.raises(ValueError, match=match):
        hyper_config("weights", **overrides)


def test_bad_inputs_raise():
    _, hyper, variables = initialised("weights_full")
    images = tiny_images(2)
    with pytest.raises(ValueError, match="images"):
        hyper.apply(variables, images[0], pixel_coords())
    with pytest.raises(ValueError, match="coords"):
        hyper.apply(variables, images, jnp.zeros((2, 2, 5, 2)))


def test_transinr_columns_are_modulated_and_unit_norm():
    _, hyper, variables = initialised("transinr")
    emitted = jitted(hyper, "encode")(variables, tiny_images(3))["params"]
    base = variables["params"]["base"]
    kernels = {"layer_0": emitted["layer_0"]["Linear_0"]["kernel"], "layer_1": emitted["layer_1"]["Linear_0"]["kernel"],
               "head": emitted["head"]["kernel"]}
    for name, kernel in kernels.items():  # every layer, the output one included: columns of unit L2 norm
        np.testing.assert_allclose(jnp.linalg.norm(kernel, axis=-2), 1.0, atol=1e-5, err_msg=name)
        assert float(jnp.max(jnp.abs(kernel[0] - kernel[1]))) > 1e-4  # per image
    # biases are the shared base biases
    np.testing.assert_array_equal(emitted["layer_1"]["Linear_0"]["bias"][2], base["layer_1"]["Linear_0"]["bias"])
    # n_groups = 4 < width 16: column j is base column j times group (j mod 4)'s vector, normalised, so columns
    # j and j + 4 share the rescaling: their ratio to the base column is proportional
    w, w0 = kernels["layer_1"][0], base["layer_1"]["Linear_0"]["kernel"]
    ratio_0, ratio_4 = w[:, 0] / w0[:, 0], w[:, 4] / w0[:, 4]
    np.testing.assert_allclose(ratio_0 / jnp.linalg.norm(ratio_0), ratio_4 / jnp.linalg.norm(ratio_4), atol=1e-4)


def test_modulated_columns_formula():
    from model_components.trans_inr import modulated_columns

    kernel = jnp.arange(1.0, 13.0).reshape(3, 4)
    scales = jnp.array([[1.0, 2.0], [1.0, 0.5], [2.0, 1.0]])  # (n=3, g=2)
    got = modulated_columns(kernel, scales)
    tiled = jnp.concatenate([scales, scales], axis=1)
    want = kernel * tiled / jnp.linalg.norm(kernel * tiled, axis=0, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert bool(jnp.all(jnp.isfinite(jax.grad(lambda k: modulated_columns(k, jnp.zeros((3, 2))).sum())(kernel))))


@pytest.mark.parametrize("overrides, match", [
    (dict(patch_size=5), "patch_size"),
    (dict(dim=30, heads=4), "heads"),
    (dict(n_groups=3), "n_groups"),
    (dict(depth=0), "depth"),
    (dict(pe_frequencies=0), "pe_frequencies"),
])
def test_bad_transinr_options_raise(overrides, match):
    with pytest.raises(ValueError, match=match):
        hyper_config("transinr", image_size=(16, 16), **overrides)


def test_default_sizes():
    """The defaults' parameter counts (CIFAR-10 32x32) stay in the range of an LA-INR of 0.5-1.5 M params."""
    from model_components.inrs import count_params

    for architecture, overrides in (("weights", {}), ("weights", {"mode": "lowrank"}), ("transinr", {})):
        hyper = build_hypernetwork(hyper_config(architecture, **overrides))
        shapes = jax.eval_shape(hyper.init, jax.random.key(0), jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32),
                                jax.ShapeDtypeStruct((5, 2), jnp.float32))
        assert 0.5e6 < count_params(shapes["params"]) < 1.5e6, (architecture, overrides)
