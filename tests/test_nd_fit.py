"""Signals of other dimensions through the engine: a 1-D toy signal (a sum of sines, 256 samples) and a 3-D one
(8 x 16 x 16 x 2) fit with ``fit`` (the model's ``in_dim`` set from the signal), render with ``render_grid`` to
the fit's own reconstruction, and ``fit_many`` of 1-D signals equals ``fit`` of each. The low-level pieces (grids,
samplers, a fit by plain train chunks) are in ``test_nd_signals.py``; here only the engine path. Also: a
checkpoint of an older release (another optimizer-state structure) is refused in one line."""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import optax
import pytest
from test_nd_signals import blob_3d, sines_1d

from inr_utils import FitConfig, InputError, fit, grid, render_grid, run_fit, signal_to_data
from inr_utils.checkpoints import restore_checkpoint, save_checkpoint
from inr_utils.evaluation import constant_baseline_psnr
from inr_utils.fitting import initial_state
from inr_utils.metrics import psnr
from inr_utils.sweeps import fit_many, unstack
from inr_utils.training import create_train_state
from model_components.inrs import model_config

# SIRENs small enough to fit in a second or two; the full-signal sampler (1-D) and random batches (3-D) both run.
CONFIG_1D = FitConfig(model=model_config("siren", width=32, depth=1, omega0=10.0, dtype="float32"), steps=300,
                      batch_size=None, lr=1e-3, lr_schedule="constant", steps_per_call=100, checkpoint_every=0)
CONFIG_3D = dataclasses.replace(CONFIG_1D, batch_size=512)


def rendered_psnr(result, signal: np.ndarray) -> float:
    recon = render_grid(result.model.apply, result.variables, signal.shape[:-1])
    assert recon.shape == signal.shape
    return float(psnr(recon, signal))


@pytest.fixture(scope="module")
def fits() -> dict:
    """One fit of each toy signal, shared by the tests below."""
    return {"1d": (sines_1d(), fit(sines_1d(), CONFIG_1D, progress=False, eval_every=100)),
            "3d": (blob_3d(channels=2), fit(blob_3d(channels=2), CONFIG_3D, progress=False, eval_every=100))}


@pytest.mark.parametrize("name, min_db", [("1d", 40.0), ("3d", 35.0)])
def test_fit_of_a_1d_and_a_3d_signal(fits, name, min_db):
    """The model's in_dim follows the signal; the fit beats the constant-mean baseline by far (measured: 1-D
    54 dB vs 14 dB, 3-D 43 dB vs 16 dB), and the engine's full-signal evaluation agrees with the render."""
    signal, result = fits[name]
    d = signal.ndim - 1
    kernel = result.state.params["layer_0"]["Linear_0"]["kernel"]
    assert kernel.shape[0] == d and result.state.params["head"]["kernel"].shape[-1] == signal.shape[-1]
    assert result.steps_run == 300 and int(result.state.step) == 300
    fitted, baseline = rendered_psnr(result, signal), constant_baseline_psnr(signal)
    assert fitted > min_db and fitted > baseline + 20.0, (fitted, baseline)
    assert abs(result.history.column("full_psnr")[-1] - fitted) < 0.01
    # the history's evaluations at 100, 200, 300 steps
    assert np.flatnonzero(~np.isnan(result.history.column("full_psnr"))).size == 3


@pytest.mark.parametrize("name", ["1d", "3d"])
def test_render_grid_is_the_fits_reconstruction_and_resamples(fits, name):
    """Rendering at the training shape evaluates the training samples (model.apply on signal_to_data's coords);
    at twice the shape, every training cell gets 2^d sub-samples close to the training one."""
    signal, result = fits[name]
    shape = signal.shape[:-1]
    recon = render_grid(result.model.apply, result.variables, shape, chunk_points=97)  # several padded slabs
    direct = np.asarray(result.model.apply(result.variables, signal_to_data(signal).coords)).reshape(signal.shape)
    np.testing.assert_allclose(recon, direct, atol=1e-5)
    np.testing.assert_allclose(np.asarray(grid(shape)).reshape(-1, len(shape)), signal_to_data(signal).coords)
    fine = render_grid(result.model.apply, result.variables, tuple(2 * n for n in shape))
    assert fine.shape == (*(2 * n for n in shape), signal.shape[-1]) and np.isfinite(fine).all()
    # the mean of each cell's 2^d sub-samples is close to the cell's value (smooth signals)
    cells = fine.reshape(*(x for n in shape for x in (n, 2)), signal.shape[-1])
    coarse = cells.mean(axis=tuple(range(1, 2 * len(shape), 2)))
    assert float(psnr(coarse, signal)) > 35.0  # measured: 54 dB (1-D), 43 dB (3-D)


