"""INCODE (model_components.incode): the conditioned sine layer, the harmonizer, the signal put into the constants
at fit time (inr_utils.conditioning), LG-INCODE, and fits through the engine."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inr_utils.conditioning import thumbnail, with_signal
from inr_utils.config import FitConfig
from inr_utils.croppable import crop
from inr_utils.fitting import fit
from inr_utils.presets import TRAINING_PRESETS
from inr_utils.rendering import render_grid
from inr_utils.sweeps import fit_many, unstack
from inr_utils.training import TrainState
from model_components.catalog import LAYERS
from model_components.incode import (
    SIGNAL_CONSTANT,
    Harmonizer,
    IncodeLayer,
    harmonizer_penalty,
    incode_sine,
    thumbnail_side,
)
from model_components.inrs import build_model, count_params, model_config
from model_components.layers import SineLayer

#: A small harmonizer for the fits (the default one has ~30k weights).
SMALL = dict(harmonizer_channels=(8, 16), harmonizer_hidden=(16,), thumbnail=256)


def _image(size: int = 32, phase: float = 0.0) -> np.ndarray:
    """A smooth colour test image in [0, 1], ``(size, size, 3)``."""
    y, x = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    return np.stack([0.5 + 0.4 * np.sin(3 * x + y + phase), 0.5 + 0.3 * np.cos(2 * y - x), 0.5 + 0.2 * x * y],
                    -1).astype(np.float32)


@pytest.mark.parametrize("is_first", [True, False])
def test_layer_at_zero_condition_is_a_siren_layer_and_follows_the_formula(is_first):
    x = jax.random.uniform(jax.random.key(0), (7, 5), minval=-1, maxval=1)
    layer = IncodeLayer(6, is_first=is_first)
    variables = layer.init(jax.random.key(1), x)
    siren = SineLayer(6, is_first=is_first)
    assert jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape, siren.init(jax.random.key(1), x))
    want = siren.apply(variables, x)  # the same weights
    np.testing.assert_array_equal(np.asarray(layer.apply(variables, x, jnp.zeros(4))), np.asarray(want))
    np.testing.assert_array_equal(np.asarray(layer.apply(variables, x)), np.asarray(want))  # no condition: 0
    a, b, c, d = 0.3, -0.2, 0.7, 0.1
    kernel, bias = variables["params"]["Linear_0"]["kernel"], variables["params"]["Linear_0"]["bias"]
    formula = np.exp(a) * np.sin(np.exp(b) * 30.0 * (np.asarray(x) @ kernel + bias) + c) + d
    got = layer.apply(variables, x, jnp.array([a, b, c, d]))
    np.testing.assert_allclose(np.asarray(got), formula, rtol=1e-5, atol=1e-5)
    assert "incode" in LAYERS and LAYERS["incode"] is IncodeLayer


@pytest.mark.parametrize("in_dim,channels", [(1, 1), (2, 3), (3, 3)])
def test_harmonizer_gives_four_numbers_near_its_bias_at_init(in_dim, channels):
    harmonizer = Harmonizer(in_dim=in_dim, channels=channels)
    variables = harmonizer.init(jax.random.key(0))
    side = thumbnail_side(1024, in_dim)
    assert side == {1: 1024, 2: 32, 3: 10}[in_dim]
    assert variables["constants"][SIGNAL_CONSTANT].shape == (side,) * in_dim + (channels,)
    signal = jax.random.uniform(jax.random.key(1), (side,) * in_dim + (channels,))
    out = harmonizer.apply({**variables, "constants": {SIGNAL_CONSTANT: signal}})
    assert out.shape == (4,)
    # every MLP weight ~ N(0, 1e-3^2), every bias 0.312 (the reference's init): the output is the bias + O(1e-3)
    assert np.all(np.abs(np.asarray(out) - 0.312) < 5e-3)
    kernels = [v["kernel"] for k, v in variables["params"].items() if k.startswith("Dense")]
    assert [k.shape for k in kernels] == [(64, 64), (64, 32), (32, 4)]  # 64 -> 64 -> 32 -> 4 as the reference
    assert all(0.5e-3 < float(jnp.std(k)) < 1.5e-3 for k in kernels[:2])


def test_penalty_is_the_reference_regulariser():
    p = jnp.array([-1.0, 2.0, -0.5, -2.0])
    assert float(harmonizer_penalty(p)) == pytest.approx(0.1993 + 0.0588 * 0.5 + 0.0269 * 2, rel=1e-6)
    assert float(harmonizer_penalty(jnp.ones(4))) == 0.0
    np.testing.assert_allclose(np.asarray(incode_sine(jnp.array([0.5]), jnp.zeros(4), 30.0, fast=False)),
                               np.sin([15.0]), rtol=1e-6)


def test_signal_reaches_every_layer_of_lg_incode_and_both_paths_agree():
    config = model_config("lg_incode", partitions=(2, 2), width=8, global_width=8, depth=1, out_dim=3, **SMALL)
    model = build_model(config)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 2)))
    state = TrainState(jnp.zeros((), jnp.int32), variables["params"],
                       {k: v for k, v in variables.items() if k != "params"}, ())
    state = with_signal(state, _image(16))
    thumb = state.constants["constants"]["harmonizer"][SIGNAL_CONSTANT]
    np.testing.assert_allclose(np.asarray(thumb), thumbnail(_image(16), (16, 16, 3)), atol=0)
    conditioned = {"params": state.params, **state.constants}
    coords = jax.random.uniform(jax.random.key(1), (6, 4, 2), minval=-1, maxval=1)
    routed = jax.jit(model.apply)
    grouped = jax.jit(lambda v, c: model.apply(v, c, method="partitioned"))
    # the routed path (each point to its cell by position) equals the grouped one for points of each slot
    cells = jnp.stack([jnp.array([-0.5, -0.5]), jnp.array([0.5, -0.5]), jnp.array([-0.5, 0.5]),
                       jnp.array([0.5, 0.5])])  # slot s = flat cell (row = y, column = x)
    inside = cells + 0.4 * coords
    np.testing.assert_allclose(np.asarray(routed(conditioned, inside)), np.asarray(grouped(conditioned, inside)),
                               atol=1e-5)
    assert grouped(conditioned, coords).shape == (6, 4, 3)
    # the harmonizer's (a, b, c, d) move every output: a different thumbnail changes both paths
    other = jax.tree.map(lambda a: a, conditioned)
    other["constants"]["harmonizer"][SIGNAL_CONSTANT] = jnp.zeros_like(thumb)
    assert float(jnp.max(jnp.abs(routed(other, inside) - routed(conditioned, inside)))) > 1e-6
    # gradients reach the harmonizer through local, global and projection layers
    loss = lambda p: jnp.sum(grouped({**conditioned, "params": p}, inside) ** 2)  # noqa: E731
    grads = jax.jit(jax.grad(loss))(conditioned["params"])
    assert float(jnp.max(jnp.abs(grads["harmonizer"]["Dense_1"]["bias"]))) > 0


def test_fit_trains_the_harmonizer_jointly_and_keeps_the_signal_constant():
    image = _image(32)
    config = FitConfig(model=model_config("incode", width=32, depth=2, **SMALL), steps=150, lr=1e-3,
                       batch_size=None, lr_schedule="constant", steps_per_call=50)
    result = fit(image, config, progress=False, eval_every=50)
    psnr = result.history.column("full_psnr")
    psnr = psnr[~np.isnan(psnr)]
    untrained = render_grid(result.model.apply, build_model(config.model).init(jax.random.key(0), jnp.zeros((1, 2))),
                            (32, 32))
    assert psnr[-1] > psnr[0] and psnr[-1] > 30 > -10 * np.log10(np.mean((untrained - image) ** 2)) + 10
    side = thumbnail_side(256, 2)
    np.testing.assert_array_equal(np.asarray(result.state.constants["constants"]["harmonizer"][SIGNAL_CONSTANT]),
                                  thumbnail(image, (side, side, 3)))  # set at fit time, never trained
    fresh = build_model(config.model).init(jax.random.key(0), jnp.zeros((1, 2)))["params"]["harmonizer"]
    assert float(jnp.max(jnp.abs(result.state.params["harmonizer"]["Dense_1"]["bias"]
                                 - fresh["Dense_1"]["bias"]))) > 1e-4  # trained with the INR
    recon = render_grid(result.model.apply, result.variables, (32, 32))
    assert recon.shape == (32, 32, 3)


def test_fit_many_of_two_signals_equals_two_fits():
    images = np.stack([_image(16), _image(16, phase=1.5)])
    config = FitConfig(model=model_config("incode", width=16, depth=1, **SMALL), steps=20, lr=1e-3,
                       batch_size=None, steps_per_call=20)
    many = fit_many(config, images=images, progress=False, eval_every=20, devices=jax.devices()[:1])
    for i in range(2):
        one = fit(images[i], config, progress=False, eval_every=20)
        mine = unstack(many, i)
        np.testing.assert_array_equal(np.asarray(mine["constants"]["harmonizer"][SIGNAL_CONSTANT]),
                                      np.asarray(one.state.constants["constants"]["harmonizer"][SIGNAL_CONSTANT]))
        for a, b in zip(jax.tree.leaves(one.state.params), jax.tree.leaves(mine["params"]), strict=True):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5)
        assert abs(many.psnr[i] - one.history.column("full_psnr")[-1]) < 0.01


def test_a_masked_fit_shows_the_harmonizer_no_hidden_sample():
    """Inpainting with INCODE: the hidden pixels reach neither the loss nor the thumbnail (fit and fit_many)."""
    image, mask = _image(16), np.random.default_rng(0).random((16, 16)) < 0.5
    changed = np.where(mask[..., None], image, 1.0 - image)
    config = FitConfig(model=model_config("incode", width=16, depth=1, **SMALL), steps=10, lr=1e-3,
                       batch_size=None, steps_per_call=10)
    one, two = (fit(x, config, progress=False, eval_every=10, mask=mask) for x in (image, changed))
    for a, b in zip(jax.tree.leaves(one.state), jax.tree.leaves(two.state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    many = fit_many(config, images=np.stack([image, changed]), progress=False, eval_every=10, mask=mask,
                    devices=jax.devices()[:1])
    np.testing.assert_array_equal(*(np.asarray(unstack(many, i)["constants"]["harmonizer"][SIGNAL_CONSTANT])
                                    for i in range(2)))


def test_cropped_lg_incode_decodes_the_kept_partitions_as_before():
    config = model_config("lg_incode", partitions=(2, 2), width=8, global_width=8, depth=1, out_dim=3, **SMALL)
    model = build_model(config)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 2)))
    state = with_signal(TrainState(jnp.zeros((), jnp.int32), variables["params"],
                                   {k: v for k, v in variables.items() if k != "params"}, ()), _image(16))
    full = {"params": state.params, **state.constants}
    cropped_config, cropped = crop(config, full, partitions=(3,))
    assert count_params(cropped["params"]) < count_params(full["params"])
    coords = jax.random.uniform(jax.random.key(1), (5, 4, 2), minval=-1, maxval=1)
    smaller = build_model(cropped_config)
    before = jax.jit(lambda v, c: model.apply(v, c, method="partitioned"))(full, coords)
    after = jax.jit(lambda v, c: smaller.apply(v, c, method="partitioned"))(cropped, coords[:, :3])  # slots 0-2
    np.testing.assert_array_equal(np.asarray(after), np.asarray(before[:, :3]))


@pytest.mark.parametrize("name", ["incode", "lg_incode"])
@pytest.mark.parametrize("in_dim", [1, 2, 3])
def test_presets_build_for_every_dimension(name, in_dim):
    config = model_config(name, in_dim=in_dim, out_dim=2)
    variables = jax.eval_shape(build_model(config).init, jax.random.key(0), jnp.zeros((1, in_dim)))
    side = thumbnail_side(1024, in_dim)
    assert variables["constants"]["harmonizer"][SIGNAL_CONSTANT].shape == (side,) * in_dim + (2,)
    assert TRAINING_PRESETS[name]["lr"] > 0
    assert config.layer == "incode" and config.layer_options["omega0"] == 30.0


def test_models_without_a_signal_constant_are_unchanged():
    config = model_config("siren", width=8, depth=1)
    variables = build_model(config).init(jax.random.key(0), jnp.zeros((1, 2)))
    state = TrainState(jnp.zeros((), jnp.int32), variables["params"], {"constants": variables["constants"]}, ())
    assert with_signal(state, _image(8)) is state
    with pytest.raises(ValueError, match="sample axes"):
        thumbnail(np.zeros((8, 3), np.float32), (4, 4, 3))
