"""LA-INR (model_components.la_inr) and the bidirectional Mamba encoder (model_components.mamba)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from model_components.hypernetworks import build_hypernetwork, hyper_config
from model_components.la_inr import LAINRDecoder, fourier_features, fourier_frequencies
from model_components.mamba import MambaEncoder, SelectiveSSM, selective_scan, selective_scan_loop

TINY = dict(dim=16, depth=1, heads=2, decoder_width=16, decoder_heads=2, num_frequencies=4, pe_frequencies=2,
            pe_sigma=2.0, state_dim=4, num_lp=16, image_size=(8, 8), sigmas=(8.0, 4.0), query_sigma=4.0)


def tiny(encoder: str = "transformer", **overrides):
    return hyper_config("lainr", **{**TINY, "encoder": encoder, **overrides})


def images_and_coords(batch: int = 2, size: int = 8, points: int = 20):
    images = jax.random.uniform(jax.random.key(1), (batch, size, size, 3))
    coords = jax.random.uniform(jax.random.key(2), (points, 2), minval=-1.0, maxval=1.0)
    return images, coords


@pytest.mark.parametrize("reverse", [False, True])
def test_associative_scan_equals_sequential_loop(reverse):
    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.uniform(ka, (2, 9, 3, 4), minval=0.05, maxval=0.95)
    b = jax.random.normal(kb, (2, 9, 3, 4))
    slow = selective_scan_loop(a, b, axis=1, reverse=reverse)
    for method in ("associative", "sequential"):
        fast = selective_scan(a, b, axis=1, reverse=reverse, method=method)
        np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-6)
    # a known answer: a = 1/2, b = 1 -> h_t = 2 - 2^-t (t counted from the scan's start)
    h = selective_scan(jnp.full((1, 5), 0.5), jnp.ones((1, 5)), axis=1, reverse=reverse)[0]
    expected = 2.0 - 0.5 ** np.arange(5)
    np.testing.assert_allclose(h, expected[::-1] if reverse else expected, rtol=1e-6)


def test_bidirectional_mamba_shape_and_both_directions():
    tokens = jax.random.normal(jax.random.key(0), (2, 6, 8))
    encoder = MambaEncoder(depth=1, state_dim=4)
    variables = encoder.init(jax.random.key(1), tokens)
    apply = jax.jit(encoder.apply)
    out = apply(variables, tokens)
    assert out.shape == (2, 6, 8) and bool(jnp.all(jnp.isfinite(out)))
    # bidirectional: changing the last token changes the first output, changing the first changes the last
    # (not a constant shift, which the LayerNorm removes)
    bump = 3.0 * jax.random.normal(jax.random.key(4), (8,))
    last_changed = apply(variables, tokens.at[:, -1].add(bump))
    first_changed = apply(variables, tokens.at[:, 0].add(bump))
    assert float(jnp.abs(last_changed[:, 0] - out[:, 0]).max()) > 1e-5
    assert float(jnp.abs(first_changed[:, -1] - out[:, -1]).max()) > 1e-5
    # one direction alone is causal (forward) / anti-causal (reverse): token 3 changes only outputs >= 3 / <= 3
    x = jax.random.normal(jax.random.key(2), (1, 7, 4))
    for reverse in (False, True):
        ssm = SelectiveSSM(state_dim=3, reverse=reverse)
        v = ssm.init(jax.random.key(3), x)
        ssm_apply = jax.jit(ssm.apply)
        diff = jnp.abs(ssm_apply(v, x.at[:, 3].add(1.0)) - ssm_apply(v, x))[0].max(-1)
        unaffected = diff[4:] if reverse else diff[:3]
        affected = diff[:4] if reverse else diff[3:]
        assert float(unaffected.max()) == 0.0 and float(affected.min()) > 0.0


def test_spatial_bias_changes_attention_as_specified():
    grid = (4, 4)
    coords = jnp.asarray([[[-0.75, -0.75]]])  # the centre of token 0 (top-left cell)
    latents = jnp.ones((1, 16, 8))  # equal content: only the spatial bias tells tokens apart
    positions = LAINRDecoder(token_grid=grid).token_positions()
    sq = np.sum((positions - np.asarray([-0.75, -0.75])) ** 2, axis=-1)
    for alpha in (0.0, 5.0):
        decoder = LAINRDecoder(token_grid=grid, width=8, heads=2, num_frequencies=2, alpha_init=alpha)
        variables = decoder.init(jax.random.key(0), latents, coords)
        weights = decoder.apply(variables, latents, coords, method="attention_weights")[0, :, 0]  # (heads, K)
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
        expected = np.exp(-alpha * sq) / np.exp(-alpha * sq).sum()
        np.testing.assert_allclose(weights, np.broadcast_to(expected, weights.shape), rtol=1e-4, atol=1e-7)
        if alpha == 0.0:
            np.testing.assert_allclose(weights, 1.0 / 16, rtol=1e-5)
        else:
            assert bool(jnp.all(weights[:, 0] > weights[:, 15]))  # near token 0 beats far token 15


def test_strong_spatial_bias_makes_the_output_local():
    decoder = LAINRDecoder(token_grid=(4, 4), width=16, heads=2, num_frequencies=4, alpha_init=100.0)
    latents = jax.random.normal(jax.random.key(0), (1, 16, 8))
    coords = jnp.asarray([[[-0.75, -0.75]]])
    variables = decoder.init(jax.random.key(1), latents, coords)
    grads = jax.grad(lambda z: decoder.apply(variables, z, coords).sum())(latents)[0]
    per_token = jnp.linalg.norm(grads, axis=-1)
    assert float(per_token[0]) > 1e3 * float(per_token[15])


@pytest.mark.parametrize("encoder", ["transformer", "mamba"])
def test_apply_equals_inr_of_encoded_variables(encoder):
    config = tiny(encoder)
    hyper = build_hypernetwork(config)
    images, coords = images_and_coords()
    variables = hyper.init(jax.random.key(0), images, coords)
    values = jax.jit(hyper.apply)(variables, images, coords)
    assert values.shape == (2, 20, 3) and values.dtype == jnp.float32
    per_image = jnp.broadcast_to(coords, (2, 20, 2))
    np.testing.assert_allclose(hyper.apply(variables, images, per_image), values, rtol=1e-5, atol=1e-5)
    inr_vars = jax.jit(lambda v, x: hyper.apply(v, x, method="encode"))(variables, images)
    inr = hyper.inr()
    template = inr.init(jax.random.key(3), coords)
    assert jax.tree.map(jnp.shape, template) == jax.tree.map(lambda v: v.shape[1:], inr_vars)
    inr_apply = jax.jit(inr.apply)
    for b in range(2):
        one = jax.tree.map(lambda v, b=b: v[b], inr_vars)
        np.testing.assert_allclose(inr_apply(one, coords), values[b], rtol=1e-5, atol=1e-5)
    grid = coords.reshape(4, 5, 2)  # any leading axes of the INR's coords
    np.testing.assert_allclose(inr_apply(one, grid), values[1].reshape(4, 5, 3), rtol=1e-5, atol=1e-5)
    batched = jax.jit(jax.vmap(inr.apply, in_axes=(0, None)))(inr_vars, coords)
    np.testing.assert_allclose(batched, values, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("encoder,latent_tokens,scan", [("transformer", "learned", "associative"),
                                                         ("mamba", "patches", "sequential")])
def test_grad_is_finite(encoder, latent_tokens, scan):
    hyper = build_hypernetwork(tiny(encoder, latent_tokens=latent_tokens, mamba_scan=scan,
                                    num_lp=9 if latent_tokens == "learned" else 16))
    images, coords = images_and_coords()
    variables = hyper.init(jax.random.key(0), images, coords)

    def loss(params):
        return jnp.mean((hyper.apply({"params": params}, images, coords) - 0.5) ** 2)

    grads = jax.jit(jax.grad(loss))(variables["params"])
    leaves = jax.tree.leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert float(sum(jnp.abs(g).sum() for g in leaves)) > 0.0
    assert float(jnp.abs(grads["decoder"]["alpha"]).sum()) > 0.0  # α is learned


def test_decoder_hessian_matches_finite_differences():
    hyper = build_hypernetwork(tiny())
    images, coords = images_and_coords()
    variables = hyper.init(jax.random.key(0), images, coords)
    one = jax.tree.map(lambda v: v[0], hyper.apply(variables, images, method="encode"))
    inr = hyper.inr()
    f = lambda p: inr.apply(one, p)  # noqa: E731  (2,) -> (3,)
    point = jnp.asarray([0.123, -0.321])  # the tiny config's bandwidths (<= 8) keep finite differences accurate
    hess = jax.jit(jax.hessian(f))(point)  # (3, 2, 2)
    jac = jax.jit(jax.jacfwd(f))
    step = 1e-4  # small: the ReLUs make the Jacobian jump at kinks, which a wide stencil may straddle
    fd = jnp.stack([(jac(point + step * e) - jac(point - step * e)) / (2 * step) for e in jnp.eye(2)], axis=-1)
    np.testing.assert_allclose(hess, fd, rtol=5e-2, atol=5e-2 * float(jnp.abs(hess).max()))
    # and jvp agrees with the Jacobian
    _, tangent = jax.jvp(f, (point,), (jnp.asarray([1.0, 0.0]),))
    np.testing.assert_allclose(tangent, jac(point)[:, 0], rtol=1e-4, atol=1e-6)


def test_fourier_features_known_values():
    freqs = fourier_frequencies(128.0, 8)
    np.testing.assert_allclose(freqs[[0, -1]], [1.0, 128.0], rtol=1e-5)
    np.testing.assert_allclose(np.diff(np.log(freqs)), np.log(128.0) / 7, rtol=1e-4)
    features = fourier_features(jnp.asarray([[0.5, 0.0]]), np.asarray([1.0]))
    np.testing.assert_allclose(features, [[0.0, 1.0, 1.0, 0.0]], atol=1e-6)  # cos(π/2), cos 0, sin(π/2), sin 0


def _psnr(pred, target):
    return float(-10.0 * jnp.log10(jnp.mean((pred - target) ** 2)))


def test_few_step_overfit_improves_psnr():
    size = 16
    y, x = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    images = jnp.asarray(np.stack([np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (k + 1) * x / 2) * np.cos(np.pi * y),
                                             0.2 + 0.6 * y * (k % 2), 0.3 + 0.4 * x], -1) for k in range(4)]),
                         jnp.float32)
    coords = jnp.stack(jnp.meshgrid(jnp.linspace(-1 + 1 / size, 1 - 1 / size, size),
                                    jnp.linspace(-1 + 1 / size, 1 - 1 / size, size), indexing="xy"), -1).reshape(-1, 2)
    target = images.reshape(4, -1, 3)
    hyper = build_hypernetwork(tiny(image_size=(size, size), num_lp=64, dim=32, decoder_width=32, num_frequencies=8,
                                    sigmas=(32.0, 8.0), query_sigma=8.0, pe_sigma=4.0))
    params = hyper.init(jax.random.key(0), images, coords)["params"]
    optimizer = optax.adam(3e-3)
    state = optimizer.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(lambda p: jnp.mean((hyper.apply({"params": p}, images, coords) - target)
                                                            ** 2))(params)
        updates, state = optimizer.update(grads, state)
        return optax.apply_updates(params, updates), state, loss

    before = _psnr(hyper.apply({"params": params}, images, coords), target)
    for _ in range(100):
        params, state, _ = step(params, state)
    after = _psnr(hyper.apply({"params": params}, images, coords), target)
    assert after > 20.0 and after > before + 15.0, (before, after)


def test_config_round_trips_through_json_data():
    import json

    from model_components.hypernetworks import HyperConfig

    config = tiny("mamba", sigmas=(16.0, 8.0, 4.0))
    again = HyperConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.sigmas == (16.0, 8.0, 4.0)


@pytest.mark.parametrize("overrides,match", [
    (dict(patch_size=3), "not divisible by patch_size 3"),
    (dict(encoder="lstm"), "unknown LA-INR encoder 'lstm'"),
    (dict(mamba_scan="fast"), "unknown mamba_scan 'fast'"),
    (dict(num_lp=100), "num_lp 100 must equal the number of patches 16"),
    (dict(latent_tokens="learned", num_lp=50), "num_lp 50 must be a square number"),
    (dict(decoder_width=30, decoder_heads=4), "decoder_width 30 is not a multiple of decoder_heads 4"),
    (dict(sigmas=()), "sigmas must be one or more"),
    (dict(alpha_init=-1.0), "alpha_init must be >= 0"),
    (dict(depth=0), "depth must be positive"),
    (dict(colour=1), "unknown option"),
])
def test_bad_options_raise_value_error(overrides, match):
    with pytest.raises(ValueError, match=match):
        tiny(**overrides)
