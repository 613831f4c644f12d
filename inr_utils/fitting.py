"""The end-to-end image fit behind ``experiments/fit_image.py``: config -> trained INR -> files.

:func:`fit` is the in-memory core (also what the README's Python example calls); :func:`run_fit` adds the
output folder: checkpoints, renders, metrics, history, config and the summary figure.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax

from inr_utils.callbacks import FullSignalEvaluator, History, PeriodicCheckpoint, ProgressBar
from inr_utils.checkpoints import latest_step, restore_checkpoint, save_checkpoint
from inr_utils.config import FitConfig
from inr_utils.errors import InputError
from inr_utils.images import default_image, load_image, save_image
from inr_utils.losses import LOSSES
from inr_utils.metrics import psnr, ssim
from inr_utils.plots import summary_figure
from inr_utils.rendering import render
from inr_utils.samplers import image_to_pixel_data, make_sampler
from inr_utils.training import (
    ONCE_COMPILER_OPTIONS,
    Callback,
    DivergenceError,
    ProgramCache,
    TrainingInterrupted,
    TrainState,
    create_train_state,
    make_lr_schedule,
    make_train_step,
    merge_variables,
    train,
)
from model_components.inrs import MLPINR, build_model, count_params


def load_config_image(config: FitConfig) -> np.ndarray:
    """The image a config fits: its ``image`` file (downscaled to ``max_size``) or the default astronaut."""
    if config.image is None:
        return default_image(config.max_size)
    return load_image(config.image, config.max_size)


def build_optimizer(config: FitConfig) -> optax.GradientTransformation:
    """Adam with the config's learning-rate schedule."""
    schedule = make_lr_schedule(config.lr, config.steps, config.lr_schedule, config.final_lr_fraction,
                                config.warmup_steps)
    return optax.adam(schedule)


#: Compiled initialisations of recent model and optimizer configs, see :func:`initial_state`.
_INIT_PROGRAMS = ProgramCache(32)


def initial_state(config: FitConfig, channels: int) -> tuple[MLPINR, optax.GradientTransformation, TrainState]:
    """Model, optimizer and step-0 state of a config for a signal with ``channels`` channels. The root key
    ``key(seed)`` is split into (init, loop) keys; the loop key is :func:`loop_key`.

    The state comes from one compiled program per model and optimizer configuration (cached in this process,
    with :data:`training.ONCE_COMPILER_OPTIONS`): 0.4-0.7 s to build the first time instead of the 1.3-1.8 s
    that op-by-op initialisation spends compiling its random draws, with the same values bit for bit.
    """
    config = _with_out_dim(config, channels)
    model = build_model(config.model)
    optimizer = build_optimizer(config)
    key = (json.dumps(config.model.to_dict(), sort_keys=True, default=str), config.lr, config.steps,
           config.lr_schedule, config.final_lr_fraction, config.warmup_steps)
    init = _INIT_PROGRAMS.get(key, lambda: jax.jit(
        lambda root: create_train_state(model, optimizer, jax.random.split(root)[0], config.model.in_dim),
        compiler_options=ONCE_COMPILER_OPTIONS))
    return model, optimizer, init(jax.random.key(config.seed))


def loop_key(config: FitConfig) -> jax.Array:
    """The key whose ``fold_in(., step)`` drives sampling at every step."""
    return jax.random.split(jax.random.key(config.seed))[1]


def _with_out_dim(config: FitConfig, channels: int) -> FitConfig:
    return dataclasses.replace(config, model=dataclasses.replace(config.model, out_dim=channels))


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
      model: the Flax module.
      state: final train state (``state.params`` are the INR's weights).
      history: per-step metrics.
      compile_s: seconds spent compiling the training chunks.
      wall_s: seconds of the training loop, compilation included.
      steps_run: steps taken by this call (fewer than ``state.step`` when resumed).
    """

    model: MLPINR
    state: TrainState
    history: History
    compile_s: float
    wall_s: float
    steps_run: int

    @property
    def variables(self) -> dict[str, Any]:
        """``model.apply``'s first argument."""
        return merge_variables(self.state.params, self.state.constants)


def fit(image: np.ndarray, config: FitConfig, state: TrainState | None = None, history: History | None = None,
        callbacks: Sequence[Callback] = (), progress: bool = True, eval_every: int = 200) -> FitResult:
    """Fits an INR to an ``(H, W, C)`` image in [0, 1].

    Args:
      image: float ``(H, W, C)`` array.
      config: the fit's config (validated here).
      state: state to resume from (default: fresh state from ``config.seed``).
      history: history of the steps before ``state.step`` (for resumed runs).
      callbacks: extra callbacks after the built-in evaluator, history and progress bar.
      progress: show a progress bar.
      eval_every: steps between full-image PSNR evaluations.

    Raises:
      DivergenceError, TrainingInterrupted: see :func:`inr_utils.training.train`.
    """
    if eval_every <= 0:
        raise InputError(f"eval_every must be a positive number of steps, got {eval_every}")
    config = _with_out_dim(config.validate(), image.shape[-1])
    model, optimizer, fresh = initial_state(config, image.shape[-1])
    state = fresh if state is None else state
    first_step = int(state.step)
    data = image_to_pixel_data(image)
    step_fn = make_train_step(model.apply, LOSSES.get(config.loss), optimizer)
    history = history if history is not None else History()
    bar = ProgressBar(config.steps, int(state.step), disable=not progress)
    all_callbacks = [FullSignalEvaluator(model.apply, data, eval_every), history, bar, *callbacks]
    try:
        result = train(state, data, loop_key(config), step_fn, make_sampler(config.batch_size, config.jitter),
                       config.steps, config.steps_per_call, all_callbacks)
    finally:
        bar.close()
    return FitResult(model, result.state, history, result.compile_s, result.wall_s,
                     int(result.state.step) - first_step)


# --------------------------------------------------------------------------------------------- output folder


def prepare_output_dir(out: str | Path | None, config: FitConfig, resume: bool = False) -> Path:
    """Returns the run folder, created and checked writable. A new run refuses a folder that already holds
    files (so nothing is overwritten); ``None`` picks ``runs/<time>-<model>``."""
    if out is None:
        out = Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{config.model.model}"
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"output path '{out}' is a file, not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not resume:
        raise InputError(f"output folder '{out}' is not empty; choose a new --out, or --resume {out} to continue")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise InputError(f"cannot write to output folder '{out}' ({err.strerror}); choose a writable --out") from None
    return out


def _write_text(path: Path, text: str) -> None:
    """Atomic text write (temporary file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_fit(config: FitConfig, out: str | Path | None = None, resume: bool = False, progress: bool = True,
            eval_every: int = 200, announce: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """Fits ``config`` and writes everything into the run folder; returns the metrics dict.

    Files: ``config.json``, ``reconstruction.png``, ``render_2x.png``, ``render_4x.png``, ``summary.png``,
    ``metrics.json``, ``history.csv`` and ``checkpoints/`` (Orbax). With ``resume``, ``out`` must be a run
    folder: its config and newest checkpoint are loaded (``config.steps`` may extend the run).
    ``announce(folder)`` is called once the run folder is known (before training).

    Raises:
      InputError: bad image, config or output folder (before anything is written).
      DivergenceError: the loss became NaN/inf; the last good state is checkpointed first.
      TrainingInterrupted: Ctrl-C; the state of the last complete chunk is checkpointed first.
    """
    config = config.validate()
    image = load_config_image(config)  # input errors surface before any file is written
    config = _with_out_dim(config, image.shape[-1])  # grayscale images get a 1-channel INR
    out = prepare_output_dir(out, config, resume)
    ckpt_dir = out / "checkpoints"
    state, history = None, None
    if resume:
        state, history = _resume_state(out, config, image.shape[-1])
    if announce is not None:
        announce(out)
    _write_text(out / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    checkpoint = PeriodicCheckpoint(ckpt_dir, config.to_dict(), config.checkpoint_every)
    history = history if history is not None else History()
    try:
        result = fit(image, config, state, history, [checkpoint], progress, eval_every)
    except (DivergenceError, TrainingInterrupted) as err:
        if checkpoint.last_saved != int(err.state.step):
            save_checkpoint(ckpt_dir, err.state, config.to_dict())
        _write_text(out / "history.csv", history.to_csv())
        raise
    if checkpoint.last_saved != int(result.state.step):
        save_checkpoint(ckpt_dir, result.state, config.to_dict())
    return write_results(out, config, image, result)


#: Config fields a resumed run may not change: they decide the parameter shapes or the signal itself.
FIXED_ON_RESUME = ("model", "image", "max_size")


def _resume_state(out: Path, config: FitConfig, channels: int) -> tuple[TrainState, History]:
    """The newest checkpoint and the history of the run in ``out``, after checking that ``config`` may
    continue it (same architecture and image, more steps)."""
    ckpt_dir = out / "checkpoints"
    step = latest_step(ckpt_dir)
    if step is None:
        raise InputError(f"'{out}' has no checkpoint to resume from; start a new run instead")
    if (out / "config.json").exists():
        saved = _with_out_dim(FitConfig.load(out / "config.json"), channels).to_dict()
        new = config.to_dict()
        changed = [name for name in FIXED_ON_RESUME if saved[name] != new[name]]
        if changed:
            details = changed if changed != ["model"] else [
                f"model.{k}" for k in new["model"] if new["model"][k] != saved["model"][k]]
            raise InputError(f"--resume cannot change {', '.join(details)} of the run in '{out}'; "
                             "drop those flags, or start a new run with --config")
    _, _, template = initial_state(config, channels)
    state = restore_checkpoint(ckpt_dir, template)
    step = int(state.step)  # older than the newest checkpoint when that one is damaged
    history = History.from_csv(out / "history.csv", step) if (out / "history.csv").exists() else History()
    if int(state.step) >= config.steps:
        raise InputError(f"the run in '{out}' already has {int(state.step)} steps; pass --steps larger than that")
    return state, history


def write_results(out: Path, config: FitConfig, image: np.ndarray, result: FitResult) -> dict[str, Any]:
    """Renders, scores and saves a finished fit into ``out``; returns the metrics dict."""
    h, w = image.shape[:2]
    variables = result.variables
    t0 = time.perf_counter()
    recon = render(result.model.apply, variables, h, w)
    render_2x = render(result.model.apply, variables, 2 * h, 2 * w)
    render_4x = render(result.model.apply, variables, 4 * h, 4 * w)
    render_s = time.perf_counter() - t0
    metrics = {
        "psnr": round(float(psnr(np.clip(recon, 0, 1), image)), 3),
        "psnr_unclipped": round(float(psnr(recon, image)), 3),
        "ssim": round(ssim(np.clip(recon, 0, 1), image), 4),
        "steps": int(result.state.step),
        "wall_s": round(result.wall_s, 2),
        "compile_s": round(result.compile_s, 2),
        "s_per_step": round((result.wall_s - result.compile_s) / max(1, result.steps_run), 5),
        "render_s": round(render_s, 2),
        "params": count_params(result.state.params),
        "image_size": [w, h],
        "channels": int(image.shape[-1]),
        "model": config.model.model,
    }
    for name, array in (("reconstruction", recon), ("render_2x", render_2x), ("render_4x", render_4x)):
        save_image(out / f"{name}.png", array)
    _write_text(out / "history.csv", result.history.to_csv())
    history = result.history
    evaluated = ~np.isnan(history.column("full_psnr"))
    tmp_fig = out / ".summary.tmp.png"
    summary_figure(tmp_fig, image, recon, render_2x, render_4x, history.column("step"), history.column("loss"),
                   history.column("step")[evaluated], history.column("full_psnr")[evaluated],
                   title=f"{config.model.model}: {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.3f}, "
                         f"{metrics['steps']} steps, {metrics['wall_s']:.0f} s")
    shutil.move(tmp_fig, out / "summary.png")
    _write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics
