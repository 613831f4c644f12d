"""Pixel grid convention, rendering, losses and metrics (MSE, PSNR, SSIM)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from inr_utils.grids import (
    Region,
    cell_size,
    coords_to_indices,
    coords_to_pixel_indices,
    grid,
    make_grid,
    pixel_centers,
)
from inr_utils.losses import LOSSES, l1_loss, mse_loss
from inr_utils.metrics import mse, psnr, psnr_from_mse, ssim, ssim_skimage
from inr_utils.rendering import render, render_grid
from inr_utils.samplers import image_to_pixel_data, signal_to_data
from model_components.inrs import build_model, model_config

# ------------------------------------------------------------------------------------------ grids


def test_grid_convention():
    h, w = 4, 6
    grid = np.asarray(make_grid(h, w))
    assert grid.shape == (h, w, 2) and grid.dtype == np.float32
    # [..., 0] is x, growing along columns; constant down a column
    np.testing.assert_allclose(grid[0, :, 0], -1 + (2 * np.arange(w) + 1) / w, atol=1e-7)
    np.testing.assert_allclose(grid[:, 3, 0], grid[0, 3, 0])
    # [..., 1] is y, growing along rows
    np.testing.assert_allclose(grid[:, 0, 1], -1 + (2 * np.arange(h) + 1) / h, atol=1e-7)
    np.testing.assert_allclose(grid[2, :, 1], grid[2, 0, 1])
    # endpoints are half a pixel inside the domain
    assert grid[0, 0, 0] == pytest.approx(-1 + 1 / w) and grid[0, -1, 0] == pytest.approx(1 - 1 / w)
    assert grid[0, 0, 1] == pytest.approx(-1 + 1 / h) and grid[-1, 0, 1] == pytest.approx(1 - 1 / h)
    # symmetric about 0
    np.testing.assert_allclose(grid[::-1, ::-1], -grid, atol=1e-7)


def test_grid_region():
    grid = np.asarray(make_grid(2, 2, Region(0.0, 1.0, -1.0, 0.0)))
    np.testing.assert_allclose(grid[..., 0], [[0.25, 0.75], [0.25, 0.75]])
    np.testing.assert_allclose(grid[..., 1], [[-0.75, -0.75], [-0.25, -0.25]])
    np.testing.assert_allclose(pixel_centers(4, 0.0, 2.0), [0.25, 0.75, 1.25, 1.75])
    with pytest.raises(ValueError):
        pixel_centers(0)


def test_coords_to_pixel_indices_round_trip():
    h, w = 5, 7
    indices = np.asarray(coords_to_pixel_indices(make_grid(h, w), h, w))
    assert indices.shape == (h, w, 2)
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    np.testing.assert_allclose(indices[..., 0], rows, atol=1e-5)
    np.testing.assert_allclose(indices[..., 1], cols, atol=1e-5)
    # the domain corners are pixel-cell corners
    corners = np.asarray(coords_to_pixel_indices(jnp.array([[-1.0, -1.0], [1.0, 1.0]]), h, w))
    np.testing.assert_allclose(corners, [[-0.5, -0.5], [h - 0.5, w - 0.5]], atol=1e-6)


def test_pixel_data_row_major():
    image = np.arange(2 * 3 * 1, dtype=np.float32).reshape(2, 3, 1) / 10
    data = image_to_pixel_data(image)
    assert data.coords.shape == (6, 2) and data.values.shape == (6, 1)
    np.testing.assert_allclose(np.asarray(data.values[:, 0]), image.ravel())
    np.testing.assert_allclose(np.asarray(data.coords), np.asarray(make_grid(2, 3)).reshape(6, 2))
    np.testing.assert_allclose(np.asarray(data.pixel_size), [2 / 3, 1.0])


def test_d_dimensional_grid_is_the_2d_grid_for_images():
    for h, w in ((4, 6), (1, 1), (7, 3)):
        np.testing.assert_array_equal(np.asarray(grid((h, w))), np.asarray(make_grid(h, w)))
        region = Region(-0.5, 0.25, 0.1, 0.9)
        np.testing.assert_array_equal(np.asarray(grid((h, w), region.bounds())), np.asarray(make_grid(h, w, region)))
        np.testing.assert_array_equal(np.asarray(coords_to_indices(make_grid(h, w), (h, w))),
                                      np.asarray(coords_to_pixel_indices(make_grid(h, w), h, w)))
        np.testing.assert_array_equal(cell_size((h, w)), np.asarray([2 / w, 2 / h], np.float32))


def test_signal_data_of_an_image_is_its_pixel_data(image):
    old, new = image_to_pixel_data(image), signal_to_data(image)
    for a, b in zip(old, new, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert a.dtype == b.dtype


# ------------------------------------------------------------------------------------------ rendering


def identity_apply(variables, coords):
    """A fake INR returning its coordinates (x, y) as two channels."""
    del variables
    return coords


def test_render_at_training_resolution_hits_training_pixels():
    h, w = 6, 10
    out = render(identity_apply, {}, h, w)
    assert out.shape == (h, w, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(out, np.asarray(make_grid(h, w)))


def test_render_recovers_the_image_of_a_lookup_field(image):
    """An apply_fn looking up the nearest training pixel reproduces the image exactly at 1x and repeats
    every pixel 2x2 at 2x (sub-pixel centres fall inside their parent pixel)."""
    h, w = image.shape[:2]
    table = jnp.asarray(image)

    def lookup(variables, coords):
        idx = jnp.round(coords_to_pixel_indices(coords, h, w)).astype(jnp.int32)
        return table[jnp.clip(idx[:, 0], 0, h - 1), jnp.clip(idx[:, 1], 0, w - 1)]

    np.testing.assert_array_equal(render(lookup, {}, h, w), image)
    double = render(lookup, {}, 2 * h, 2 * w)
    np.testing.assert_array_equal(double, np.repeat(np.repeat(image, 2, axis=0), 2, axis=1))


def test_region_render_is_sub_block_of_full_render():
    full = render(identity_apply, {}, 8, 8)
    quadrant = render(identity_apply, {}, 4, 4, Region(-1.0, 0.0, -1.0, 0.0))
    np.testing.assert_array_equal(quadrant, full[:4, :4])
    bottom_right = render(identity_apply, {}, 4, 4, Region(0.0, 1.0, 0.0, 1.0))
    np.testing.assert_allclose(bottom_right, full[4:, 4:], atol=1e-7)


def test_chunked_and_region_render_of_a_real_model():
    model = build_model(model_config("siren", width=16, depth=1))
    variables = model.init(jax.random.key(0), jnp.zeros((1, 2)))
    h, w = 12, 7
    whole = render(model.apply, variables, h, w, chunk_pixels=h * w)
    assert whole.shape == (h, w, 3)
    np.testing.assert_allclose(whole, np.asarray(model.apply(variables, make_grid(h, w))), atol=1e-6)
    # 5 rows per chunk: 3 chunks, the last one has 2 real rows and 3 padded rows
    chunked = render(model.apply, variables, h, w, chunk_pixels=5 * w + 2)
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    # fewer pixels than a row: one row per chunk
    np.testing.assert_allclose(render(model.apply, variables, h, w, chunk_pixels=3), whole, atol=1e-6)
    # the top half of the domain at half the rows is the top half of the image
    top = render(model.apply, variables, h // 2, w, Region(-1.0, 1.0, -1.0, 0.0))
    np.testing.assert_allclose(top, whole[: h // 2], atol=1e-6)


def test_render_is_render_grid_and_renders_stacked_models_like_one_at_a_time():
    model = build_model(model_config("siren", width=8, depth=1))
    stacked = jax.vmap(lambda k: model.init(k, jnp.zeros((1, 2))))(jax.random.split(jax.random.key(0), 3))
    one = jax.tree.map(lambda x: x[1], stacked)
    h, w = 9, 5
    np.testing.assert_array_equal(render(model.apply, one, h, w, chunk_pixels=2 * w),
                                  render_grid(model.apply, one, (h, w), chunk_points=2 * w))
    many = render(model.apply, stacked, h, w, chunk_pixels=4 * w, stacked=True)
    assert many.shape == (3, h, w, 3)
    np.testing.assert_allclose(many[1], render(model.apply, one, h, w), atol=1e-6)
    region = Region(0.0, 1.0, -1.0, 0.5)
    np.testing.assert_allclose(render(model.apply, stacked, 4, 4, region, stacked=True)[2],
                               render(model.apply, jax.tree.map(lambda x: x[2], stacked), 4, 4, region), atol=1e-6)


def test_non_square_and_uint8_render():
    out = render(identity_apply, {}, 3, 5, out_dtype=np.uint8)
    assert out.shape == (3, 5, 2) and out.dtype == np.uint8
    expected = np.round(np.clip(np.asarray(make_grid(3, 5)), 0, 1) * 255)
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ValueError):
        render(identity_apply, {}, 0, 5)


# ------------------------------------------------------------------------------------------ losses


def test_losses_against_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(size=(50, 3)).astype(np.float32), rng.uniform(size=(50, 3)).astype(np.float32)
    assert float(mse_loss(a, b)) == pytest.approx(np.mean((a - b) ** 2), rel=1e-5)
    assert float(l1_loss(a, b)) == pytest.approx(np.mean(np.abs(a - b)), rel=1e-5)
    assert LOSSES.get("mse") is mse_loss and LOSSES.get("l1") is l1_loss


@pytest.mark.parametrize("fn", [mse_loss, l1_loss, mse, psnr])
def test_shape_mismatch_raises(fn):
    with pytest.raises(ValueError, match="shape"):
        fn(jnp.zeros((4, 3)), jnp.zeros((4, 1, 3)))
    with pytest.raises(ValueError, match="shape"):
        fn(jnp.zeros((4, 3)), jnp.zeros((4,)))


def test_ssim_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        ssim(np.zeros((16, 16, 3)), np.zeros((16, 16, 1)))
    with pytest.raises(ValueError):
        ssim(np.zeros((16, 16)), np.zeros((16, 16)))


# ------------------------------------------------------------------------------------------ metrics


def test_psnr_of_known_mse():
    assert float(psnr_from_mse(0.01)) == pytest.approx(20.0, abs=1e-5)
    assert float(psnr_from_mse(0.001)) == pytest.approx(30.0, abs=1e-5)
    assert float(psnr_from_mse(1.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(psnr_from_mse(4.0, data_range=2.0)) == pytest.approx(0.0, abs=1e-6)
    assert np.isinf(float(psnr_from_mse(0.0)))
    # an image off by exactly 0.1 everywhere has MSE 0.01 -> 20 dB
    target = np.full((8, 8, 3), 0.5, np.float32)
    assert float(psnr(target + 0.1, target)) == pytest.approx(20.0, abs=1e-3)


def test_psnr_and_mse_against_numpy(image):
    rng = np.random.default_rng(1)
    noisy = np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1).astype(np.float32)
    expected_mse = np.mean((noisy.astype(np.float64) - image) ** 2)
    assert float(mse(noisy, image)) == pytest.approx(expected_mse, rel=1e-5)
    assert float(psnr(noisy, image)) == pytest.approx(10 * np.log10(1 / expected_mse), abs=1e-4)


def test_ssim_identical_is_one(image):
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-6)


def test_ssim_orders_degradations(image):
    rng = np.random.default_rng(2)
    slightly = np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1).astype(np.float32)
    very = np.clip(image + rng.normal(0, 0.2, image.shape), 0, 1).astype(np.float32)
    constant = np.full_like(image, image.mean())
    s_slight, s_very, s_const = ssim(slightly, image), ssim(very, image), ssim(constant, image)
    assert 1.0 > s_slight > s_very
    assert s_const < 0.5


@pytest.mark.parametrize("noise, channels", [(0.05, 3), (0.2, 3), (0.1, 1)])
def test_ssim_matches_skimage(image, noise, channels):
    rng = np.random.default_rng(3)
    target = image[..., :channels]
    pred = np.clip(target + rng.normal(0, noise, target.shape), 0, 1).astype(np.float32)
    expected = structural_similarity(pred, target, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=1.0, channel_axis=-1)
    assert ssim(pred, target) == pytest.approx(expected, abs=1e-3)


def _uniform_window_ssim(pred: np.ndarray, target: np.ndarray, win: int = 7) -> float:
    """Wang et al.'s SSIM map with a flat win x win window and sample (N - 1) covariances, written out with
    numpy sliding windows, averaged over the pixels whose window lies inside the image (what SIREN/WIRE report)."""
    c1, c2, n = 0.01**2, 0.03**2, win * win
    values = []
    for c in range(pred.shape[-1]):
        x = np.lib.stride_tricks.sliding_window_view(pred[..., c].astype(np.float64), (win, win))
        y = np.lib.stride_tricks.sliding_window_view(target[..., c].astype(np.float64), (win, win))
        mx, my = x.mean(axis=(-1, -2)), y.mean(axis=(-1, -2))
        vx = ((x - mx[..., None, None]) ** 2).sum(axis=(-1, -2)) / (n - 1)
        vy = ((y - my[..., None, None]) ** 2).sum(axis=(-1, -2)) / (n - 1)
        cxy = ((x - mx[..., None, None]) * (y - my[..., None, None])).sum(axis=(-1, -2)) / (n - 1)
        values.append(((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))).mean())
    return float(np.mean(values))


def test_ssim_skimage_is_the_uniform_window_variant(image):
    rng = np.random.default_rng(4)
    pred = np.clip(image + rng.normal(0, 0.1, image.shape), 0, 1).astype(np.float32)
    assert ssim_skimage(pred, image) == pytest.approx(_uniform_window_ssim(pred, image), abs=1e-6)
    assert ssim_skimage(image, image) == pytest.approx(1.0, abs=1e-9)
    assert ssim_skimage(pred, image) > ssim(pred, image) + 0.01  # on this pair the flat window reads higher
    with pytest.raises(ValueError, match="7x7"):
        ssim_skimage(image[:5, :5], image[:5, :5])
