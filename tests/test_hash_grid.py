"""Instant-NGP hash grid encoding: layout, indexing, interpolation, gradients, the preset and a tiny fit."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inr_utils.config import FitConfig
from inr_utils.fitting import fit
from inr_utils.metrics import psnr
from inr_utils.rendering import render
from model_components.catalog import ENCODINGS
from model_components.hash_grid import (
    HASH_PRIMES,
    HashGridEncoding,
    all_grid_vertices,
    grid_layout,
    hash_grid_lookup,
    hash_uniform,
    level_resolutions,
    spatial_hash,
)
from model_components.inrs import ModelConfig, build_model, model_config

#: A small 2-D grid: resolutions 4, 10, 25, 64; T = 1024, so levels 0-2 are dense and level 3 is hashed.
SMALL = dict(num_levels=4, features_per_level=3, log2_table_size=10, base_resolution=4, max_resolution=64)


lookup = jax.jit(hash_grid_lookup, static_argnums=1)


def numpy_row(vertex: np.ndarray, level: int, layout) -> np.ndarray:
    """Reference row of ``vertex`` ``(..., d)`` on ``level``, computed with numpy integers."""
    n, d = layout.resolutions[level], layout.in_dim
    v = vertex.astype(np.uint64)
    if layout.dense[level]:
        index = sum(v[..., i] * np.uint64((n + 1) ** i) for i in range(d))
    else:
        index = np.zeros(v.shape[:-1], np.uint64)
        for i in range(d):
            index ^= (v[..., i] * np.uint64(HASH_PRIMES[i])) % np.uint64(2**32)
        index %= np.uint64(layout.table_size)
    return index.astype(np.int64) + layout.offsets[level]


def random_table(encoding: HashGridEncoding, in_dim: int, seed: int = 0) -> dict:
    """Variables of ``encoding`` with a N(0, 1) table (so interpolated values are far from zero)."""
    rows = encoding.layout(in_dim).total_rows
    table = jax.random.normal(jax.random.key(seed), (rows, encoding.features_per_level))
    return {"params": {"table": table}}


def vertex_points(vertices: np.ndarray, resolution: int) -> jnp.ndarray:
    """Coordinates in [-1, 1] of the grid vertices ``(n, d)`` of a level with ``resolution`` cells per axis."""
    return jnp.asarray(2.0 * vertices / resolution - 1.0, jnp.float32)


# ----------------------------------------------------------------------------------------------- layout


def test_level_resolutions_follow_the_geometric_series():
    res = level_resolutions(16, 16, 256)
    b = np.exp((np.log(256) - np.log(16)) / 15)
    assert res == tuple(int(np.floor(16 * b**level + 1e-6)) for level in range(16))
    assert res[0] == 16 and res[-1] == 256
    assert all(a <= c for a, c in zip(res, res[1:], strict=False))
    assert level_resolutions(1, 8, 64) == (8,)


def test_layout_dense_prefix_and_sizes():
    layout = grid_layout(2, **SMALL_LAYOUT)
    assert layout.resolutions == (4, 10, 25, 64)
    assert layout.dense == (True, True, True, False)
    assert layout.sizes == (25, 121, 676, 1024)
    assert layout.offsets == (0, 25, 146, 822)
    assert layout.total_rows == 1846
    layout3 = grid_layout(3, num_levels=2, log2_table_size=10, base_resolution=4, max_resolution=16)
    assert layout3.dense == (True, False) and layout3.sizes == (125, 1024)


SMALL_LAYOUT = {k: v for k, v in SMALL.items() if k != "features_per_level"}


# ----------------------------------------------------------------------------------------------- indexing


@pytest.mark.parametrize("in_dim", [2, 3])
def test_dense_levels_have_no_collisions_and_hashed_levels_do(in_dim):
    log2_table_size = 7 if in_dim == 2 else 9  # levels of 3, 6, 12 cells: the last one hashed
    layout = grid_layout(in_dim, num_levels=3, log2_table_size=log2_table_size, base_resolution=3, max_resolution=12)
    assert layout.dense == (True, True, False)
    per_level = [all_grid_vertices(n, in_dim) for n in layout.resolutions]
    points = np.concatenate([v / n for v, n in zip(per_level, layout.resolutions, strict=True)])
    rows, weights = lookup(jnp.asarray(points, jnp.float32), layout)
    start = 0
    for level, vertices in enumerate(per_level):
        part = slice(start, start + len(vertices))
        start += len(vertices)
        # A point exactly on vertex v has weight 1 on v's corner, so that corner's row is v's row.
        corner = np.asarray(jnp.argmax(weights[part, level], axis=-1))
        vertex_rows = np.asarray(rows[part, level])[np.arange(len(vertices)), corner]
        np.testing.assert_array_equal(vertex_rows, numpy_row(vertices, level, layout))
        assert vertex_rows.min() >= layout.offsets[level]
        assert vertex_rows.max() < layout.offsets[level] + layout.sizes[level]
        distinct = len(np.unique(vertex_rows))
        if layout.dense[level]:
            assert distinct == len(vertices) == layout.sizes[level]  # one row per vertex: no collisions
        else:
            assert len(vertices) > layout.table_size
            assert distinct < len(vertices)  # more vertices than rows: collisions


def test_spatial_hash_matches_the_papers_formula():
    rng = np.random.default_rng(0)
    vertices = rng.integers(0, 5000, size=(100, 3))
    expected = np.zeros(100, np.uint64)
    for i in range(3):
        expected ^= (vertices[:, i].astype(np.uint64) * np.uint64(HASH_PRIMES[i])) % np.uint64(2**32)
    expected %= np.uint64(2**14)
    np.testing.assert_array_equal(np.asarray(spatial_hash(jnp.asarray(vertices, jnp.int32), 2**14)), expected)


# ----------------------------------------------------------------------------------------------- values


@pytest.mark.parametrize("in_dim", [2, 3])
def test_value_at_a_vertex_is_that_vertex_table_entry(in_dim):
    # vertex v at x = v / N_l: the position without tiny-cuda-nn's half-cell offset
    encoding = HashGridEncoding(**SMALL, half_cell_offset=False) if in_dim == 2 else HashGridEncoding(
        num_levels=2, features_per_level=2, log2_table_size=9, base_resolution=4, max_resolution=12,
        half_cell_offset=False)
    layout = encoding.layout(in_dim)
    variables = random_table(encoding, in_dim)
    table = np.asarray(variables["params"]["table"])
    f = encoding.features_per_level
    per_level = [all_grid_vertices(n, in_dim) for n in layout.resolutions]
    points = jnp.concatenate([vertex_points(v, n) for v, n in zip(per_level, layout.resolutions, strict=True)])
    out = np.asarray(jax.jit(encoding.apply)(variables, points))
    start = 0
    for level, vertices in enumerate(per_level):
        expected = table[numpy_row(vertices, level, layout)]
        got = out[start:start + len(vertices), level * f:(level + 1) * f]
        start += len(vertices)
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_interpolation_is_linear_along_an_edge():
    encoding = HashGridEncoding(**SMALL, half_cell_offset=False)  # vertices at v / N_l
    layout = encoding.layout(2)
    variables = random_table(encoding, 2, seed=1)
    table = np.asarray(variables["params"]["table"])
    f = encoding.features_per_level
    s = np.linspace(0.05, 0.95, 7)[:, None]
    cases, points = [], []
    for level, n in enumerate(layout.resolutions):
        v0 = np.array([n // 3, n // 2])
        for axis in range(2):
            v1 = v0 + np.eye(2, dtype=int)[axis]
            cases.append((level, v0, v1))
            points.append((v0 + s * (v1 - v0)) / n * 2.0 - 1.0)
    out = np.asarray(jax.jit(encoding.apply)(variables, jnp.asarray(np.concatenate(points), jnp.float32)))
    for i, (level, v0, v1) in enumerate(cases):
        got = out[i * len(s):(i + 1) * len(s), level * f:(level + 1) * f]
        t0, t1 = table[numpy_row(v0, level, layout)], table[numpy_row(v1, level, layout)]
        np.testing.assert_allclose(got, (1 - s) * t0 + s * t1, atol=2e-5)


def test_bilinear_inside_a_cell_matches_numpy():
    encoding = HashGridEncoding(num_levels=1, features_per_level=2, log2_table_size=8, base_resolution=8,
                                max_resolution=8, half_cell_offset=False)
    variables = random_table(encoding, 2, seed=2)
    table = np.asarray(variables["params"]["table"])
    layout = encoding.layout(2)
    point = np.array([0.3, 0.7])  # x01 = 0.65, 0.85 -> pos 5.2, 6.8 -> cell (5, 6), t = (0.2, 0.8)
    out = np.asarray(jax.jit(encoding.apply)(variables, jnp.asarray(point[None], jnp.float32)))[0]
    row = lambda v: table[numpy_row(np.array(v), 0, layout)]  # noqa: E731
    tx, ty = 0.2, 0.8
    expected = ((1 - tx) * (1 - ty) * row([5, 6]) + tx * (1 - ty) * row([6, 6]) + (1 - tx) * ty * row([5, 7])
                + tx * ty * row([6, 7]))
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_boundary_and_outside_points_are_clamped():
    encoding = HashGridEncoding(**SMALL)
    variables = random_table(encoding, 2)
    apply = jax.jit(encoding.apply)
    inside = apply(variables, jnp.array([[1.0, -1.0], [1.0, 1.0]]))
    outside = apply(variables, jnp.array([[1.5, -3.0], [2.0, 1.2]]))
    np.testing.assert_allclose(np.asarray(outside), np.asarray(inside), atol=1e-6)
    assert np.all(np.isfinite(np.asarray(inside)))


# ----------------------------------------------------------------------------------------------- shapes, init


def test_output_shapes_2d_and_3d():
    encoding = HashGridEncoding(**SMALL)
    apply = jax.jit(encoding.apply)
    out2 = apply(random_table(encoding, 2), jnp.zeros((5, 7, 2)))
    assert out2.shape == (5, 7, encoding.output_dim(2)) == (5, 7, 12)
    out3 = apply(random_table(encoding, 3), jnp.zeros((6, 3)))
    assert out3.shape == (6, 12) and out3.dtype == jnp.float32
    variables = encoding.init(jax.random.key(0), jnp.zeros((1, 3)))
    assert variables["params"]["table"].shape == (encoding.layout(3).total_rows, 3)
    for bad in (1, 4):
        with pytest.raises(ValueError, match="2-D or 3-D"):
            encoding.init(jax.random.key(0), jnp.zeros((1, bad)))


def test_table_init_is_small_uniform_and_seeded():
    encoding = HashGridEncoding()
    table = np.asarray(encoding.init(jax.random.key(0), jnp.zeros((1, 2)))["params"]["table"])
    assert table.shape == (encoding.layout(2).total_rows, 2)
    assert np.abs(table).max() <= 1e-4 and table.std() > 0.5e-4  # U(-1e-4, 1e-4): std 5.8e-5
    assert abs(table.mean()) < 1e-6
    again = np.asarray(encoding.init(jax.random.key(0), jnp.zeros((1, 2)))["params"]["table"])
    other = np.asarray(encoding.init(jax.random.key(1), jnp.zeros((1, 2)))["params"]["table"])
    np.testing.assert_array_equal(table, again)
    assert not np.allclose(table, other)
    # same numbers eagerly, under jit and under vmap
    key = jax.random.key(3)
    eager = hash_uniform(key, (4, 2), -1.0, 1.0)
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda k: hash_uniform(k, (4, 2), -1.0, 1.0))(key)), eager)
    stacked = jax.vmap(lambda k: hash_uniform(k, (4, 2), -1.0, 1.0))(jnp.stack([key, key]))
    np.testing.assert_array_equal(np.asarray(stacked[1]), eager)


def test_encoding_has_no_constants_and_is_registered():
    assert ENCODINGS.get("hashgrid") is HashGridEncoding
    variables = HashGridEncoding(**SMALL).init(jax.random.key(0), jnp.zeros((1, 2)))
    assert set(variables) == {"params"}


@pytest.mark.parametrize("options", [{"num_levels": 0}, {"features_per_level": 1.5}, {"log2_table_size": 31},
                                     {"base_resolution": 0}, {"base_resolution": 32, "max_resolution": 16},
                                     {"init_scale": -1.0}, {"num_levels": True}])
def test_bad_options_raise_value_error(options):
    with pytest.raises(ValueError):
        model_config("hashgrid", **options)


# ----------------------------------------------------------------------------------------------- gradients


def test_gradient_reaches_exactly_the_touched_entries():
    encoding = HashGridEncoding(**SMALL, half_cell_offset=False)  # vertices at v / N_l
    variables = random_table(encoding, 2)
    points = jax.random.uniform(jax.random.key(4), (20, 2), minval=-1.0, maxval=1.0)
    probe = jax.random.normal(jax.random.key(5), (20, encoding.output_dim(2)))
    grad = jax.jit(jax.grad(lambda v: jnp.sum(encoding.apply(v, points) * probe)))(variables)["params"]["table"]
    grad = np.asarray(grad)

    rows, weights = lookup((points + 1.0) / 2.0, encoding.layout(2))
    rows, weights = np.asarray(rows), np.asarray(weights)  # (20, L, 4)
    f = encoding.features_per_level
    expected = np.zeros_like(grad)
    per_level_probe = np.asarray(probe).reshape(20, -1, f)  # (20, L, F)
    np.add.at(expected, rows.reshape(-1), (weights[..., None] * per_level_probe[:, :, None, :]).reshape(-1, f))
    np.testing.assert_allclose(grad, expected, atol=1e-5)
    touched = np.zeros(len(grad), bool)
    touched[rows.reshape(-1)] = True
    assert np.all(grad[~touched] == 0.0)
    assert np.count_nonzero(np.abs(grad).sum(axis=1)) == touched.sum()


def test_gradient_with_respect_to_coordinates_matches_finite_differences():
    encoding = HashGridEncoding(**SMALL)
    variables = random_table(encoding, 2)
    probe = jax.random.normal(jax.random.key(6), (encoding.output_dim(2),))
    f = jax.jit(lambda x: jnp.sum(encoding.apply(variables, x) * probe))
    x = jnp.array([0.1234, -0.4321])
    grad = np.asarray(jax.jit(jax.grad(f))(x))
    eps = 1e-3
    for i in range(2):
        dx = jnp.zeros(2).at[i].set(eps)
        fd = (float(f(x + dx)) - float(f(x - dx))) / (2 * eps)
        np.testing.assert_allclose(grad[i], fd, rtol=2e-2, atol=1e-2)


def test_forward_mode_matches_reverse_mode():
    encoding = HashGridEncoding(**SMALL)
    variables = random_table(encoding, 2)
    probe = jax.random.normal(jax.random.key(7), (encoding.output_dim(2),))
    f = lambda x: jnp.sum(encoding.apply(variables, x) * probe)  # noqa: E731
    x, direction = jnp.array([0.31, -0.62]), jnp.array([0.6, 0.8])
    _, tangent = jax.jit(lambda x, d: jax.jvp(f, (x,), (d,)))(x, direction)
    grad = jax.jit(jax.grad(f))(x)
    np.testing.assert_allclose(float(tangent), float(grad @ direction), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------------- preset, fit


def test_preset_config_round_trips_through_json():
    config = model_config("hashgrid")
    assert config.encoding == "hashgrid" and config.layer == "dense"
    assert config.output_activation == "sigmoid"
    restored = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert build_model(restored) == build_model(config)
    changed = model_config("hashgrid", num_levels=8, log2_table_size=12)
    assert changed.encoding_options["num_levels"] == 8 and changed.encoding_options["log2_table_size"] == 12
    assert ModelConfig.from_dict(json.loads(json.dumps(changed.to_dict()))) == changed
    fit_config = FitConfig.from_dict({"model": "hashgrid"})
    assert fit_config.lr == pytest.approx(0.03) and fit_config.batch_size is None


def test_tiny_hashgrid_fits_a_small_image(image):
    """32x32 synthetic image, 4 levels (T = 256, so the finest levels hash), width 16, 40 full-image steps at
    lr 0.1: measured 34.9 dB; a ReLU MLP on raw coordinates stays below 20 dB in that budget."""
    model = model_config("hashgrid", width=16, num_levels=4, log2_table_size=8, base_resolution=4,
                         max_resolution=32)
    assert not all(grid_layout(2, 4, 8, 4, 32).dense)
    config = FitConfig(model=model, steps=40, batch_size=None, lr=0.1, lr_schedule="constant", steps_per_call=20,
                       checkpoint_every=0, max_size=32).validate()
    result = fit(image, config, progress=False, eval_every=40)
    recon = render(result.model.apply, result.variables, *image.shape[:2])
    assert float(psnr(recon, image)) > 32.0
