"""A hypernetwork training run and its folder: what ``experiments/train_hypernetwork.py`` calls.

:func:`run_training` loads the images, splits off the held-out ones, trains (:func:`train_hypernetwork`, data
parallel over every device of every process), and writes the run folder:

| file | what |
|---|---|
| ``config.json`` | ``{"hypernetwork": HyperConfig dict, "training": HyperTrainingSettings dict, "data": {...}}`` |
| ``checkpoints/`` | Orbax checkpoints of the :class:`~inr_utils.training.TrainState` (params = the hypernetwork's) |
| ``history.csv`` | per step: loss, batch PSNR; held-out PSNR (``full_psnr``) where evaluated; seconds |
| ``metrics.json`` | final numbers: held-out PSNR, steps, epochs, images/s, parameter count, devices |
| ``reconstructions.png`` | held-out images (top row) above their reconstructions by the hypernetwork's INRs |
| ``tensorboard/`` | the scalars of ``history.csv`` (TensorBoard event files) |

With several processes, every process calls :func:`run_training` with the same arguments; all of them write the
checkpoints together (Orbax's multi-host save: the folder must be on a file system every host sees), process 0
alone writes the other files.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from hypernetwork_utils.batches import Batches, train_val_split
from hypernetwork_utils.datasets import ImageSet, load_images
from hypernetwork_utils.distributed import SynchronizedStop, data_mesh, is_main_process, local_rows
from hypernetwork_utils.evaluation import reconstruct
from hypernetwork_utils.training import (
    HyperTrainingSettings,
    build_hyper_optimizer,
    init_hyper_state,
    make_hyper_train_step,
    train_hypernetwork,
)
from inr_utils.callbacks import History, PeriodicCheckpoint, ProgressBar, TensorBoardLog
from inr_utils.checkpoints import latest_step, restore_checkpoint, save_checkpoint
from inr_utils.engine import ChunkInfo
from inr_utils.errors import InputError, user_input
from inr_utils.files import write_text
from inr_utils.fit_runs import prepare_output_dir
from inr_utils.metrics import psnr
from inr_utils.plots import image_grid
from inr_utils.training import DivergenceError, TrainingInterrupted, merge_variables
from model_components.hypernetworks import HyperConfig, build_hypernetwork, hyper_config
from model_components.inrs import count_params

__all__ = ["run_training", "HeldOutPSNR", "ImagesProgressBar", "FIGURE_IMAGES",
           "run_config", "resume_settings"]

#: Held-out images shown in ``reconstructions.png``.
FIGURE_IMAGES = 8


class HeldOutPSNR:
    """Callback: the mean PSNR (dB) of the held-out images reconstructed from the current parameters, every
    ``every`` steps and at the last step, stored as ``info.extra["full_psnr"]`` (so :class:`History` records it
    and the progress bar shows it). Runs on this process's default device (host copy of the replicated params)."""

    def __init__(self, reconstruct: Callable[[Any, np.ndarray], np.ndarray], images: np.ndarray, every: int):
        self.reconstruct, self.images, self.every = reconstruct, images, every

    def __call__(self, info: ChunkInfo) -> None:
        previous = info.step - len(info.metrics["loss"])
        due = self.every > 0 and info.step // self.every > previous // self.every
        if (due or info.step == info.total_steps) and len(self.images):
            state = jax.device_get(info.state)
            recon = self.reconstruct(merge_variables(state.params, state.constants), self.images)
            info.extra["full_psnr"] = mean_psnr(recon, self.images)


def mean_psnr(recon: np.ndarray, images: np.ndarray) -> float:
    """Mean over images of each image's PSNR (dB, data range 1) of ``recon`` clipped to [0, 1]."""
    return float(np.mean([float(psnr(np.clip(r, 0, 1), i)) for r, i in zip(recon, images, strict=True)]))


