"""The run folder of one fit (``experiments/fit_image.py``, ``fit_signal.py``): :func:`run_fit` wraps
:func:`inr_utils.fitting.fit` with checkpoints, resume, renders, metrics, history, config and the summary figure;
:func:`prepare_output_dir` is the folder check every training command shares.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inr_utils.callbacks import History, PeriodicCheckpoint, TensorBoardLog
from inr_utils.checkpoints import latest_step, restore_checkpoint, save_checkpoint
from inr_utils.config import FitConfig
from inr_utils.errors import InputError
from inr_utils.evaluation import collapse_warnings, constant_baseline_psnr
from inr_utils.files import atomic_write, write_text
from inr_utils.fitting import FitResult, check_signal, fit, initial_state, load_config_image, with_out_dim
from inr_utils.images import save_image
from inr_utils.metrics import psnr, ssim, ssim_skimage
from inr_utils.optim import schedule_horizon
from inr_utils.plots import summary_figure
from inr_utils.rendering import render, render_grid
from inr_utils.training import DivergenceError, TrainingInterrupted, TrainState, merge_variables
from model_components.inrs import build_model, count_params

__all__ = ["FIXED_ON_RESUME", "prepare_output_dir", "resume_note", "run_fit", "write_results"]


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
    config = with_out_dim(config, image.shape[-1], image.ndim - 1)  # grayscale images get a 1-channel INR
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
        saved = with_out_dim(FitConfig.load(out / "config.json"), channels, in_dim).to_dict()
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
