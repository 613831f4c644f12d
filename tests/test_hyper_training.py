"""Hypernetwork training (hypernetwork_utils.training) on a stand-in hypernetwork: the step learns, a chunk equals
its steps, a resumed run equals an uninterrupted one; settings and presets."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from hyper_distributed_worker import BATCH, CHANNELS, SIZE, TinyHyper, dataset, make_chunks

from hypernetwork_utils.presets import TRAINING_PRESETS, training_preset
from hypernetwork_utils.training import (
    HyperTrainingSettings,
    build_hyper_optimizer,
    image_coords,
    init_hyper_state,
    make_hyper_evaluator,
    make_hyper_train_step,
    train_hypernetwork,
)
from inr_utils.callbacks import History
from inr_utils.checkpoints import restore_checkpoint, save_checkpoint
from inr_utils.training import DivergenceError, merge_variables


@pytest.fixture(scope="module")
def setup():
    """(model, step-0 state, train step with jitter 0.01, the same step without jitter): shared, so every test
    reuses the compiled chunks."""
    settings = HyperTrainingSettings(batch_size=BATCH, lr=3e-3, warmup_epochs=1, steps=40, jitter=0.01)
    model = TinyHyper()
    optimizer = build_hyper_optimizer(settings, steps_per_epoch=2)
    state = init_hyper_state(model, optimizer, jax.random.key(0), (SIZE, SIZE, CHANNELS))
    return (model, state, make_hyper_train_step(model.apply, optimizer, (SIZE, SIZE), 0.01),
            make_hyper_train_step(model.apply, optimizer, (SIZE, SIZE), 0.0))


def _close(a, b, **kw) -> bool:
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: np.allclose(x, y, **kw), a, b)))


def test_train_step_reduces_the_loss(setup):
    _, state, step, _ = setup
    history = History()
    train_hypernetwork(state, make_chunks(dataset(), BATCH), jax.random.key(1), step, 30, steps_per_call=2,
                       callbacks=[history])
    losses = history.loss[:, 0]
    assert losses.shape == (30,) and np.isfinite(losses).all()
    assert losses[-5:].mean() < 0.5 * losses[:3].mean()


def test_chunk_of_k_steps_equals_k_steps(setup):
    _, state, step, _ = setup
    chunks = make_chunks(dataset(), BATCH)
    key = jax.random.key(1)
    chunk_history, step_history = History(), History()
    chunked = train_hypernetwork(state, chunks, key, step, 3, steps_per_call=3, callbacks=[chunk_history]).state
    single = train_hypernetwork(state, chunks, key, step, 3, steps_per_call=1, callbacks=[step_history]).state
    assert chunk_history.chunk_steps.tolist() == [3] and step_history.chunk_steps.tolist() == [1, 2, 3]
    np.testing.assert_allclose(chunk_history.loss, step_history.loss, rtol=1e-5)
    assert int(chunked.step) == 3 and _close(chunked.params, single.params, rtol=1e-5, atol=1e-6)
    # and one step by hand: the batch of step s, key fold_in(key, s)
    by_hand, metrics = jax.jit(step)(state, chunks(0, 1)[0], jax.random.fold_in(key, 0))
    np.testing.assert_allclose(float(metrics["loss"]), step_history.loss[0, 0], rtol=1e-5)


def test_jitter_moves_the_queries_per_image(setup):
    model, state, jittered, plain = setup
    images = dataset()[:2]
    coords = image_coords(SIZE, SIZE)
    assert coords.shape == (SIZE * SIZE, 2)
    key = jax.random.key(3)
    _, ma = jax.jit(jittered)(state, images, key)
    _, mb = jax.jit(plain)(state, images, key)
    assert float(ma["loss"]) != float(mb["loss"])  # the jittered step sees other coordinates
    clean = model.apply(merge_variables(state.params, state.constants), images, coords)
    np.testing.assert_allclose(float(mb["loss"]), float(np.mean((clean - images.reshape(2, -1, 3)) ** 2)),
                               rtol=1e-5)


def test_resumed_run_equals_uninterrupted(setup, tmp_path):
    _, state, step, _ = setup
    chunks = make_chunks(dataset(), BATCH)
    key = jax.random.key(1)
    straight = train_hypernetwork(state, chunks, key, step, 6, steps_per_call=2).state
    half = train_hypernetwork(state, chunks, key, step, 3, steps_per_call=2).state  # chunks of 2 then 1
    save_checkpoint(tmp_path / "ck", half, {"note": "test"})
    restored = restore_checkpoint(tmp_path / "ck", state)
    assert int(restored.step) == 3
    resumed = train_hypernetwork(restored, chunks, key, step, 6, steps_per_call=2).state
    assert int(resumed.step) == 6
    assert _close(resumed.params, straight.params, rtol=1e-5, atol=1e-6)
    assert _close(resumed.opt_state, straight.opt_state, rtol=1e-5, atol=1e-6)


def test_divergence_raises_with_the_last_good_state(setup):
    _, state, step, _ = setup
    chunks = make_chunks(dataset() * np.nan, BATCH)
    with pytest.raises(DivergenceError) as err:
        train_hypernetwork(state, chunks, jax.random.key(1), step, 4, steps_per_call=2)
    assert int(err.value.state.step) == 0


def test_evaluator_matches_apply_and_pads_the_last_batch(setup):
    model, state, _, _ = setup
    images = dataset()[:5]
    variables = merge_variables(state.params, state.constants)
    recon = make_hyper_evaluator(model, (SIZE, SIZE), batch_size=2)(variables, images)
    direct = model.apply(variables, images, image_coords(SIZE, SIZE)).reshape(images.shape)
    np.testing.assert_allclose(recon, direct, rtol=1e-5, atol=1e-6)


def test_settings_presets_and_schedule():
    settings = HyperTrainingSettings()
    assert (settings.batch_size, settings.lr, settings.warmup_epochs, settings.jitter) == (16, 5e-4, 5.0, 0.01)
    assert HyperTrainingSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    with pytest.raises(ValueError, match="unknown training setting"):
        HyperTrainingSettings.from_dict({"batchsize": 3})
    with pytest.raises(ValueError, match="batch_size"):
        HyperTrainingSettings(batch_size=0).validate()
    paper = training_preset("gpu_paper")
    assert (paper.epochs, paper.batch_size, paper.lr, paper.warmup_epochs) == (40, 16, 5e-4, 5)
    assert set(TRAINING_PRESETS) == {"cpu", "gpu_paper"}
    with pytest.raises(ValueError, match="gpu_paper"):
        training_preset("tpu")
    # warm-up then cosine: rises linearly for 5 epochs, peaks at lr, decays to the final fraction at the end
    from inr_utils.optim import relative_lr

    s = HyperTrainingSettings(epochs=10, warmup_epochs=5, final_lr_fraction=0.0)
    assert (s.total_steps(100), s.warmup_steps(100)) == (1000, 500)
    lrs = np.asarray([float(relative_lr(c, 1000, "cosine", 0.0, 500)) for c in (0, 250, 500, 750, 1000)])
    np.testing.assert_allclose(lrs, [0, 0.5, 1, 0.5, 0], atol=1e-6)