class ImagesProgressBar(ProgressBar):
    """:class:`inr_utils.callbacks.ProgressBar` that also shows the training speed in images per second (over the
    last chunk, so compilation does not count)."""

    def __init__(self, total_steps: int, initial_step: int, batch_size: int, disable: bool = False):
        super().__init__(total_steps, initial_step, disable, desc="training")
        self.batch_size = batch_size
        self._last: float | None = None

    def __call__(self, info: ChunkInfo) -> None:
        now = time.perf_counter()
        if self._last is not None:
            rate = len(info.metrics["loss"]) * self.batch_size / max(now - self._last, 1e-9)
            info.extra["images_per_s"] = rate
        self._last = now
        super().__call__(info)
        if "images_per_s" in info.extra:
            self.bar.set_postfix_str(f"{self.bar.postfix}, img/s={info.extra['images_per_s']:.0f}")


def run_config(hyper: HyperConfig, settings: HyperTrainingSettings, data: Mapping[str, Any]) -> dict[str, Any]:
    """The run's ``config.json`` (and checkpoint config): ``{"hypernetwork", "training", "data"}``."""
    return {"hypernetwork": hyper.to_dict(), "training": settings.to_dict(), "data": dict(data)}


#: Training settings a resumed run may change: its length (the schedule keeps its planned horizon).
RESUMABLE = ("epochs", "steps")


def resume_settings(saved: Mapping[str, Any], overrides: Mapping[str, Any]) -> HyperTrainingSettings:
    """The saved settings of a run with ``overrides`` of :data:`RESUMABLE` only.

    Raises:
      InputError: an override of another setting (it would change the data, the batches or the program).
    """
    settings = dict(saved)
    changed = sorted(k for k, v in overrides.items() if v is not None and k not in RESUMABLE and settings.get(k) != v)
    if changed:
        raise InputError(f"--resume cannot change {', '.join(changed)} of the run; drop those flags (only --epochs "
                         "or --steps may extend it)")
    if overrides.get("steps") is not None:
        settings["steps"] = overrides["steps"]
    elif overrides.get("epochs") is not None:
        settings.update(epochs=overrides["epochs"], steps=None)
    return HyperTrainingSettings.from_dict(settings)


def read_resume_folder(out: str | Path | None, section: str, from_dict: Callable[[Mapping[str, Any]], Any],
                       overrides: Mapping[str, Any] | None, data: str | None, script: str
                       ) -> tuple[Path, Any, HyperTrainingSettings, dict[str, Any]]:
    """The saved configuration of the run folder ``out`` that ``--resume`` continues.

    Args:
      out: the run folder (``config.json`` inside, as written by ``script``).
      section: the key of the model's configuration in ``config.json`` (``"hypernetwork"``, ``"meta"``).
      from_dict: builds that configuration from its saved dictionary.
      overrides: the settings given again (see :func:`resume_settings`).
      data: the ``--data`` given again, or ``None`` for the run's own.
      script: the script that writes such folders, named in the messages.

    Returns:
      ``(out, model configuration, settings, saved data description)``; the run's data is its ``"path"``.

    Raises:
      InputError: no folder, not a run folder of ``script``, a setting that may not change, other data.
    """
    if out is None:
        raise InputError("--resume needs the run folder to continue")
    out = Path(out)
    if not (out / "config.json").is_file():
        raise InputError(f"'{out}' is not a {script} run folder (no config.json); pass the --out of an earlier "
                         f"{script} run")
    saved = json.loads((out / "config.json").read_text())
    try:
        config = from_dict(saved[section])
        settings = resume_settings(saved["training"], overrides or {})
        data_info = saved["data"]
    except KeyError as err:
        raise InputError(f"'{out}/config.json' lacks {err}; it was not written by {script}") from None
    if data is not None and data != data_info["path"]:
        raise InputError(f"--resume continues on the run's own data '{data_info['path']}'; pass --data "
                         f"{data_info['path']}")
    return out, config, settings, data_info


def _log(line: str) -> None:
    if is_main_process():
        print(line, file=sys.stderr, flush=True)


def _load(data: str, image_size: Any, val_count: int, seed: int, channels: int | None = None,
          ) -> tuple[ImageSet, ImageSet]:
    images = load_images(data, size=image_size, channels=channels)
    return train_val_split(images, val_count=val_count, seed=seed)


