"""The end-to-end fit behind ``experiments/fit_image.py``: config (+ signal of any dimension) -> trained INR -> files.

:func:`fit` is the in-memory core (also what the README's Python example calls); :func:`run_fit` adds the
output folder: checkpoints, renders, metrics, history, config and the summary figure.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax

from inr_utils.callbacks import History, PeriodicCheckpoint, ProgressBar, TensorBoardLog
from inr_utils.checkpoints import latest_step, restore_checkpoint, save_checkpoint
from inr_utils.conditioning import with_signal
from inr_utils.config import FitConfig
from inr_utils.engine import (
    Callback,
    SweepInterrupted,
    make_chunk_program,
    plan_batch,
    shared_axes,
    single_model,
    train_many,
)
from inr_utils.errors import InputError, user_input
from inr_utils.evaluation import FullSignalEvaluator, collapse_warnings, constant_baseline_psnr, make_evaluator
from inr_utils.files import atomic_write, write_text
from inr_utils.images import default_image, load_image, save_image
from inr_utils.initialization import init_state
from inr_utils.losses import LOSSES
from inr_utils.metrics import psnr, ssim, ssim_skimage
from inr_utils.optim import build_optimizer, schedule_horizon
from inr_utils.partitions import layout_for
from inr_utils.plots import summary_figure
from inr_utils.programs import cached, model_key, training_key
from inr_utils.rendering import render, render_grid
from inr_utils.samplers import PixelData, make_sampler, signal_to_data
from inr_utils.training import (
    DivergenceError,
    TrainingInterrupted,
    TrainState,
    divergence_message,
    make_train_step,
    merge_variables,
)
from model_components.inrs import build_model, count_params
from model_components.mlp import MLPINR

__all__ = ["FitResult", "build_optimizer", "check_signal", "fit", "initial_state", "load_config_image", "loop_key",
           "mask_rows", "masked_data", "observed_signal", "prepare_output_dir", "run_fit", "write_results"]


def load_config_image(config: FitConfig) -> np.ndarray:
    """The image a config fits: its ``image`` file (downscaled to ``max_size``) or the default astronaut."""
    if config.image is None:
        return default_image(config.max_size)
    return load_image(config.image, config.max_size)


def initial_state(config: FitConfig, channels: int, in_dim: int | None = None,
                  ) -> tuple[MLPINR, optax.GradientTransformation, TrainState]:
    """Model, optimizer and step-0 state of a config for a signal with ``channels`` channels (and ``in_dim``
    sample axes; default: the config's): the one-model case of :func:`inr_utils.initialization.init_states` (one
    cached compiled program per model kind). The root key ``key(seed)`` is split into (init, loop) keys; the loop
    key is :func:`loop_key`."""
    config = _with_out_dim(config, channels, in_dim)
    return build_model(config.model), build_optimizer(config), init_state(config)[0]


def loop_key(config: FitConfig) -> jax.Array:
    """The key whose ``fold_in(., step)`` drives sampling at every step."""
    return jax.random.split(jax.random.key(config.seed))[1]


def _with_out_dim(config: FitConfig, channels: int, in_dim: int | None = None) -> FitConfig:
    """``config`` with its model's ``out_dim`` set to the signal's channels and (when given) ``in_dim`` to its
    number of sample axes d."""
    model = dataclasses.replace(config.model, out_dim=channels)
    if in_dim is not None:
        model = dataclasses.replace(model, in_dim=in_dim)
    return dataclasses.replace(config, model=model)


def check_signal(signal: np.ndarray) -> np.ndarray:
    """``signal`` as a float ``(*shape, C)`` array of d >= 1 sample axes and C >= 1 channels, or
    :class:`InputError`."""
    signal = np.asarray(signal) if not isinstance(signal, (np.ndarray, jax.Array)) else signal
    if signal.ndim < 2 or min(signal.shape) < 1:
        raise InputError(f"expected a signal of shape (*sample_axes, channels), e.g. (N, 1) audio, (H, W, C) image "
                         f"or (T, H, W, C) video, got shape {tuple(signal.shape)}")
    if not np.issubdtype(signal.dtype, np.floating):
        raise InputError(f"expected a float signal with values in [0, 1], got dtype {signal.dtype}")
    return signal


def mask_rows(mask: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The flat row indices (:func:`inr_utils.samplers.signal_to_data` order) where a boolean ``shape`` mask is
    true, ``(K,)`` int, or :class:`InputError` for a mask of another shape, not boolean/0-1, or all false."""
    mask = np.asarray(mask)
    shape = tuple(int(n) for n in shape)
    if mask.shape != shape:
        raise InputError(f"the mask has shape {mask.shape} but the signal's samples have shape {shape}; "
                         "give a mask of the signal's size")
    if mask.dtype != bool:
        if not np.all((mask == 0) | (mask == 1)):
            raise InputError("the mask must be binary (boolean, or only 0 and 1 values); threshold it first")
        mask = mask.astype(bool)
    rows = np.flatnonzero(mask.reshape(-1))
    if rows.size == 0:
        raise InputError("the mask hides every sample, so there is nothing to train on; keep some samples")
    return rows


