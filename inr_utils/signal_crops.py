"""Cropping a fitted Local-Global INR's run without retraining (``experiments/crop.py``): load the run, remove
partitions with :func:`inr_utils.croppable.crop`, decode the kept region, score it and write it as a run folder
of its own (the decoded region as PNG / WAV / MP4, metrics, config, signal description and a checkpoint, so the
cropped model can be cropped or rendered again).

Paper: Ashkenazi & Treister, "Towards Croppable Implicit Neural Representations", NeurIPS 2024.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from inr_utils.audio import save_audio, signal_to_audio
from inr_utils.checkpoints import load_config, restore_params, save_checkpoint
from inr_utils.config import FitConfig
from inr_utils.errors import InputError, user_input
from inr_utils.files import write_text
from inr_utils.fit_runs import prepare_output_dir
from inr_utils.images import save_image
from inr_utils.metrics import psnr
from inr_utils.optim import build_optimizer
from inr_utils.signals import SignalSpec, fit_shape, load_signal, mode_of, model_shape, read_spec, write_spec
from inr_utils.training import TrainState, merge_variables
from inr_utils.video import save_video
from model_components.inrs import build_model, count_params

__all__ = ["axis_values", "crop_run"]


def axis_values(text: str) -> tuple[int, list[int]]:
    """``AXIS:V,V,...`` of ``--crop-along`` (e.g. ``2:0,7``) -> ``(2, [0, 7])``.

    Raises:
      ValueError: not of that form (argparse reports it as a usage error).
    """
    axis, sep, values = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return int(axis), [int(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"expected AXIS:I,J,... (e.g. 1:0,7), got {text!r}") from None


def _load_run(run: Path) -> tuple[Path, FitConfig, dict[str, Any], int]:
    if not run.exists():
        raise InputError(f"run folder '{run}' does not exist; pass a folder written by experiments/fit_signal.py")
    ckpt_dir = run / "checkpoints" if (run / "checkpoints").is_dir() else run
    config = FitConfig.from_dict(load_config(ckpt_dir))
    if mode_of(config.model) == "mlp":
        raise InputError(f"the run in '{run}' is a {config.model.model} model (mode mlp), which has no partitions to "
                         "crop; fit with --mode lg or --mode lc to crop later")
    params, constants, step = restore_params(ckpt_dir, with_step=True)
    return ckpt_dir, config, merge_variables(params, constants), step


def crop_run(run: str | Path, out: str | Path | None, partitions: Iterable[int] = (),
             along: Mapping[int, Iterable[int]] | None = None, input_path: str | None = None,
             video_format: str = "mp4", announce: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """Crops the Local-Global run in ``run`` and writes the cropped run into ``out``; returns its metrics.

    Args:
      run: a run folder of ``experiments/fit_signal.py`` (mode ``lg`` or ``lc``) or its ``checkpoints/``.
      out: the new run folder (new or empty; default ``<run>-cropped``).
      partitions: flat partition indices to remove.
      along: ``{axis: index values}``: also remove every partition whose index along that sample axis is one of
        the values (e.g. ``{1: [0, 7], 2: [0, 7]}``: the spatial border of every frame of a 5x8x8 video grid).
      input_path: the signal's file, if it moved since the fit (default: the one in ``signal.json``).
      video_format: ``mp4`` or ``gif`` for a video.
      announce: called with the output folder once every input has been checked.

    Files: ``cropped.png`` / ``cropped.wav`` / ``cropped.mp4``: the cropped model decoded on the bounding box of
    the kept partitions (samples of removed partitions inside it, when the kept region is not a box, are 0:
    black, or silence for audio); ``metrics.json``; ``config.json``, ``signal.json`` and ``checkpoints/`` of the
    cropped model.

    Metrics: ``params_before``/``params_after``/``params_removed_fraction``, ``partitions_before``/``_after``,
    ``samples_kept_fraction``, ``psnr_kept`` (the cropped model on the kept samples, dB), ``psnr_kept_uncropped``
    (the uncropped model there) and ``max_abs_difference`` between the two decodings on the kept samples (0
    up to float rounding: cropping changes nothing there).

    Raises:
      InputError: a missing or damaged run, a model without partitions (mode ``mlp``), indices outside the grid
        or not held, nothing left, an unreadable signal or an unwritable ``out``.
    """
    from inr_utils.croppable import crop, kept_box, kept_mask, kept_partitions
    from inr_utils.partitions import render_partitioned

    run = Path(run)
    ckpt_dir, config, variables, step = _load_run(run)
    run_dir = ckpt_dir.parent if ckpt_dir.name == "checkpoints" else ckpt_dir
    spec = read_spec(run_dir)
    if input_path is not None:
        spec = dataclasses.replace(spec, input=str(input_path))
    signal = load_signal(spec)
    shape = model_shape(config.model, tuple(signal.values.shape[:-1]))
    signal = fit_shape(signal, shape)
    if len(shape) != config.model.in_dim:
        raise InputError(f"the signal in '{run_dir}/signal.json' has {len(shape)} sample axes but the model takes "
                         f"{config.model.in_dim}; pass the run's own signal with --input")
    along = {int(a): [int(v) for v in values] for a, values in (along or {}).items()}
    if not list(partitions) and not along:
        raise InputError("nothing to crop: give --crop-partitions I,J,... or --crop-along AXIS:I,J,...")
    with user_input():
        new_model, new_variables = crop(config.model, variables, partitions, along)
    out = prepare_output_dir(out if out is not None else run_dir.with_name(run_dir.name + "-cropped"), config)
    if announce is not None:
        announce(out)

    grid = tuple(config.model.options.grid(config.model.in_dim))
    before_kept, after_kept = kept_partitions(config.model), kept_partitions(new_model)
    mask = kept_mask(new_model, shape)
    before = render_partitioned(build_model(config.model), variables, shape)
    after = render_partitioned(build_model(new_model), new_variables, shape)
    target = signal.values
    diff = float(np.max(np.abs(after[mask] - before[mask])))
    params_before, params_after = count_params(variables["params"]), count_params(new_variables["params"])
    metrics: dict[str, Any] = {
        "signal": spec.kind, "mode": mode_of(config.model), "grid": list(grid), "step": step,
        "partitions_before": len(before_kept), "partitions_after": len(after_kept),
        "params_before": params_before, "params_after": params_after,
        "params_removed_fraction": round(1 - params_after / params_before, 4),
        "samples_kept_fraction": round(float(mask.mean()), 4),
        "psnr_kept": round(float(psnr(np.clip(after[mask], 0, 1), target[mask])), 3),
        "psnr_kept_uncropped": round(float(psnr(np.clip(before[mask], 0, 1), target[mask])), 3),
        "max_abs_difference": diff,
    }
    box = kept_box(new_model, shape)
    is_box = bool(mask[box].all())  # the kept partitions form a box (a crop along axes, or of a corner)
    fill = 0.5 if spec.kind == "audio" else 0.0
    region = np.where(mask[..., None], np.clip(after, 0, 1), fill)[box]
    metrics.update(region_start=[s.start for s in box], region_shape=[s.stop - s.start for s in box],
                   region_is_box=is_box)
    if spec.kind == "image":
        save_image(out / "cropped.png", region)
    elif spec.kind == "audio":
        save_audio(out / "cropped.wav", signal_to_audio(region), int(signal.rate))
    else:
        save_video(out / f"cropped.{video_format}", region, signal.rate)
    new_config = dataclasses.replace(config, model=new_model)
    write_text(out / "config.json", json.dumps(new_config.to_dict(), indent=2) + "\n")
    write_spec(out, SignalSpec.from_dict(spec.to_dict()))
    params = new_variables["params"]
    constants = {k: v for k, v in new_variables.items() if k != "params"}
    state = TrainState(step=jnp.asarray(step, jnp.int32), params=params, constants=constants,
                       opt_state=build_optimizer(new_config).init(params))
    save_checkpoint(out / "checkpoints", state, new_config.to_dict())
    write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics
