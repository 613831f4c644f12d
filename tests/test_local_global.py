"""Local-Global INRs (model_components.local_global) and their partition-major training (inr_utils.partitions):
routing, the grouped product, the two evaluation paths, fits through ``fit`` and the bad-input errors."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inr_utils.config import FitConfig
from inr_utils.croppable import (
    auto_partition,
    crop,
    extend,
    fit_extension,
    is_local,
    kept_box,
    kept_mask,
    partitions_along,
)
from inr_utils.errors import InputError
from inr_utils.fitting import fit
from inr_utils.grids import grid
from inr_utils.partitions import PartitionLayout, block_indices, layout_for, render_partitioned
from inr_utils.samplers import SAMPLERS, signal_to_data
from inr_utils.sweeps import fit_many
from model_components import local_global
from model_components.inrs import ModelConfig, build_model, count_params, model_config
from model_components.local_global import partition_index


def _image(size: int = 32) -> np.ndarray:
    """A smooth colour test image in [0, 1], ``(size, size, 3)``."""
    y, x = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    return np.stack([0.5 + 0.4 * np.sin(3 * x + y), 0.5 + 0.3 * np.cos(2 * y - x), 0.5 + 0.2 * x * y],
                    -1).astype(np.float32)


@pytest.mark.parametrize("shape,cells", [((32,), (8,)), ((8, 12), (4, 3)), ((4, 6, 8), (2, 3, 2))])
def test_routing_covers_every_sample_exactly_once(shape, cells):
    blocks = block_indices(shape, cells)  # (P, m): the samples of each grid cell
    assert blocks.shape == (math.prod(cells), math.prod(shape) // math.prod(cells))
    assert np.array_equal(np.sort(blocks.ravel()), np.arange(math.prod(shape)))  # a partition of the samples
    routed = np.asarray(partition_index(jnp.asarray(grid(shape).reshape(-1, len(shape))), cells))
    owner = np.empty(math.prod(shape), int)
    owner[blocks] = np.arange(blocks.shape[0])[:, None]
    assert np.array_equal(routed, owner)  # routing by position agrees with the blocks
    layout = PartitionLayout(shape, cells, tuple(range(math.prod(cells))), (0,) * len(shape))
    order = layout.eval_order()
    assert np.array_equal(np.sort(order), np.arange(math.prod(shape)))
    assert np.array_equal(routed[order], np.tile(np.arange(math.prod(cells)), len(order) // math.prod(cells)))


def test_overlapping_blocks_extend_into_neighbours_with_one_size():
    blocks = block_indices((16,), (4,), (2,))
    assert blocks.shape == (4, 8)
    assert list(blocks[0]) == list(range(8)) and list(blocks[1]) == list(range(2, 10))
    assert list(blocks[3]) == list(range(8, 16))  # shifted inward at the border


def test_partition_sampler_draws_the_same_count_from_every_partition():
    layout = PartitionLayout((16, 16), (4, 4), tuple(range(16)), (0, 0))
    _, data = layout.arrange(signal_to_data(np.zeros((16, 16, 1), np.float32)))
    coords, _ = SAMPLERS.get("partition")(64, partitions=16)(data, jax.random.key(0))
    assert coords.shape == (64, 2)
    owner = np.asarray(partition_index(coords, (4, 4))).reshape(4, 16)
    assert np.array_equal(owner, np.tile(np.arange(16), (4, 1)))


def test_grouped_local_layers_equal_one_siren_per_partition():
    # mode lc: partition s is a SIREN whose weights are slot s of the stacked local params
    config = model_config("lc_siren", partitions=(2, 2), width=8, depth=1, out_dim=3, dtype="float32")
    model = build_model(config)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 2)))
    siren = build_model(model_config("siren", width=8, depth=1, out_dim=3))
    coords = jax.random.uniform(jax.random.key(1), (5, 4, 2), minval=-1, maxval=1)
    grouped = jax.jit(lambda v, c: model.apply(v, c, method="partitioned"))(variables, coords)
    apply = jax.jit(siren.apply)
    for s in range(4):
        params = variables["params"]
        one = {"params": {"layer_0": params["local_0"], "layer_1": params["local_1"], "head": params["head"]}}
        one = jax.tree.map(lambda a, s=s: a[s], one)
        constants = {"constants": {"layer_0": variables["constants"]["local_0"],
                                   "layer_1": variables["constants"]["local_1"]}}
        want = apply({**one, **constants}, coords[:, s])
        np.testing.assert_allclose(np.asarray(grouped[:, s]), np.asarray(want), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("preset", ["lg_siren", "lg_siren_add", "lc_finer"])
def test_routed_apply_equals_partitioned_apply(preset):
    model = build_model(model_config(preset, partitions=(2, 4), width=8, global_width=8, depth=1, out_dim=2))
    variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 2)))
    layout = PartitionLayout((8, 8), (2, 4), tuple(range(8)), (0, 0))
    coords = jnp.asarray(grid((8, 8)).reshape(-1, 2))[jnp.asarray(layout.eval_order())]
    grouped, routed = jax.jit(lambda v, c: (layout.apply(model)(v, c), model.apply(v, c)))(variables, coords)
    np.testing.assert_allclose(np.asarray(grouped), np.asarray(routed), rtol=1e-5, atol=1e-6)
    if preset == "lg_siren":  # the grouped renderer puts every sample back in its place
        rendered = render_partitioned(model, variables, (8, 8), chunk_points=24)
        direct = jax.jit(model.apply)(variables, jnp.asarray(grid((8, 8))))
        np.testing.assert_allclose(rendered, np.asarray(direct), rtol=1e-5, atol=1e-6)


def test_routed_apply_in_chunks_equals_one_pass(monkeypatch):
    # many points: the routed path gathers weights chunk by chunk (lax.map), same values and gradients
    model = build_model(model_config("lg_siren", partitions=(2, 4), width=8, global_width=8, depth=1, out_dim=2))
    variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 2)))
    coords = jax.random.uniform(jax.random.key(1), (5, 7, 2), minval=-1, maxval=1)

    def value_and_grad(v, c):
        return jax.value_and_grad(lambda v: jnp.sum(jnp.sin(model.apply(v, c))))(v)

    whole = jax.jit(value_and_grad)(variables, coords)
    monkeypatch.setattr(local_global, "ROUTED_CHUNK_FLOATS", 300)  # 300 // 24 weights = 12 points per chunk
    assert "scan" in str(jax.make_jaxpr(lambda v, c: model.apply(v, c))(variables, coords))
    chunked = jax.jit(lambda v, c: value_and_grad(v, c))(variables, coords)
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(chunked), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode,threshold", [("lg", 30.0), ("lc", 26.0), ("mlp", 18.0)])
def test_modes_fit_a_tiny_image(mode, threshold):
    config = FitConfig(model=model_config("lg_siren", partitions=(4, 4), mode=mode, width=16, global_width=16,
                                          depth=1), steps=150, lr=1e-3, batch_size=None, steps_per_call=150)
    result = fit(_image(), config, progress=False, eval_every=150)
    assert result.history.column("full_psnr")[-1] > threshold


def test_fit_of_1d_and_3d_signals_with_overlap_and_batches():
    t = np.linspace(0, 1, 128, dtype=np.float32)
    audio = (0.5 + 0.4 * np.sin(2 * np.pi * 5 * t))[:, None]
    video = np.broadcast_to(_image(8)[None, :, :, :1], (4, 8, 8, 1)).copy()
    for signal, cells, overlaps, batch in ((audio, (8,), (2,), 64), (video, (2, 2, 2), (0, 0, 0), 256)):
        model = model_config("lg_siren", partitions=cells, overlaps=overlaps, width=8, global_width=8, depth=1)
        config = FitConfig(model=model, steps=100, lr=3e-3, batch_size=batch, steps_per_call=100)
        result = fit(signal, config, progress=False, eval_every=100)
        assert result.history.column("full_psnr")[-1] > 30.0


def test_bad_partition_grids_are_one_clear_error():
    config = FitConfig(model=model_config("lg_siren", partitions=(5, 4)), steps=1)
    with pytest.raises(InputError, match="signal axis 0 has 32 samples, not a multiple of its 5 partitions"):
        fit(_image(), config, progress=False)
    config = FitConfig(model=model_config("lg_siren", partitions=(8,)), steps=1)
    with pytest.raises(InputError, match=r"partition grid \(8,\) has 1 axes but the signal has 2 sample axes"):
        fit(_image(), config, progress=False)
    with pytest.raises(ValueError, match="unknown mode 'xl'"):
        model_config("lg_siren", mode="xl")
    assert layout_for(model_config("lg_siren", mode="mlp"), (32, 32)) is None


# ------------------------------------------------------------------------------ auto-partitioning, crop, extension


@pytest.mark.parametrize("shape,size,channels", [((512, 512), (32, 32), 3), ((100000,), (3125,), 1),
                                                 ((40, 128, 128), (8, 16, 16), 3), ((510, 339), (32, 32), 3)])
def test_auto_partition_meets_the_budget(shape, size, channels):
    plan = auto_partition(shape, size, channels)
    assert plan.partitions == tuple(max(1, round(n / s)) for n, s in zip(shape, size, strict=True))
    assert all(n % g == 0 for n, g in zip(plan.shape, plan.partitions, strict=True))
    model = build_model(model_config("lg_siren", in_dim=len(shape), out_dim=channels, **plan.overrides()))
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, len(shape))))
    assert count_params(variables["params"]) == plan.params  # the count is the model's, not an estimate
    assert abs(plan.params - 200_000) <= 20_000
    assert 0.03 < plan.global_params / plan.params < 0.2
    trunk = (len(shape) + 1) * plan.global_width + 3 * (plan.global_width + 1) * plan.global_width
    assert plan.trunk_params == trunk and 0.05 < trunk / plan.params < 0.15  # the share aims at the trunk only
    assert "parameters" in plan.describe() and "in the global trunk" in plan.describe()


def test_auto_partition_matches_the_reference_widths_on_audio():
    # The reference code's Bach run: 32 partitions, local width 42, global width 72 at 200k (its README); ours
    # counts the joining layer in the budget, so the global width comes out a few units different.
    plan = auto_partition((231_136,), (231_136 // 32,), 1)
    assert plan.partitions == (32,) and plan.width == 42 and abs(plan.global_width - 72) <= 6


def test_auto_partition_refuses_a_budget_too_small():
    with pytest.raises(ValueError, match="a budget of 50,000 parameters is too small for 4096 partitions"):
        auto_partition((512, 512), (8, 8), 3, budget=50_000)
    with pytest.raises(ValueError, match="partition_size must give"):
        auto_partition((512, 512), (8,), 3)


def _lg_model(**overrides):
    config = model_config("lg_siren", partitions=(4, 4), width=8, global_width=8, depth=1, **overrides)
    return config, jax.jit(build_model(config).init)(jax.random.key(0), jnp.zeros((1, 2)))


def test_crop_removes_parameters_and_decodes_the_kept_region_identically():
    config, variables = _lg_model()
    full = render_partitioned(build_model(config), variables, (16, 16))
    # the right grid column and partition 0 go: 5 of 16 partitions
    cropped_config, cropped = crop(config, variables, partitions=(0,), along={1: (3,)})
    assert cropped_config.kept == (1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14)
    local = sum(x.size for name, sub in variables["params"].items() if is_local(name) for x in jax.tree.leaves(sub))
    assert count_params(variables["params"]) - count_params(cropped["params"]) == local * 5 // 16
    part = render_partitioned(build_model(cropped_config), cropped, (16, 16), fill=np.nan)
    kept = ~np.isnan(part[..., 0])
    assert kept.sum() == 11 * 16
    np.testing.assert_allclose(part[kept], full[kept], rtol=0, atol=1e-6)
    assert partitions_along((4, 4), 0, (0,)) == (0, 1, 2, 3)
    assert np.array_equal(kept_mask(cropped_config, (16, 16)), kept)
    assert kept_box(cropped_config, (16, 16)) == (slice(0, 16), slice(0, 12))
    with pytest.raises(ValueError, match=r"partitions \[0\] are not in the model"):
        crop(cropped_config, cropped, partitions=(0,))


def test_extension_trains_the_new_partitions_only():
    config, variables = _lg_model(in_dim=2, out_dim=3)
    config, variables = crop(config, variables, along={1: (3,)})
    extended_config, extended, trainable = extend(config, variables, partitions_along((4, 4), 1, (3,)),
                                                  jax.random.key(3))
    assert extended_config.kept == ()  # every partition again
    fit_config = FitConfig(model=extended_config, steps=20, lr=1e-3, batch_size=None, steps_per_call=20)
    trained, history = fit_extension(_image(16), fit_config, extended, trainable, eval_every=20)
    frozen_same = jax.tree.map(lambda a, b, m: bool(jnp.all(jnp.where(m, True, a == b))),
                               trained["params"], extended["params"], trainable)
    new_moved = jax.tree.map(lambda a, b, m: bool(jnp.any(jnp.where(m, a != b, False))),
                             trained["params"], extended["params"], trainable)
    assert all(jax.tree.leaves(frozen_same))  # bit for bit
    assert all(moved for name, sub in new_moved.items() if is_local(name) for moved in jax.tree.leaves(sub))
    assert np.isfinite(history.column("full_psnr")[-1])


def test_many_signals_train_in_one_program_as_single_fits_do():
    images = np.stack([_image(16), _image(16)[::-1]])
    model = model_config("lg_siren", partitions=(4, 4), width=8, global_width=8, depth=1)
    config = FitConfig(model=model, steps=30, lr=3e-3, batch_size=None, steps_per_call=30)
    many = fit_many(config, images=images, progress=False, eval_every=30)
    for i in range(2):
        one = fit(images[i], config, progress=False, eval_every=30)
        assert abs(many.psnr[i] - one.history.column("full_psnr")[-1]) < 0.05


def test_a_saved_config_of_the_renamed_preset_loads_as_the_same_network():
    saved = model_config("lg_siren", partitions=(2, 2)).to_dict()
    saved["model"] = "lg_siren_concat"  # the name of the concat_and_fc preset before it became lg_siren
    loaded = ModelConfig.from_dict(saved)
    assert loaded.model == "lg_siren" and loaded.options.combine == "concat_and_fc"
    old_default = {**model_config("lg_siren_add").to_dict(), "model": "lg_siren"}  # a run saved before the change
    assert ModelConfig.from_dict(old_default).options.combine == "fc_and_add"  # its saved options win