def observed_signal(signal: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``signal (..., *shape, C)`` with the samples hidden by the boolean ``shape`` mask replaced by the mean of
    the visible ones (per leading index and channel): what a model conditioned on its signal may see."""
    signal, keep = np.asarray(signal, np.float32), np.asarray(mask, bool)[..., None]
    axes = tuple(range(signal.ndim - keep.ndim, signal.ndim - 1))
    mean = np.sum(signal * keep, axis=axes, keepdims=True) / max(1, int(keep.sum()))
    return np.where(keep, signal, mean).astype(np.float32)


def masked_data(data: PixelData, mask: np.ndarray, shape: Sequence[int]) -> PixelData:
    """The rows of flat ``data`` (of a signal with sample axes ``shape``) where ``mask`` is true (see
    :func:`mask_rows`); rows are indexed on the last-but-one axis, so a model axis in front is kept."""
    rows = mask_rows(mask, shape)
    return PixelData(data.coords[..., rows, :], data.values[..., rows, :], data.pixel_size)


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
        callbacks: Sequence[Callback] = (), progress: bool = True, eval_every: int = 200,
        mask: np.ndarray | None = None) -> FitResult:
    """Fits an INR to a signal in [0, 1]: the one-model case of the engine (:func:`inr_utils.engine.train_many`).

    Args:
      image: the signal, a float ``(*shape, C)`` array of any dimension d = ``len(shape)``: ``(H, W, C)`` image,
        ``(N, C)`` audio, ``(T, H, W, C)`` video or volume. Sample ``[i_0, ..., i_{d-1}]`` sits at the grid
        coordinates of :func:`inr_utils.grids.grid` (the last axis is x). The model's ``in_dim`` is set to d
        and its ``out_dim`` to C (a model whose encoding supports no such d, e.g. the hash grid in 1-D, raises
        ``ValueError``).
      config: the fit's config (validated here). A ``batch_size`` above the sample count is clamped to the full
        signal (with a warning).
      state: state to resume from (default: fresh state from ``config.seed``). Its optimizer state keeps the
        learning-rate schedule it was started with (see :mod:`inr_utils.optim`).
      history: history of the steps before ``state.step`` (for resumed runs).
      callbacks: extra single-model callbacks (``info.state`` one model's) after the built-in evaluator,
        history and progress bar.
      progress: show a progress bar.
      eval_every: steps between full-signal PSNR evaluations.
      mask: optional boolean ``shape`` array (the signal's sample axes): train only on the samples where it is
        true (inpainting). The other samples' values are never read, and the history's ``full_psnr`` is over
        the training samples only (score the hidden ones on a render).

    Raises:
      InputError: a step that cannot fit in memory, a bad ``eval_every``, signal shape or mask.
      DivergenceError: the loss became NaN/inf; carries the last good state.
      TrainingInterrupted: Ctrl-C or SIGTERM; carries the state after the last complete chunk.
    """
    if eval_every <= 0:
        raise InputError(f"eval_every must be a positive number of steps, got {eval_every}")
    image = check_signal(image)
    config = _with_out_dim(config.validate(), image.shape[-1], image.ndim - 1)
    data = signal_to_data(image)
    with user_input():  # the model's options against the signal (e.g. a partition grid that does not match it)
        model = build_model(config.model)
        # a partitioned model (Local-Global INR) trains and evaluates partition-major (inr_utils.partitions)
        layout = layout_for(config.model, image.shape[:-1])
    if mask is not None:
        if layout is not None:
            raise InputError("a training mask does not work with a partitioned model (its layout needs every "
                             "sample); drop the mask or pick an unpartitioned model")
        data = masked_data(data, mask, image.shape[:-1])
    apply_fn, train_data, align = model.apply, data, 1
    if layout is not None:
        apply_fn, (train_data, data), align = layout.apply(model), layout.arrange(data), layout.slots
    config = plan_batch(config, data.values.shape[0])
    fresh, key = init_state(config)
    if state is None:  # a model conditioned on its signal (INCODE) sees only the samples it trains on
        state = with_signal(fresh, image if mask is None else observed_signal(image, mask))
    first_step = int(state.step)
    axes = shared_axes()
    program_key = (model_key(config.model), training_key(config), tuple(axes), (), layout is not None)
    step_fn, sampler = cached(("step", *program_key), lambda: (
        make_train_step(apply_fn, LOSSES.get(config.loss), build_optimizer(config)),
        make_sampler(config.batch_size, config.jitter, config.sampler) if layout is None else
        layout.sampler(config.batch_size, config.jitter)))

    def make_chunk(num_steps: int):
        return cached(("chunk", *program_key, num_steps, None),
                      lambda: make_chunk_program(step_fn, sampler, num_steps, axes, None, single=True))

    shapes = tuple((x.shape, str(x.dtype)) for x in data)
    evaluate = cached(("eval", *program_key, shapes),
                      lambda: make_evaluator(apply_fn, data, axes, None, single=True, align=align))
    history = history if history is not None else History()
    bar = ProgressBar(config.steps, first_step, disable=not progress)
    all_callbacks = [FullSignalEvaluator(apply_fn, data, eval_every, evaluate=evaluate), history, bar,
                     *(single_model(c) for c in callbacks)]
    try:
        result = train_many(state, train_data, key, step_fn, sampler, config.steps, axes, None, config.steps_per_call,
                            all_callbacks, make_chunk=make_chunk, stop_when_all_diverged=True)
    except SweepInterrupted as err:
        raise TrainingInterrupted(err.state, err.signum) from None
    finally:
        bar.close()
    final = result.state
    if result.diverged_step[0] >= 0:
        raise DivergenceError(divergence_message(int(result.diverged_step[0]), bool(result.diverged_loss[0])), final)
    return FitResult(model, final, history, result.compile_s, result.wall_s, int(final.step) - first_step)


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


def run_fit(config: FitConfig, out: str | Path | None = None, resume: bool = False, progress: bool = True,
            eval_every: int = 200, announce: Callable[[Path], None] | None = None,
            log: Callable[[str], None] | None = None, signal: np.ndarray | None = None) -> dict[str, Any]:
    """Fits ``config`` and writes everything into the run folder; returns the metrics dict.

    Files: ``config.json``, ``reconstruction.png``, ``render_2x.png``, ``render_4x.png``, ``summary.png``,
    ``metrics.json``, ``history.csv``, ``checkpoints/`` (Orbax) and ``tensorboard/`` (loss and PSNR per step, the
    full-signal PSNR and, for an image, its reconstruction at every evaluation: :class:`TensorBoardLog`).
    With ``resume``, ``out`` must be a run folder: its config and newest checkpoint are loaded (``config.steps``
    may extend the run).
    ``signal``: the signal to fit instead of the config's image (any dimension, see :func:`fit`; a resumed run
    needs the same one again); a signal that is not an image gets no PNGs, SSIM or figure, and its
    reconstruction is saved as ``reconstruction.npy`` (``(*shape, C)`` float32) instead.
    ``announce(folder)`` is called once the run folder is known (before training); ``log(line)`` gets the
    run's notes (a resume, a collapsed PSNR; default: printed on stderr).

    A resumed run keeps the learning-rate schedule it was started with: extended past its planned steps, a
    decaying schedule stays at its final rate (see :mod:`inr_utils.optim`); the note says so.
    SIGTERM is handled like Ctrl-C (a checkpoint, then :class:`TrainingInterrupted`).

    Raises:
      InputError: bad image, config or output folder (before anything is written).
      DivergenceError: the loss became NaN/inf; the last good state is checkpointed first.
      TrainingInterrupted: Ctrl-C or SIGTERM; the state of the last complete chunk is checkpointed first.
    """
    log = log or _print_note
    config = config.validate()
    # input errors surface before any file is written
    image = load_config_image(config) if signal is None else check_signal(signal)
    config = _with_out_dim(config, image.shape[-1], image.ndim - 1)  # grayscale images get a 1-channel INR
    out = prepare_output_dir(out, config, resume)
    ckpt_dir = out / "checkpoints"
    state, history = None, None
    if resume:
        state, history = _resume_state(out, config, image.shape[-1], image.ndim - 1)
    if announce is not None:
        announce(out)
    if state is not None:
        log(resume_note(out, config, state))
    write_text(out / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    checkpoint = PeriodicCheckpoint(ckpt_dir, config.to_dict(), config.checkpoint_every)
    board = TensorBoardLog.create(out / "tensorboard", _image_renderer(config, image))
    history = history if history is not None else History()
    try:
        with warnings.catch_warnings(record=True) as caught:  # the run's notes go to the log, each once
            warnings.simplefilter("default", UserWarning)
            result = fit(image, config, state, history, [checkpoint, board], progress, eval_every)
        notes = []
        for w in caught:
            if issubclass(w.category, UserWarning):
                notes.append(str(w.message))
                log(f"warning: {w.message}")
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    except (DivergenceError, TrainingInterrupted) as err:
        if checkpoint.last_saved != int(err.state.step):
            save_checkpoint(ckpt_dir, err.state, config.to_dict())
        write_text(out / "history.csv", history.to_csv())
        raise
    finally:
        board.close()
    if checkpoint.last_saved != int(result.state.step):
        save_checkpoint(ckpt_dir, result.state, config.to_dict())
    metrics = write_results(out, config, image, result, notes)
    for message in metrics["warnings"][len(notes):]:
        log(f"warning: {message}")
    return metrics


def _image_renderer(config: FitConfig, signal: np.ndarray) -> Callable[[TrainState], np.ndarray] | None:
    """``state -> (H, W, C)`` render at the training size for TensorBoard, for an image signal (else None)."""
    if signal.ndim != 3 or signal.shape[-1] not in (1, 3):
        return None
    model = build_model(config.model)
    h, w = signal.shape[:2]
    return lambda state: render(model.apply, merge_variables(state.params, state.constants), h, w)


def _print_note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def resume_note(out: Path, config: FitConfig, state: TrainState) -> str:
    """``"resumed from step S of RUN; training to step N"``, plus what a longer run does to a decaying
    learning-rate schedule (it keeps the planned one: past its end the rate stays at its final value)."""
    step = int(state.step)
    note = f"resumed from step {step} of {out}; training to step {config.steps}"
    horizon = schedule_horizon(state.opt_state)
    if config.lr_schedule != "constant" and horizon is not None and horizon != config.steps:
        final = config.lr * config.final_lr_fraction
        if config.steps > horizon:
            note += (f"; the {config.lr_schedule} learning-rate schedule keeps its original {horizon} steps, "
                     f"so from step {horizon} on the rate stays at its final {final:.3g}")
        else:
            note += (f"; the {config.lr_schedule} learning-rate schedule keeps its original {horizon} steps and "
                     f"stops at step {config.steps}, before it reaches its final rate {final:.3g}")
    return note


#: Config fields a resumed run may not change: they decide the parameter shapes or the signal itself.
FIXED_ON_RESUME = ("model", "image", "max_size")


def _resume_state(out: Path, config: FitConfig, channels: int, in_dim: int = 2) -> tuple[TrainState, History]:
    """The newest checkpoint and the history of the run in ``out``, after checking that ``config`` may
    continue it (same architecture and image, more steps)."""
    ckpt_dir = out / "checkpoints"
    step = latest_step(ckpt_dir)
    if step is None:
        raise InputError(f"'{out}' has no checkpoint to resume from; start a new run instead")
    if (out / "config.json").exists():
        saved = _with_out_dim(FitConfig.load(out / "config.json"), channels, in_dim).to_dict()
        new = config.to_dict()
        changed = [name for name in FIXED_ON_RESUME if saved[name] != new[name]]
        if changed:
            details = changed if changed != ["model"] else [
                f"model.{k}" for k in new["model"] if new["model"][k] != saved["model"][k]]
            raise InputError(f"--resume cannot change {', '.join(details)} of the run in '{out}'; "
                             "drop those flags, or start a new run with --config")
    _, _, template = initial_state(config, channels, in_dim)
    state = restore_checkpoint(ckpt_dir, template)
    step = int(state.step)  # older than the newest checkpoint when that one is damaged
    history = History.from_csv(out / "history.csv", step) if (out / "history.csv").exists() else History()
    if int(state.step) >= config.steps:
        raise InputError(f"the run in '{out}' already has {int(state.step)} steps; pass --steps larger than that")
    return state, history


def write_results(out: Path, config: FitConfig, image: np.ndarray, result: FitResult,
                  notes: Sequence[str] = ()) -> dict[str, Any]:
    """Renders, scores and saves a finished fit into ``out``; returns the metrics dict. Its ``warnings`` list
    holds ``notes`` (e.g. a clamped batch size) and, for a run whose PSNR collapsed,
    :func:`inr_utils.evaluation.collapse_warnings`. ``image`` may be a signal of any dimension: one that is not
    an image (``(H, W, C)``) gets ``reconstruction.npy``, ``metrics.json`` and ``history.csv`` only."""
    if image.ndim != 3:
        return _write_signal_results(out, config, image, result, notes)
    h, w = image.shape[:2]
    variables = result.variables
    t0 = time.perf_counter()
    recon = render(result.model.apply, variables, h, w)
    render_2x = render(result.model.apply, variables, 2 * h, 2 * w)
    render_4x = render(result.model.apply, variables, 4 * h, 4 * w)
    render_s = time.perf_counter() - t0
    metrics = _fit_metrics(config, image, recon, result, render_s, notes,
                           ssim=round(ssim(np.clip(recon, 0, 1), image), 4),
                           ssim_skimage=round(ssim_skimage(np.clip(recon, 0, 1), image), 4) if min(h, w) >= 7 else None,
                           image_size=[w, h])
    for name, array in (("reconstruction", recon), ("render_2x", render_2x), ("render_4x", render_4x)):
        save_image(out / f"{name}.png", array)
    write_text(out / "history.csv", result.history.to_csv())
    history = result.history
    evaluated = ~np.isnan(history.column("full_psnr"))
    summary_figure(out / "summary.png", image, recon, render_2x, render_4x, history.column("step"),
                   history.column("loss"), history.column("step")[evaluated], history.column("full_psnr")[evaluated],
                   title=f"{config.model.model}: {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.3f}, "
                         f"{metrics['steps']} steps, {metrics['wall_s']:.0f} s")
    write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def _write_signal_results(out: Path, config: FitConfig, signal: np.ndarray, result: FitResult,
                          notes: Sequence[str]) -> dict[str, Any]:
    """:func:`write_results` of a signal that is not an image: its reconstruction at the training shape as
    ``reconstruction.npy``, ``history.csv`` and ``metrics.json`` (PSNR; no SSIM, which is defined for images)."""
    signal = np.asarray(signal, np.float32)
    t0 = time.perf_counter()
    recon = render_grid(result.model.apply, result.variables, signal.shape[:-1])
    render_s = time.perf_counter() - t0
    metrics = _fit_metrics(config, signal, recon, result, render_s, notes, ssim=None,
                           signal_shape=list(signal.shape[:-1]))
    atomic_write(out / "reconstruction.npy", lambda tmp: np.save(tmp, recon))
    write_text(out / "history.csv", result.history.to_csv())
    write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def _fit_metrics(config: FitConfig, signal: np.ndarray, recon: np.ndarray, result: FitResult, render_s: float,
                 notes: Sequence[str], **extra: Any) -> dict[str, Any]:
    """``metrics.json`` of a finished fit: PSNR (of the clipped and raw reconstruction), steps, timings, size,
    ``extra`` fields (SSIM, the signal's size) and the run's warnings (``notes`` plus a collapsed PSNR)."""
    metrics = {
        "psnr": round(float(psnr(np.clip(recon, 0, 1), signal)), 3),
        "psnr_unclipped": round(float(psnr(recon, signal)), 3),
        "steps": int(result.state.step),
        "wall_s": round(result.wall_s, 2),
        "compile_s": round(result.compile_s, 2),
        "s_per_step": round((result.wall_s - result.compile_s) / max(1, result.steps_run), 5),
        "render_s": round(render_s, 2),
        "params": count_params(result.state.params),
        "channels": int(signal.shape[-1]),
        "model": config.model.model,
        **extra,
    }
    best = np.nanmax(np.append(result.history.column("full_psnr"), metrics["psnr_unclipped"]))
    metrics["warnings"] = [*notes, *collapse_warnings(metrics["psnr"], float(best), constant_baseline_psnr(signal))]
    return metrics