def run_training(model: str | None, data: str | None, settings: HyperTrainingSettings | None = None,
                 options: Mapping[str, Any] | None = None, out: str | Path | None = None, resume: bool = False,
                 image_size: int | None = None, progress: bool = True,
                 announce: Callable[[Path], None] | None = None,
                 overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Trains a hypernetwork on the images ``data`` names and writes the run folder; returns the metrics dict.

    Args:
      model: a :data:`model_components.hypernetworks.HYPERNETWORKS` name (new runs; ignored on resume).
      data: what :func:`hypernetwork_utils.datasets.load_images` takes: a CIFAR-10 folder, a folder of images,
        ``lfw``; on resume ``None`` (the run's own) or the same.
      settings: the training settings (new runs; default :class:`HyperTrainingSettings`).
      options: the architecture's options (``--set``); ``image_size`` and ``channels`` come from the data.
      out: the run folder (new or empty; default ``runs/<time>-hyper-<model>``), or the folder to resume.
      resume: continue the run in ``out`` from its newest intact checkpoint; its config decides everything but
        the length, which ``overrides`` (``epochs`` / ``steps``) may extend.
      image_size: side of the images in pixels (default: the data's own; folders and LFW: 32).
      progress: show the progress bar (process 0).
      announce: called with the run folder once every input has been checked.
      overrides: on resume, settings given again (only ``epochs`` / ``steps`` may differ from the saved ones).

    Raises:
      InputError: bad data, model, option, setting or folder (before anything is written).
      DivergenceError: the loss became NaN/inf; the last good state is checkpointed first.
      TrainingInterrupted: Ctrl-C or SIGTERM; the state of the last complete chunk is checkpointed first.
    """
    with user_input():  # options, settings and data come from the user: their ValueErrors are bad input
        if resume:
            out, hyper, settings, data_info = read_resume_folder(
                out, "hypernetwork", HyperConfig.from_dict, overrides, data, "train_hypernetwork.py")
            data = data_info["path"]
            train_set, val_set = _load(data, tuple(data_info["image_size"]), data_info["val_count"], data_info["seed"],
                                       data_info.get("channels"))
        else:
            settings = (settings or HyperTrainingSettings()).validate()
            if model is None or data is None:
                raise InputError("a new run needs --model and --data (or --resume RUN_DIR to continue one)")
            train_set, val_set = _load(data, image_size, settings.val_count, settings.seed)
            hyper = hyper_config(model, **{**(options or {}), "image_size": list(train_set.image_size),
                                           "channels": train_set.channels})
            data_info = {"path": str(data), "val_count": settings.val_count, "seed": settings.seed,
                         "image_size": list(train_set.image_size), "channels": train_set.channels,
                         "split": "train", "train_count": len(train_set), "source": train_set.source}
        config = run_config(hyper, settings, data_info)

        mesh = data_mesh()
        local_rows(settings.batch_size, mesh)
        batches = Batches(train_set, settings.batch_size, settings.seed, jax.process_index(), jax.process_count())
        total = settings.total_steps(batches.steps_per_epoch)
    module = build_hypernetwork(hyper)
    optimizer = build_hyper_optimizer(settings, batches.steps_per_epoch)
    h, w = hyper.image_size
    root = jax.random.key(settings.seed)
    state = init_hyper_state(module, optimizer, jax.random.fold_in(root, 0), (h, w, hyper.channels), mesh)

    if out is None:
        out = Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-hyper-{hyper.architecture}"
    out = prepare_output_dir(out, None, resume)  # every process checks the folder before any of them writes
    ckpt_dir = out / "checkpoints"
    history = History()
    if resume:
        if latest_step(ckpt_dir) is None:
            raise InputError(f"'{out}' has no checkpoint to resume from; start a new run instead")
        state = restore_checkpoint(ckpt_dir, state)
        step = int(np.asarray(jax.device_get(state.step)))
        if step >= total:
            raise InputError(f"the run in '{out}' already has {step} steps; pass --steps (or --epochs) beyond that")
        if (out / "history.csv").exists():
            history = History.from_csv(out / "history.csv", step)
    _sync("hyper-run-checked")
    if announce is not None and is_main_process():
        announce(out)
    first = int(np.asarray(jax.device_get(state.step)))
    if resume:
        _log(f"resumed from step {first} of {out}; training to step {total}")
    _log(f"{hyper.architecture}: {count_params(state.params):,} parameters; {len(train_set)} training and "
         f"{len(val_set)} held-out images of {h}x{w}x{hyper.channels}; {total} steps "
         f"({total / batches.steps_per_epoch:.2f} epochs of {batches.steps_per_epoch}); "
         f"{len(jax.devices())} device(s), {jax.process_count()} process(es)")
    if is_main_process():
        write_text(out / "config.json", json.dumps(config, indent=2) + "\n")

    val_images = val_set.as_float()
    reconstruct_held_out = functools.partial(reconstruct, module, batch_size=64)
    checkpoint = PeriodicCheckpoint(ckpt_dir, config, settings.checkpoint_every)  # every process: Orbax's save
    callbacks: list[Callable[[ChunkInfo], None]] = []
    bar, board = None, None
    if is_main_process():
        bar = ImagesProgressBar(total, first, settings.batch_size, disable=not progress)
        board = TensorBoardLog.create(out / "tensorboard")
        held_out = HeldOutPSNR(reconstruct_held_out, val_images, settings.eval_every)
        callbacks = [held_out, history, bar, board]
    callbacks += [checkpoint, SynchronizedStop()]  # the same stopping step in every process
    key = jax.random.fold_in(root, 1)
    step_fn = make_hyper_train_step(module.apply, optimizer, (h, w), settings.jitter)
    try:
        result = train_hypernetwork(state, batches.chunk, key, step_fn, total, mesh, settings.steps_per_call,
                                    callbacks)
    except (DivergenceError, TrainingInterrupted) as err:
        if checkpoint.last_saved != int(np.asarray(jax.device_get(err.state.step))):
            save_checkpoint(ckpt_dir, err.state, config)
        if is_main_process():
            write_text(out / "history.csv", history.to_csv())
        raise
    finally:
        if bar is not None:
            bar.close()
        if board is not None:
            board.close()
    final_step = int(np.asarray(jax.device_get(result.state.step)))
    if checkpoint.last_saved != final_step:
        save_checkpoint(ckpt_dir, result.state, config)
    metrics = {}
    if is_main_process():
        metrics = _write_results(out, hyper, settings, result, history, reconstruct_held_out, val_images,
                                 batches.steps_per_epoch)
    _sync("hyper-run-written")
    return metrics


def _sync(name: str) -> None:
    """A barrier of every process (nothing with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _write_results(out: Path, hyper: HyperConfig, settings: HyperTrainingSettings, result: Any, history: History,
                   reconstruct: Callable, val_images: np.ndarray, steps_per_epoch: int) -> dict[str, Any]:
    """history.csv, reconstructions.png and metrics.json of a finished run (process 0)."""
    state = jax.device_get(result.state)
    variables = merge_variables(state.params, state.constants)
    recon = reconstruct(variables, val_images)
    val_psnr = mean_psnr(recon, val_images) if len(val_images) else None
    write_text(out / "history.csv", history.to_csv())
    shown = min(FIGURE_IMAGES, len(val_images))
    if shown:
        image_grid(out / "reconstructions.png", [list(val_images[:shown]), list(np.clip(recon[:shown], 0, 1))],
                   [["held out"] * shown, [f"{float(psnr(np.clip(r, 0, 1), i)):.1f} dB"
                                           for r, i in zip(recon[:shown], val_images[:shown], strict=True)]],
                   row_labels=["original", "reconstruction"],
                   suptitle=f"{hyper.architecture}: held-out PSNR {val_psnr:.2f} dB after {int(state.step)} steps",
                   cell_inches=1.6)
    steps = int(state.step)
    train_s = max(result.wall_s - result.compile_s, 1e-9)
    metrics = {
        "model": hyper.architecture,
        "val_psnr": None if val_psnr is None else round(val_psnr, 3),
        "val_count": len(val_images),
        "train_batch_psnr": round(float(np.mean(history.batch_psnr[-min(len(history.batch_psnr), 50):])), 3)
        if len(history.batch_psnr) else None,
        "steps": steps,
        "epochs": round(steps / steps_per_epoch, 3),
        "steps_run": result.steps_run,
        "wall_s": round(result.wall_s, 2),
        "compile_s": round(result.compile_s, 2),
        "images_per_s": round(result.steps_run * settings.batch_size / train_s, 1),
        "params": count_params(state.params),
        "devices": len(jax.devices()),
        "processes": jax.process_count(),
    }
    write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics
