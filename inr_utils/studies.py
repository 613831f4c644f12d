"""Experiments made of many scored fits (the classic experiments in ``experiments/classic/``): one fit scored
(PSNR, SSIM, time per step, optionally a PSNR curve), and every model preset on every image of a list, the
equal-size images of one preset fitted at once with ``fit_many``.

The run folder and tables these experiments write are :mod:`inr_utils.reports`'.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inr_utils.cli import OneLineArgumentParser, add_run_flags, announce, progress_bar
from inr_utils.config import TRAINING_PRESETS, FitConfig, resolve_config
from inr_utils.devices import use_cpu_cores
from inr_utils.engine import ChunkInfo, unstack_state
from inr_utils.errors import InputError, user_input
from inr_utils.fitting import fit
from inr_utils.images import IMAGE_KINDS, load_named_image
from inr_utils.metrics import psnr, ssim
from inr_utils.rendering import render
from inr_utils.reports import make_run_dir, write_configs, write_results
from inr_utils.samplers import image_to_pixel_data
from inr_utils.sweeps import fit_many
from inr_utils.training import DivergenceError, TrainingInterrupted, TrainState, merge_variables
from model_components.inrs import build_model, count_params
from model_components.mlp import MLPINR
from model_components.presets import MODEL_PRESETS


def check_presets(names: Sequence[str], available: Iterable[str]) -> list[str]:
    """Validates ``--models`` names against the registered presets; returns them without duplicates."""
    available = sorted(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise InputError(f"unknown model preset(s) {', '.join(unknown)}; choose from: {', '.join(available)}")
    return list(dict.fromkeys(names))


def experiment_config(preset: str, steps: int, size: int, batch_size: int | None, seed: int = 0,
                      image: str | None = None, steps_per_call: int | None = None,
                      **model_overrides: Any) -> FitConfig:
    """A ``FitConfig`` of model preset ``preset`` with its recommended training settings
    (``TRAINING_PRESETS[preset]``, e.g. SIREN's lr) and the experiment's steps, image size, batch size and seed.
    ``model_overrides`` go to :func:`model_config` (``width=128``, ``num_frequencies=5``)."""
    training = {"steps": steps, "max_size": size, "batch_size": batch_size, "seed": seed, "image": image,
                "checkpoint_every": 0}
    if steps_per_call is not None:
        training["steps_per_call"] = steps_per_call
    with user_input():  # the values come from an experiment's flags
        return resolve_config(None, preset, training=training, model_settings=model_overrides)


def log_spaced_steps(total: int, chunk: int) -> list[int]:
    """Steps on a roughly logarithmic grid (1, 2, 3, 5, 7 x 10^k) that are chunk ends of a run of ``total``
    steps in chunks of ``chunk`` (multiples of ``chunk``, and ``total``)."""
    candidates = {m * 10**k for k in range(10) for m in (1, 2, 3, 5, 7)}
    steps = {max(chunk, round(c / chunk) * chunk) for c in candidates if c <= total}
    return sorted({s for s in steps if s <= total} | {total})


class PSNRCurve:
    """Callback: full-image PSNR at the chunk ends in ``steps`` (and at the end), timing itself so that the
    evaluations can be left out of the seconds per step."""

    def __init__(self, model: MLPINR, image: np.ndarray, steps: Iterable[int]):
        from inr_utils.evaluation import FullSignalEvaluator

        self.evaluator = FullSignalEvaluator(model.apply, image_to_pixel_data(image), every=1)
        self.wanted = set(steps)
        self.steps: list[int] = []
        self.psnrs: list[float] = []
        self.eval_s = 0.0

    def __call__(self, info: ChunkInfo) -> None:
        if info.step not in self.wanted and info.step < info.total_steps:
            return
        t0 = time.perf_counter()
        self.evaluator(info)
        self.steps.append(info.step)
        self.psnrs.append(float(info.extra["full_psnr"]))
        self.eval_s += time.perf_counter() - t0


@dataclasses.dataclass
class ScoredFit:
    """One finished fit with its scores.

    Attributes:
      config: the fit's config.
      model: the Flax module.
      state: the final train state (the last good one if the fit diverged).
      reconstruction: the INR rendered at the training size, clipped to [0, 1].
      psnr: PSNR (dB) of ``reconstruction`` against the training image.
      ssim: SSIM of ``reconstruction``.
      params: trainable parameters.
      s_per_step: seconds per training step, compilation and PSNR-curve evaluations excluded (NaN if diverged).
      compile_s: seconds compiling.
      wall_s: seconds of the training loop.
      curve_steps, curve_psnr: full-image PSNR at log-spaced steps (empty unless requested).
      note: ``""``, or why the fit stopped early (``diverged at step N``).
    """

    config: FitConfig
    model: MLPINR
    state: TrainState
    reconstruction: np.ndarray
    psnr: float
    ssim: float
    params: int
    s_per_step: float
    compile_s: float
    wall_s: float
    curve_steps: list[int]
    curve_psnr: list[float]
    note: str = ""

    @property
    def variables(self) -> dict[str, Any]:
        """``model.apply``'s first argument."""
        return merge_variables(self.state.params, self.state.constants)

    def render(self, height: int, width: int) -> np.ndarray:
        """The INR rendered at ``height x width`` (not clipped)."""
        return render(self.model.apply, self.variables, height, width)

    def metrics(self) -> dict[str, Any]:
        """The table columns every experiment reports: params, psnr, ssim, s_per_step, compile_s, note."""
        return {"params": self.params, "psnr": round(self.psnr, 3), "ssim": round(self.ssim, 4),
                "s_per_step": round(self.s_per_step, 6) if math.isfinite(self.s_per_step) else None,
                "compile_s": round(self.compile_s, 2), "note": self.note}


def fit_and_score(image: np.ndarray, config: FitConfig, curve: bool = False) -> ScoredFit:
    """Fits ``config`` to ``image`` (no progress bar) and scores the reconstruction.

    Args:
      image: float ``(H, W, C)`` in [0, 1].
      config: the fit (its ``image``/``max_size`` fields are informational here: ``image`` is fitted as given).
      curve: also record the full-image PSNR at log-spaced chunk ends (:func:`log_spaced_steps`).

    A diverging fit (NaN/inf loss) is not an error here: it is scored from its last good state and marked in
    ``note``.
    """
    model = build_model(dataclasses.replace(config.model, out_dim=image.shape[-1]))
    recorder = PSNRCurve(model, image, log_spaced_steps(config.steps, config.steps_per_call) if curve else ())
    note = ""
    try:
        result = fit(image, config, progress=False, eval_every=config.steps, callbacks=[recorder] if curve else [])
        state, compile_s, wall_s = result.state, result.compile_s, result.wall_s
        s_per_step = (wall_s - compile_s - recorder.eval_s) / max(1, result.steps_run)
    except DivergenceError as err:
        state, compile_s, wall_s, s_per_step = err.state, float("nan"), float("nan"), float("nan")
        note = f"diverged after step {int(err.state.step)}"
    recon = np.clip(render(model.apply, merge_variables(state.params, state.constants), *image.shape[:2]), 0, 1)
    return ScoredFit(config=config, model=model, state=state, reconstruction=recon,
                     psnr=float(psnr(recon, image)), ssim=ssim(recon, image), params=count_params(state.params),
                     s_per_step=s_per_step, compile_s=compile_s, wall_s=wall_s, curve_steps=recorder.steps,
                     curve_psnr=recorder.psnrs, note=note)


# --------------------------------------------------------------------------------------------- models x images

#: Columns of the long results table of the models x images experiments.
GRID_COLUMNS = ("image", "kind", "model", "params", "psnr", "ssim", "s_per_step", "compile_s", "lr",
                "preset_training", "fitted_with", "note")


@dataclasses.dataclass
class GridJob:
    """One fit of a models x images experiment: a preset on an image."""

    model: str
    image_label: str
    image_spec: str
    image: np.ndarray
    config: FitConfig


def load_images(specs: Sequence[str], size: int) -> list[tuple[str, str, np.ndarray]]:
    """``(label, spec, image)`` of each ``--images`` entry at ``size`` (labels made unique)."""
    loaded, seen = [], set()
    for spec in dict.fromkeys(specs):
        label, image = load_named_image(spec, size)
        while label in seen:
            label += "'"
        seen.add(label)
        loaded.append((label, spec, image))
    return loaded


def grid_jobs(models: Sequence[str], images: Sequence[tuple[str, str, np.ndarray]], args: argparse.Namespace,
              ) -> list[GridJob]:
    """Every (model, image) fit, model-major, each model with its recommended training settings."""
    jobs = []
    for model in models:
        for label, spec, image in images:
            image_file = spec if Path(spec).is_file() else None
            config = experiment_config(model, args.steps, args.size, args.batch_size, args.seed, image_file)
            jobs.append(GridJob(model, label, spec, image, config))
    return jobs


def fit_together(jobs: Sequence[GridJob]) -> list[ScoredFit]:
    """Fits jobs of one preset on images of one shape at once with ``inr_utils.sweeps.fit_many`` (one compiled,
    vmapped program); each result is the fit :func:`fit_and_score` would make, up to float rounding. The
    seconds per step are the sweep's divided by its number of models.

    Raises:
      InputError: the sweep module refuses the jobs (e.g. images of different shapes).
    """
    result = fit_many([j.config for j in jobs], [j.image for j in jobs], progress=False,
                      eval_every=jobs[0].config.steps)
    n = len(jobs)
    train_s = result.train_s
    s_per_step = train_s / max(1, result.steps_run) / n
    fits = []
    for i, job in enumerate(jobs):
        state = unstack_state(result.state, i)
        recon = np.clip(render(result.model.apply, merge_variables(state.params, state.constants),
                               *job.image.shape[:2]), 0, 1)
        diverged = int(result.diverged_step[i])
        fits.append(ScoredFit(
            config=result.configs[i], model=result.model, state=state, reconstruction=recon,
            psnr=float(psnr(recon, job.image)), ssim=ssim(recon, job.image), params=count_params(state.params),
            s_per_step=s_per_step if diverged < 0 else float("nan"), compile_s=result.compile_s,
            wall_s=result.wall_s, curve_steps=[], curve_psnr=[],
            note=f"diverged at step {diverged}" if diverged >= 0 else ""))
    return fits


def group_jobs(jobs: Sequence[GridJob], together: bool) -> list[list[int]]:
    """Indices of the jobs to fit at once: with ``together``, all jobs of one preset whose images have one
    shape (first-seen order); else one job per group."""
    if not together:
        return [[i] for i in range(len(jobs))]
    groups: dict[tuple, list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault((job.model, job.image.shape), []).append(i)
    return list(groups.values())


def run_grid(jobs: Sequence[GridJob], experiment: str, disable_progress: bool, write: Any,
             together: bool = True) -> list[tuple[GridJob, ScoredFit]] | None:
    """Runs the jobs under one progress bar, calling ``write(rows, fits)`` after each fit or group (so the
    tables always hold the finished fits); returns the ``(job, fit)`` pairs in job order, or ``None`` after a
    Ctrl-C.

    With ``together``, the images of one preset that share a shape are
    fitted at once by :func:`fit_together` (column ``fitted_with`` says ``fit_many xN``); otherwise, or when the
    sweep refuses a group, each job is one :func:`fit_and_score`.
    """
    done: dict[int, tuple[ScoredFit, str]] = {}
    bar = progress_bar(len(jobs), experiment, disable_progress)
    params_shown: set[str] = set()
    try:
        for group in group_jobs(jobs, together):
            first = jobs[group[0]]
            bar.set_postfix_str(f"{first.model} on {', '.join(jobs[i].image_label for i in group)}")
            results, runner = None, "fit"
            if len(group) > 1:
                try:
                    results, runner = fit_together([jobs[i] for i in group]), f"fit_many x{len(group)}"
                except InputError as err:
                    announce(f"{first.model}: fitting one image at a time ({err})")
            if results is None:
                results = [fit_and_score(jobs[i].image, jobs[i].config) for i in group]
            for i, result in zip(group, results, strict=True):
                job = jobs[i]
                done[i] = (result, runner)
                if job.model not in params_shown:
                    params_shown.add(job.model)
                    announce(f"{job.model}: {result.params:,} parameters ({job.image.shape[-1]}-channel output)")
                announce(f"  {job.model} on {job.image_label}: {result.psnr:.2f} dB, SSIM {result.ssim:.3f}"
                         + (f" ({result.note})" if result.note else ""))
            rows = []
            for i in sorted(done):
                job, (result, runner) = jobs[i], done[i]
                training = ", ".join(f"{k}={v}" for k, v in TRAINING_PRESETS.get(job.model, {}).items())
                rows.append({"image": job.image_label, "kind": IMAGE_KINDS.get(job.image_spec, "file"),
                             "model": job.model, **result.metrics(), "lr": job.config.lr,
                             "preset_training": training, "fitted_with": runner})
            write(rows, [(jobs[i], done[i][0]) for i in sorted(done)])
            bar.update(len(group))
    except TrainingInterrupted:
        return None
    finally:
        bar.close()
    return [(jobs[i], done[i][0]) for i in range(len(jobs))]


@dataclasses.dataclass
class GridRun:
    """What :func:`run_model_image_grid` did: the run folder, the presets, the ``(label, spec, image)`` triples,
    the ``(job, fit)`` pairs (``None`` after a Ctrl-C), the result rows and the settings of ``results.md``."""

    out: Path
    models: list[str]
    images: list[tuple[str, str, np.ndarray]]
    fits: list[tuple[GridJob, ScoredFit]] | None
    rows: list[dict[str, Any]]
    settings: dict[str, Any]


def run_model_image_grid(args: argparse.Namespace, experiment: str,
                         markdown: Callable[[list[dict[str, Any]], Mapping[str, Any]], str]) -> GridRun:
    """Every preset of ``args.models`` (default: all) on every image of ``args.images``: makes the run folder,
    writes ``configs.json``, runs :func:`run_grid` and keeps ``results.csv`` / ``results.md`` (the latter from
    ``markdown(rows, settings)``) up to date after each fit. The image-types and shoot-out experiments."""
    use_cpu_cores()  # before any JAX computation: on a CPU, fit_many then trains models on every core
    models = check_presets(args.models or list(MODEL_PRESETS), MODEL_PRESETS)
    images = load_images(args.images, args.size)
    jobs = grid_jobs(models, images, args)
    out = make_run_dir(args.out, experiment)
    announce(f"writing to {out}")
    write_configs(out, experiment, args, [{"model": j.model, "image": j.image_spec, "config": j.config.to_dict()}
                                          for j in jobs])
    settings = {"images": ", ".join(f"{label} {im.shape[1]}x{im.shape[0]}x{im.shape[2]}" for label, _, im in images),
                "steps": args.steps, "batch size": args.batch_size, "seed": args.seed,
                "training": "each preset's recommended settings (TRAINING_PRESETS; lr column)"}
    run = GridRun(out, models, images, None, [], settings)

    def write(rows: list[dict[str, Any]], fits: list) -> None:
        run.rows = rows
        write_results(out, rows, GRID_COLUMNS, markdown(rows, settings))

    run.fits = run_grid(jobs, experiment, args.no_progress, write, together=not args.no_sweep)
    return run


def grid_parser(description: str, experiment: str, default_images: Sequence[str], examples: str,
                parser_class: type[argparse.ArgumentParser] = OneLineArgumentParser) -> argparse.ArgumentParser:
    """The command line of a presets x images experiment: ``--images`` (default ``default_images``; ``examples``
    names a few more in the help), ``--models``, ``--no-sweep`` and the run flags (2000 steps)."""
    p = parser_class(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("experiment")
    g.add_argument("--images", nargs="+", default=list(default_images), metavar="IMAGE",
                   help=f"images: PNG/JPEG paths or scikit-image test image names, e.g. {examples} "
                        f"(default: {' '.join(default_images)})")
    g.add_argument("--models", nargs="+", metavar="PRESET",
                   help=f"model presets to compare (default: every registered preset: {' '.join(MODEL_PRESETS)})")
    g.add_argument("--no-sweep", action="store_true",
                   help="fit every image with its own fit() instead of fitting the equal-size images of a preset "
                        "at once with inr_utils.sweeps.fit_many (default: at once)")
    add_run_flags(p, experiment, steps=2000)
    return p
