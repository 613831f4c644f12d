"""Training: convergence, determinism, chunking/resume invariance, checkpoints, divergence, interruption."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

from inr_utils.callbacks import History, PeriodicCheckpoint
from inr_utils.checkpoints import latest_step, load_config, restore_checkpoint, save_checkpoint
from inr_utils.config import FitConfig
from inr_utils.errors import InputError
from inr_utils.fitting import fit, initial_state, loop_key
from inr_utils.losses import mse_loss
from inr_utils.metrics import psnr
from inr_utils.optim import make_lr_schedule
from inr_utils.programs import ProgramCache
from inr_utils.rendering import render
from inr_utils.samplers import full_image_sampler, image_to_pixel_data, random_batch_sampler
from inr_utils.training import (
    DivergenceError,
    TrainingInterrupted,
    create_train_state,
    make_train_chunk,
    make_train_step,
    train,
)
from model_components.inrs import build_model, model_config


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def assert_trees_equal(a, b):
    la, lb = _leaves(a), _leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=False):
        np.testing.assert_array_equal(x, y)


def assert_trees_close(a, b, atol=1e-6):
    la, lb = _leaves(a), _leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=False):
        np.testing.assert_allclose(x, y, atol=atol, rtol=1e-5)


# ------------------------------------------------------------------------------------------ convergence


@pytest.mark.parametrize("name, steps, batch_size, lr, threshold", [
    # measured on the 32x32 synthetic image: relu_pe ~35 dB, siren ~51 dB
    ("relu_pe", 200, 512, 3e-3, 30.0),
    ("siren", 100, None, 1e-3, 42.0),
])
def test_fit_reaches_psnr(image, tiny_config, name, steps, batch_size, lr, threshold):
    config = tiny_config(name, width=64, depth=2, steps=steps, batch_size=batch_size, lr=lr, steps_per_call=steps // 2)
    result = fit(image, config, progress=False, eval_every=steps)
    assert int(result.state.step) == steps and result.steps_run == steps
    recon = render(result.model.apply, result.variables, 32, 32)
    value = float(psnr(np.clip(recon, 0, 1), image))
    assert value >= threshold
    # the history has one row per step; its loss went down; the on-device evaluator agrees with the render
    history = result.history
    assert history.column("step").tolist() == list(range(1, steps + 1))
    assert history.column("loss")[-10:].mean() < 0.1 * history.column("loss")[:3].mean()
    full_psnr = history.column("full_psnr")
    assert np.isnan(full_psnr[0]) and not np.isnan(full_psnr[-1])
    assert full_psnr[-1] == pytest.approx(float(psnr(recon, image)), abs=0.05)
    assert result.compile_s > 0 and result.wall_s >= result.compile_s


# ------------------------------------------------------------------------------------------ determinism


@pytest.fixture(scope="module")
def short_fits(image):
    """Fits of 40 steps used by several determinism checks (computed once)."""
    from conftest import make_tiny_config

    base = make_tiny_config("ffn", steps=40, steps_per_call=40, batch_size=128, jitter=True)
    fits = {
        "a": fit(image, base, progress=False),
        "a_again": fit(image, base, progress=False),
        "other_seed": fit(image, dataclasses.replace(base, seed=1), progress=False),
        "chunked": fit(image, dataclasses.replace(base, steps_per_call=15), progress=False),  # 15 + 15 + 10
        "first_20": fit(image, dataclasses.replace(base, steps=20, steps_per_call=20), progress=False),
    }
    return base, fits


def test_same_seed_same_params(short_fits):
    _, fits = short_fits
    assert_trees_equal(fits["a"].state.params, fits["a_again"].state.params)
    assert_trees_equal(fits["a"].state.opt_state, fits["a_again"].state.opt_state)
    np.testing.assert_array_equal(fits["a"].history.column("loss"), fits["a_again"].history.column("loss"))


def test_different_seed_different_params(short_fits):
    _, fits = short_fits
    a, b = _leaves(fits["a"].state.params), _leaves(fits["other_seed"].state.params)
    assert all(not np.allclose(x, y) for x, y in zip(a, b, strict=False))
    assert not np.allclose(fits["a"].state.constants["constants"]["encoding"]["B"],
                           fits["other_seed"].state.constants["constants"]["encoding"]["B"])


def test_chunking_invariance(short_fits):
    _, fits = short_fits
    # 40 steps in one call vs calls of 15 + 15 + 10 (the shorter last chunk compiles separately)
    assert int(fits["chunked"].state.step) == 40
    assert_trees_close(fits["a"].state.params, fits["chunked"].state.params, atol=1e-6)
    assert_trees_close(fits["a"].state.opt_state, fits["chunked"].state.opt_state, atol=1e-6)
    np.testing.assert_allclose(fits["a"].history.column("loss"), fits["chunked"].history.column("loss"), rtol=1e-5)
    # evaluations happen at chunk ends only (steps 15, 30 with eval_every=200: the first chunk and the last step)
    evaluated = fits["chunked"].history.column("step")[~np.isnan(fits["chunked"].history.column("full_psnr"))]
    assert evaluated.tolist() == [15, 40]


def test_resume_in_memory_equals_uninterrupted(image, short_fits):
    base, fits = short_fits
    first = fits["first_20"]
    assert int(first.state.step) == 20
    resumed = fit(image, base, state=first.state, history=first.history, progress=False)
    assert int(resumed.state.step) == 40 and resumed.steps_run == 20
    assert_trees_close(resumed.state.params, fits["a"].state.params, atol=1e-6)
    assert resumed.history.column("step").tolist() == list(range(1, 41))


def test_interrupt_and_resume_with_cosine_schedule(image, tiny_config, tmp_path):
    """A decaying schedule spans ``config.steps``: stopping (Ctrl-C) and resuming with the same config must
    reproduce the uninterrupted run, through a checkpoint."""
    config = tiny_config("relu_pe", steps=30, steps_per_call=10, lr=3e-3, lr_schedule="cosine")
    full = fit(image, config, progress=False)

    def stop_at_10(info):
        if info.step == 10:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted) as err:
        fit(image, config, callbacks=[stop_at_10], progress=False)
    assert int(err.value.state.step) == 10
    save_checkpoint(tmp_path, err.value.state, config.to_dict())
    restored = restore_checkpoint(tmp_path, initial_state(config, 3)[2])
    resumed = fit(image, FitConfig.from_dict(load_config(tmp_path)), state=restored, progress=False)
    assert int(resumed.state.step) == 30 and resumed.steps_run == 20
    assert_trees_close(resumed.state.params, full.state.params, atol=1e-6)


def test_resume_through_checkpoint_equals_uninterrupted(image, short_fits, tmp_path):
    base, fits = short_fits
    first = fits["first_20"]
    assert save_checkpoint(tmp_path / "ckpt", first.state, base.to_dict()) == 20
    assert latest_step(tmp_path / "ckpt") == 20
    _, _, template = initial_state(base, image.shape[-1])
    restored = restore_checkpoint(tmp_path / "ckpt", template)
    assert int(restored.step) == 20
    resumed = fit(image, base, state=restored, progress=False)
    assert_trees_close(resumed.state.params, fits["a"].state.params, atol=1e-6)


# ------------------------------------------------------------------------------------------ checkpoints


def test_checkpoint_round_trip(image, short_fits, tmp_path):
    base, fits = short_fits
    state = fits["a"].state
    directory = tmp_path / "checkpoints"
    save_checkpoint(directory, state, base.to_dict())
    _, _, template = initial_state(base, image.shape[-1])
    restored = restore_checkpoint(directory, template)
    assert int(restored.step) == 40
    assert restored.step.dtype == state.step.dtype
    assert_trees_equal(restored.params, state.params)
    assert_trees_equal(restored.constants, state.constants)
    assert_trees_equal(restored.opt_state, state.opt_state)
    assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(state)
    assert load_config(directory) == base.to_dict()
    assert FitConfig.from_dict(load_config(directory)) == base


def test_checkpoint_keeps_newest_two(image, tiny_config, tmp_path):
    config = tiny_config("relu_pe", width=8, num_frequencies=2)
    _, _, state = initial_state(config, 3)
    for step in (5, 10, 15):
        save_checkpoint(tmp_path, state.replace(step=jnp.asarray(step, jnp.int32)), {"step": step})
    assert latest_step(tmp_path) == 15
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["10", "15"]
    assert load_config(tmp_path) == {"step": 15}
    assert load_config(tmp_path, step=10) == {"step": 10}


def test_missing_checkpoint_is_input_error(tmp_path, tiny_config):
    assert latest_step(tmp_path / "nothing") is None
    assert latest_step(tmp_path) is None
    with pytest.raises(InputError, match="no checkpoint"):
        load_config(tmp_path)
    _, _, template = initial_state(tiny_config(width=8), 3)
    with pytest.raises(InputError, match="no checkpoint"):
        restore_checkpoint(tmp_path, template)


# ------------------------------------------------------------------------------------------ the loop itself


def _tiny_setup(image, lr_schedule, width=16):
    model = build_model(model_config("relu_pe", width=width, depth=1, num_frequencies=3))
    optimizer = optax.adam(lr_schedule)
    state = create_train_state(model, optimizer, jax.random.key(0))
    step = make_train_step(model.apply, mse_loss, optimizer)
    return model, state, step, image_to_pixel_data(image)


def test_make_train_chunk_metrics_shapes(image):
    _, state, step, data = _tiny_setup(image, 1e-3)
    run = make_train_chunk(step, random_batch_sampler(64), 7)
    new_state, metrics = run(state, data, jax.random.key(1))
    assert set(metrics) == {"loss", "psnr", "grad_norm"}
    for value in metrics.values():
        assert value.shape == (7,) and value.dtype == jnp.float32
        assert bool(jnp.all(jnp.isfinite(value)))
    assert int(new_state.step) == 7 and int(state.step) == 0  # the input state is not donated
    np.testing.assert_allclose(np.asarray(metrics["psnr"]), -10 * np.log10(np.asarray(metrics["loss"])), rtol=1e-4)


def test_divergence_raises_with_last_good_state(image):
    # lr 1e-3 for 15 steps, then 1e20: the first 10-step chunk is fine, the second one blows up.
    schedule = optax.join_schedules([optax.constant_schedule(1e-3), optax.constant_schedule(1e20)], [15])
    _, state, step, data = _tiny_setup(image, schedule)
    seen = []
    with pytest.raises(DivergenceError) as err:
        train(state, data, jax.random.key(0), step, full_image_sampler(), 40, steps_per_call=10,
              callbacks=[lambda info: seen.append(info.step)])
    good = err.value.state
    assert int(good.step) == 10
    assert seen == [10]  # callbacks never saw the bad chunk
    assert all(np.all(np.isfinite(x)) for x in _leaves(good.params))
    assert all(np.all(np.isfinite(x)) for x in _leaves(good.opt_state))
    message = str(err.value)
    assert "NaN" in message and "--lr" in message
    bad_step = int(message.split("at step ")[1].split(";")[0])
    assert 16 <= bad_step <= 20


def test_divergence_from_nan_loss(image):
    def nan_loss(pred, target):
        return mse_loss(pred, target) * jnp.nan

    model = build_model(model_config("relu_pe", width=8, depth=0, num_frequencies=2))
    optimizer = optax.adam(1e-3)
    state = create_train_state(model, optimizer, jax.random.key(0))
    with pytest.raises(DivergenceError, match="step 1;") as err:
        train(state, image_to_pixel_data(image), jax.random.key(0), make_train_step(model.apply, nan_loss, optimizer),
              full_image_sampler(), 10, steps_per_call=5)
    assert int(err.value.state.step) == 0
    assert_trees_equal(err.value.state.params, state.params)


def test_divergence_detected_when_the_last_update_is_not_finite(image):
    """A loss whose value is finite but whose gradient is NaN (the classic ``where`` pitfall): one step turns
    every parameter into NaN while the reported loss stays finite."""

    def nan_gradient_loss(pred, target):
        value = mse_loss(pred, target)
        return jnp.where(value >= 0, value, jnp.sqrt(-value))  # value finite; d/dvalue = NaN

    model = build_model(model_config("relu_pe", width=8, depth=0, num_frequencies=2, dtype="float32"))
    optimizer = optax.adam(1e-3)
    state = create_train_state(model, optimizer, jax.random.key(0))
    step = make_train_step(model.apply, nan_gradient_loss, optimizer)
    try:
        result = train(state, image_to_pixel_data(image), jax.random.key(0), step, full_image_sampler(), 1)
    except DivergenceError as err:
        assert all(np.all(np.isfinite(x)) for x in _leaves(err.state.params))
    else:
        assert all(np.all(np.isfinite(x)) for x in _leaves(result.state.params)), "finished with NaN params"


def test_divergence_state_is_finite_when_a_chunk_ends_on_a_bad_update(image):
    # the 10th update (the last of the first chunk) overflows every parameter; its loss is still finite
    schedule = optax.join_schedules([optax.constant_schedule(1e-3), optax.constant_schedule(jnp.inf)], [9])
    _, state, step, data = _tiny_setup(image, schedule)
    with pytest.raises(DivergenceError) as err:
        train(state, data, jax.random.key(0), step, full_image_sampler(), 20, steps_per_call=10)
    assert all(np.all(np.isfinite(x)) for x in _leaves(err.value.state.params))


def test_keyboard_interrupt_carries_last_state(image):
    _, state, step, data = _tiny_setup(image, 1e-3)

    def interrupt(info):
        if info.step >= 10:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted) as err:
        train(state, data, jax.random.key(0), step, random_batch_sampler(32), 30, steps_per_call=5,
              callbacks=[interrupt])
    assert isinstance(err.value, KeyboardInterrupt)
    assert int(err.value.state.step) == 10


def test_sigint_during_callbacks_keeps_history_consistent(image):
    import os
    import signal

    _, state, step, data = _tiny_setup(image, 1e-3)
    history = History()

    def sigint_at_step_10(info):  # stands for a Ctrl-C arriving while the evaluator runs
        if info.step == 10:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted) as err:
        train(state, data, jax.random.key(0), step, random_batch_sampler(32), 30, steps_per_call=5,
              callbacks=[sigint_at_step_10, history])
    assert len(history.rows) == int(err.value.state.step)


def test_fit_with_real_divergence(image, tiny_config):
    config = tiny_config("relu_pe", lr=1e20, steps=20, steps_per_call=10)
    with pytest.raises(DivergenceError) as err:
        fit(image, config, progress=False)
    assert int(err.value.state.step) == 0
    assert all(np.all(np.isfinite(x)) for x in _leaves(err.value.state.params))


def test_lr_schedules():
    const = make_lr_schedule(0.1, 100)
    assert float(const(0)) == pytest.approx(0.1) and float(const(99)) == pytest.approx(0.1)
    for name in ("cosine", "exponential"):
        sched = make_lr_schedule(0.1, 100, name, final_fraction=0.05)
        assert float(sched(0)) == pytest.approx(0.1, rel=1e-5)
        assert float(sched(100)) == pytest.approx(0.005, rel=1e-3)
        assert float(sched(50)) < 0.1
    warm = make_lr_schedule(0.1, 100, "cosine", 0.05, warmup_steps=10)
    assert float(warm(0)) == pytest.approx(0.0) and float(warm(5)) == pytest.approx(0.05, rel=1e-5)
    assert float(warm(10)) == pytest.approx(0.1, rel=1e-5) and float(warm(100)) == pytest.approx(0.005, rel=1e-3)
    with pytest.raises(ValueError):
        make_lr_schedule(0.1, 100, "linear")


def test_samplers(image):
    data = image_to_pixel_data(image)
    coords, values = random_batch_sampler(50)(data, jax.random.key(0))
    assert coords.shape == (50, 2) and values.shape == (50, 3)
    # values are those of the sampled pixels
    idx = np.asarray(jnp.argmin(jnp.sum((data.coords[None] - coords[:, None]) ** 2, -1), axis=1))
    np.testing.assert_array_equal(np.asarray(values), np.asarray(data.values)[idx])
    jittered, _ = random_batch_sampler(50, jitter=True)(data, jax.random.key(0))
    offset = np.abs(np.asarray(jittered - coords))
    assert np.all(offset <= np.asarray(data.pixel_size) / 2 + 1e-6) and offset.max() > 0
    full_coords, full_values = full_image_sampler()(data, jax.random.key(0))
    assert full_coords.shape == (1024, 2)
    np.testing.assert_array_equal(np.asarray(full_values), np.asarray(data.values))
    with pytest.raises(ValueError):
        random_batch_sampler(0)


def test_loop_key_and_init_depend_only_on_seed(tiny_config):
    a, b = tiny_config(seed=3), tiny_config(seed=3, steps=99, lr=0.5)
    assert bool(jnp.all(jax.random.key_data(loop_key(a)) == jax.random.key_data(loop_key(b))))
    assert_trees_equal(initial_state(a, 3)[2].params, initial_state(b, 3)[2].params)


def test_history_csv_round_trip(tmp_path):
    history = History([{"step": 1, "loss": 0.5, "batch_psnr": 3.0, "full_psnr": float("nan"), "elapsed_s": 0.1},
                       {"step": 2, "loss": 0.25, "batch_psnr": 6.0, "full_psnr": 5.5, "elapsed_s": 0.2}])
    (tmp_path / "h.csv").write_text(history.to_csv())
    back = History.from_csv(tmp_path / "h.csv")
    np.testing.assert_array_equal(back.column("step"), [1, 2])
    np.testing.assert_array_equal(back.column("loss"), [0.5, 0.25])
    assert np.isnan(back.column("full_psnr")[0]) and back.column("full_psnr")[1] == 5.5
    assert len(History.from_csv(tmp_path / "h.csv", up_to_step=1).rows) == 1


def test_fit_config_validation_and_json(tmp_path, tiny_config):
    config = tiny_config("siren", batch_size=None)
    config.save(tmp_path / "c.json")
    assert FitConfig.load(tmp_path / "c.json") == config
    for bad in (dict(steps=0), dict(lr=-1.0), dict(batch_size=0), dict(steps_per_call=0), dict(lr_schedule="step"),
                dict(loss="l3"), dict(final_lr_fraction=0.0), dict(warmup_steps=-1)):
        with pytest.raises(InputError):
            dataclasses.replace(config, **bad).validate()
    with pytest.raises(InputError, match="stpes"):
        FitConfig.from_dict({"stpes": 3})
    with pytest.raises(InputError):
        FitConfig.from_dict({"model": {"model": "nosuch"}})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="JSON"):
        FitConfig.load(tmp_path / "bad.json")
    with pytest.raises(InputError, match="does not exist"):
        FitConfig.load(tmp_path / "missing.json")


def test_run_fit_grayscale_end_to_end(tmp_path, tiny_config):
    """run_fit on a 1-channel PNG: a 1-channel INR, grayscale outputs, and render.py (a subprocess) on the run."""
    from conftest import run_script, write_png

    from inr_utils.fit_runs import run_fit

    gray = np.round(np.outer(np.linspace(0, 1, 16), np.linspace(1, 0.2, 12)) * 255).astype(np.uint8)  # 16x12
    path = write_png(tmp_path / "gray.png", gray)
    config = tiny_config("relu_pe", image=str(path), steps=10, steps_per_call=10)
    metrics = run_fit(config, tmp_path / "run", progress=False, eval_every=10)
    assert metrics["channels"] == 1 and metrics["image_size"] == [12, 16] and metrics["steps"] == 10
    with Image.open(tmp_path / "run" / "reconstruction.png") as img:
        assert img.mode == "L" and img.size == (12, 16)
    with Image.open(tmp_path / "run" / "render_2x.png") as img:
        assert img.size == (24, 32)
    assert FitConfig.load(tmp_path / "run" / "config.json").model.out_dim == 1
    # TensorBoard: per-step scalars, the evaluation's PSNR (= history.csv's) and the reconstruction image
    events = read_tensorboard_events(tmp_path / "run" / "tensorboard")
    scalars = {(v.tag, e.step): v.simple_value for e in events for v in e.summary.value if v.tag != "reconstruction"}
    assert sorted(step for tag, step in scalars if tag == "train/loss") == list(range(1, 11))
    full_psnr = History.from_csv(tmp_path / "run" / "history.csv").column("full_psnr")[-1]
    assert scalars[("val/psnr", 10)] == pytest.approx(full_psnr, abs=1e-3)
    images = [(e.step, v.image) for e in events for v in e.summary.value if v.tag == "reconstruction"]
    assert [(step, image.height, image.width) for step, image in images] == [(10, 16, 12)]
    rc, stdout, stderr = run_script("render.py", tmp_path / "run", "--height", "5", "--width", "7")
    assert rc == 0, stderr
    with Image.open(tmp_path / "run" / "render_5x7.png") as img:
        assert img.mode == "L" and img.size == (7, 5)


def read_tensorboard_events(folder: Path) -> list:
    """Every event of the TensorBoard files in ``folder`` (records: u64 length, u32 crc, event proto, u32 crc)."""
    from tensorboardX.proto.event_pb2 import Event

    events = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = Event()
            event.ParseFromString(data[at + 12:at + 12 + length])
            events.append(event)
            at += 12 + length + 4
    return events


def test_periodic_checkpoint(image, tiny_config, tmp_path):
    config = tiny_config("relu_pe", width=8, num_frequencies=2, steps=30, steps_per_call=10)
    checkpoint = PeriodicCheckpoint(tmp_path, config.to_dict(), every=15)
    fit(image, config, callbacks=[checkpoint], progress=False)
    # chunks end at 10, 20, 30: multiples of 15 are crossed in the chunks ending at 20 and 30
    assert checkpoint.last_saved == 30
    assert sorted(int(p.name) for p in tmp_path.iterdir() if p.is_dir()) == [20, 30]


def test_program_cache_reuses_and_drops_the_least_recently_used():
    made = []

    def maker(name):
        return lambda: made.append(name) or f"program {name}"

    cache = ProgramCache(size=2)
    assert cache.get("a", maker("a")) == "program a"
    cache.get("b", maker("b"))
    assert cache.get("a", maker("a")) == "program a"  # reused, and now the most recently used
    cache.get("c", maker("c"))  # evicts b
    cache.get("a", maker("a"))
    cache.get("b", maker("b"))  # made again
    assert made == ["a", "b", "c", "b"]
    cache.clear()
    cache.get("a", maker("a"))
    assert made[-1] == "a"