def test_fit_many_of_1d_signals_equals_fit():
    """Two 1-D signals (a stack, model in_dim 1) fit side by side give the parameters of two ``fit`` calls."""
    config = dataclasses.replace(CONFIG_1D, model=model_config(base=CONFIG_1D.model, in_dim=1), steps=40,
                                 batch_size=64, steps_per_call=20, lr_schedule="cosine")
    signals = np.stack([sines_1d(64), 1.0 - sines_1d(64)])
    result = fit_many([config, dataclasses.replace(config, seed=3)], signals, progress=False, eval_every=20)
    assert result.configs[0].model.in_dim == 1 and result.num_models == 2
    for i, (signal, seed) in enumerate(zip(signals, (0, 3), strict=True)):
        single = fit(signal, dataclasses.replace(config, seed=seed), progress=False, eval_every=20)
        for want, got in zip(jax.tree.leaves(single.state.params), jax.tree.leaves(unstack(result, i)["params"]),
                             strict=True):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-5)
        assert abs(result.psnr_unclipped[i] - single.history.column("full_psnr")[-1]) < 0.01
    # a list of signals is a stack whatever the config's in_dim (default 2); an array must match in_dim
    listed = fit_many(dataclasses.replace(config, model=CONFIG_1D.model), list(signals), seeds=[0, 3],
                      progress=False, eval_every=20)
    np.testing.assert_allclose(listed.psnr_unclipped, result.psnr_unclipped, atol=0.01)
    with pytest.raises(InputError, match="in_dim=2"):
        fit_many(dataclasses.replace(config, model=CONFIG_1D.model), signals[0, :, 0], progress=False)


def test_bad_signals_and_dimensions_are_refused():
    with pytest.raises(InputError, match="sample_axes, channels"):
        fit(sines_1d()[:, 0], CONFIG_1D, progress=False)
    with pytest.raises(InputError, match="float"):
        fit(np.zeros((16, 1), np.uint8), CONFIG_1D, progress=False)
    hashgrid = dataclasses.replace(CONFIG_1D, model=model_config("hashgrid", dtype="float32"))
    with pytest.raises(ValueError, match="2-D or 3-D"):
        fit(sines_1d(16), hashgrid, progress=False)


def test_run_fit_of_a_3d_signal_writes_the_non_image_files(tmp_path):
    """``run_fit`` of a signal that is not an image: metrics, history, config, checkpoints and the
    reconstruction as .npy (no PNGs); the run can be resumed with the same signal."""
    signal = blob_3d((4, 8, 8))
    config = dataclasses.replace(CONFIG_3D, steps=40, steps_per_call=20, batch_size=128, checkpoint_every=20)
    metrics = run_fit(config, tmp_path / "run", progress=False, eval_every=20, signal=signal, log=lambda _: None)
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert files == {"config.json", "metrics.json", "history.csv", "checkpoints", "reconstruction.npy",
                     "tensorboard"}
    recon = np.load(tmp_path / "run" / "reconstruction.npy")
    assert recon.shape == signal.shape
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["ssim"] is None and saved["signal_shape"] == [4, 8, 8] and saved["steps"] == 40
    assert abs(saved["psnr"] - float(psnr(np.clip(recon, 0, 1), signal))) < 1e-3 and metrics == saved
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["in_dim"] == 3
    resumed = run_fit(dataclasses.replace(config, steps=60), tmp_path / "run", resume=True, progress=False,
                      eval_every=20, signal=signal, log=lambda _: None)
    assert resumed["steps"] == 60


def test_checkpoint_of_an_older_optimizer_state_is_refused_in_one_line(tmp_path):
    """A state saved with another optimizer-state structure (a plain ``optax.adam``, as releases before the
    engine's optimizer wrote) cannot be restored into today's template: one InputError naming the folder."""
    config = dataclasses.replace(CONFIG_1D, model=model_config("siren", width=8, depth=1, dtype="float32"))
    model, _, template = initial_state(config, 3)
    old = create_train_state(model, optax.adam(1e-3), jax.random.key(0), 2)
    save_checkpoint(tmp_path, old, config.to_dict())
    with pytest.raises(InputError, match="older flax-inr whose optimizer state differs") as err:
        restore_checkpoint(tmp_path, template)
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)
