"""Helpers shared by the classic INR experiments in this folder: result tables (via inr_utils.tables), figure
pieces, test images by name, the run folder, and one scored fit.

The scripts import this module as ``classic_common`` (they put this folder first on ``sys.path``), so each runs
as ``python experiments/classic/NAME.py`` from the repository root. The table and image helpers are pure
functions of their arguments (tested in ``tests/test_experiments.py``).

Every experiment writes into its run folder (``--out``, default ``runs/<time>-<experiment>``):

| file | what |
|---|---|
| ``results.csv`` | one row per fit (or render), machine-readable |
| ``results.md`` | the same results as Markdown table(s), with the settings |
| ``figure.png`` | the experiment's figure (some experiments add more PNGs) |
| ``configs.json`` | the command line, the settings and every fit's ``FitConfig``: enough to re-run it |
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from inr_utils.config import FitConfig  # noqa: E402
from inr_utils.errors import InputError  # noqa: E402
from inr_utils.fitting import fit, prepare_output_dir  # noqa: E402
from inr_utils.images import load_image, skimage_image  # noqa: E402
from inr_utils.metrics import psnr, ssim  # noqa: E402
from inr_utils.presets import TRAINING_PRESETS as PRESET_TRAINING  # noqa: E402
from inr_utils.rendering import render  # noqa: E402
from inr_utils.samplers import image_to_pixel_data  # noqa: E402
from inr_utils.sweeps import fit_many, unstack_state, use_cpu_cores  # noqa: E402
from inr_utils.tables import Row, is_missing, to_csv, to_markdown  # noqa: E402,F401  (re-exported to the scripts)
from inr_utils.training import (  # noqa: E402
    ChunkInfo,
    DivergenceError,
    TrainingInterrupted,
    TrainState,
    merge_variables,
)
from model_components.inrs import (  # noqa: E402
    MLPINR,
    MODEL_PRESETS,
    build_model,
    count_params,
    model_config,
)

# --------------------------------------------------------------------------------------------- tables


def pivot(rows: Sequence[Row], index: str, columns: str, value: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Reshapes long rows to wide: one output row per distinct ``row[index]`` (first-seen order) holding
    ``row[value]`` under the key ``str(row[columns])``; returns ``(wide_rows, column_names)`` with
    ``column_names = [index, *distinct columns values]``. Missing combinations are ``None``; a repeated
    (index, column) pair keeps the last value."""
    keys: list[Any] = []
    names: list[str] = []
    table: dict[Any, dict[str, Any]] = {}
    for row in rows:
        key, name = row[index], str(row[columns])
        if key not in table:
            keys.append(key)
            table[key] = {index: key}
        if name not in names:
            names.append(name)
        table[key][name] = row[value]
    wide = [{index: key, **{name: table[key].get(name) for name in names}} for key in keys]
    return wide, [index, *names]


def mean_of(values: Iterable[Any]) -> float:
    """Mean of the non-missing values (NaN when there are none)."""
    present = [float(v) for v in values if not is_missing(v)]
    return float(np.mean(present)) if present else float("nan")


def write_text(path: Path, text: str) -> None:
    """Writes ``text`` atomically (temporary file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_results(out: Path, rows: Sequence[Row], columns: Sequence[str], markdown: str) -> None:
    """Writes ``results.csv`` (``columns`` of ``rows``) and ``results.md`` (the given Markdown) into ``out``."""
    write_text(out / "results.csv", to_csv(rows, columns))
    write_text(out / "results.md", markdown)


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts of strings (header keys)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def settings_markdown(settings: Mapping[str, Any]) -> str:
    """A bullet list of experiment settings for ``results.md``."""
    return "".join(f"- {key}: `{value}`\n" for key, value in settings.items())


# --------------------------------------------------------------------------------------------- images

#: Test images bundled with scikit-image that the experiments use by name (no download).
IMAGE_KINDS = {
    "astronaut": "smooth photo", "camera": "photo (grayscale)", "coffee": "photo", "chelsea": "photo (cat)",
    "logo": "graphics, sharp edges", "horse": "binary silhouette", "grass": "texture (grayscale)",
    "brick": "texture (grayscale)", "gravel": "texture (grayscale)",
}


def centre_square(image: np.ndarray) -> np.ndarray:
    """The largest centred square of an ``(H, W, C)`` image."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top:top + side, left:left + side]


def resize(image: np.ndarray, height: int, width: int, method: str = "bicubic") -> np.ndarray:
    """Resizes a float ``(H, W, C)`` image channel by channel with Pillow on float data.

    Args:
      method: ``bicubic`` (antialiased when shrinking), ``area`` (box filter: the mean over each output
        pixel's footprint, exact area averaging for integer factors), ``bilinear`` or ``nearest``.

    Returns:
      float32 ``(height, width, C)``, not clipped (bicubic may overshoot [0, 1] slightly).
    """
    filters = {"bicubic": Image.BICUBIC, "area": Image.BOX, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}
    if method not in filters:
        raise ValueError(f"unknown resize method {method!r}; choose one of: {', '.join(filters)}")
    if height <= 0 or width <= 0:
        raise ValueError(f"resize target must be positive, got {height}x{width}")
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32))
                           .resize((width, height), filters[method])) for c in range(image.shape[-1])]
    return np.stack(channels, axis=-1).astype(np.float32)


def load_source(spec: str) -> tuple[str, np.ndarray]:
    """An image at its native resolution by scikit-image name (:data:`IMAGE_KINDS` or any other
    ``skimage.data`` image, centre-cropped to a square) or by file path; returns ``(label, image)`` with
    ``image`` float32 ``(H, W, C)`` in [0, 1] and ``label`` the name or the file's stem.

    Raises:
      InputError: neither a readable image file nor a scikit-image test image.
    """
    path = Path(spec)
    if path.suffix or os.sep in spec or path.exists():
        return path.stem, load_image(path)
    try:
        image = skimage_image(spec, size=None)
    except InputError:
        raise InputError(f"--image {spec!r} is neither an image file nor a scikit-image test image; pass a "
                         f"PNG/JPEG path or one of: {', '.join(IMAGE_KINDS)}") from None
    except Exception as err:  # noqa: BLE001 - skimage.data members that are not images, downloads failing
        raise InputError(f"cannot load scikit-image image {spec!r} ({err}); pass a PNG/JPEG path or one of: "
                         f"{', '.join(IMAGE_KINDS)}") from None
    return spec, centre_square(image)


def fit_size(image: np.ndarray, size: int) -> np.ndarray:
    """Resizes (bicubic) so the longer side is ``size``, keeping the aspect ratio; clipped to [0, 1]."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    if (new_h, new_w) == (h, w):
        return image
    return np.clip(resize(image, new_h, new_w, "bicubic"), 0.0, 1.0)


def load_experiment_image(spec: str, size: int) -> tuple[str, np.ndarray]:
    """:func:`load_source` resized so the longer side is ``size`` pixels (square for scikit-image names)."""
    label, image = load_source(spec)
    return label, fit_size(image, size)


def crop_fraction(image: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """The part of ``image`` inside ``box = (x0, x1, y0, y1)``, given as fractions of width and height in
    [0, 1]; at least one pixel."""
    x0, x1, y0, y1 = box
    h, w = image.shape[:2]
    left, top = min(w - 1, int(round(x0 * w))), min(h - 1, int(round(y0 * h)))
    right, bottom = max(left + 1, int(round(x1 * w))), max(top + 1, int(round(y1 * h)))
    return image[top:bottom, left:right]


# --------------------------------------------------------------------------------------------- figures


def show(ax: Any, image: np.ndarray, title: str = "", fontsize: int = 9) -> None:
    """Draws a float ``(H, W, C)`` image (C = 1 in gray) without axes, pixels unsmoothed."""
    image = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    ax.set_title(title, fontsize=fontsize)
    ax.set_xticks([])
    ax.set_yticks([])


def image_grid(path: Path, cells: Sequence[Sequence[np.ndarray | None]], titles: Sequence[Sequence[str]],
               row_labels: Sequence[str] = (), suptitle: str = "", cell_inches: float = 2.2) -> None:
    """Saves a grid of images as PNG: ``cells[r][c]`` (``None`` leaves the cell blank) titled
    ``titles[r][c]``, with ``row_labels[r]`` on the left of each row."""
    rows, cols = len(cells), max(len(r) for r in cells)
    fig, axes = plt.subplots(rows, cols, figsize=(cell_inches * cols, cell_inches * rows + 0.6), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            cell = cells[r][c] if c < len(cells[r]) else None
            if cell is None:
                ax.axis("off")
                continue
            show(ax, cell, titles[r][c] if c < len(titles[r]) else "", fontsize=8)
            if c == 0 and r < len(row_labels):
                ax.set_ylabel(row_labels[r], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig: Any, path: Path, dpi: int = 100) -> None:
    """Saves a matplotlib figure atomically and closes it."""
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------- command line


def positive_int(text: str) -> int:
    """argparse type: a whole number > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def add_run_flags(parser: argparse.ArgumentParser, experiment: str, steps: int, size: int = 256,
                  batch_size: int | None = FitConfig.batch_size) -> None:
    """The flags every classic experiment has: --size, --steps, --batch-size, --seed, --out, --no-progress."""
    g = parser.add_argument_group("run")
    g.add_argument("--size", type=positive_int, default=size,
                   help=f"longer image side in pixels the INRs are trained at (default: {size})")
    g.add_argument("--steps", type=positive_int, default=steps, help=f"optimisation steps per fit (default: {steps})")
    g.add_argument("--batch-size", type=positive_int, default=batch_size,
                   help=f"random pixels per step (default: {batch_size})")
    g.add_argument("--seed", type=int, default=0, help="random seed of every fit (default: 0)")
    g.add_argument("--out", help=f"output folder, must be new or empty (default: runs/<time>-{experiment})")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar (default: shown)")


def check_presets(names: Sequence[str], available: Iterable[str]) -> list[str]:
    """Validates ``--models`` names against the registered presets; returns them without duplicates."""
    available = sorted(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise InputError(f"unknown model preset(s) {', '.join(unknown)}; choose from: {', '.join(available)}")
    return list(dict.fromkeys(names))


def make_run_dir(out: str | None, experiment: str) -> Path:
    """The run folder (created; refused when it already holds files): ``out`` or ``runs/<time>-<experiment>``."""
    path = Path(out) if out is not None else Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{experiment}"
    return prepare_output_dir(path, FitConfig())


def jsonable(value: Any) -> Any:
    """``value`` with tuples/paths/numpy scalars turned into JSON types (recursively)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_configs(out: Path, experiment: str, args: argparse.Namespace, runs: Sequence[Mapping[str, Any]]) -> None:
    """Writes ``configs.json``: the experiment, its command line, its settings (``args``) and ``runs``, one
    entry per fit with at least ``config`` (a ``FitConfig`` dict, usable with ``fit_image.py --config`` for
    file images) and the image it fits."""
    payload = {"experiment": experiment, "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
               "settings": jsonable(vars(args)), "runs": jsonable(list(runs))}
    write_text(out / "configs.json", json.dumps(payload, indent=2) + "\n")


def announce(message: str) -> None:
    """Prints a status line to stderr (above any progress bar)."""
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


def progress_bar(total: int, experiment: str, disable: bool) -> Any:
    """A tqdm bar over the experiment's fits (stderr)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=experiment, unit="fit", dynamic_ncols=True, disable=disable, file=sys.stderr)


# --------------------------------------------------------------------------------------------- fitting


def experiment_config(preset: str, steps: int, size: int, batch_size: int | None, seed: int = 0,
                      image: str | None = None, steps_per_call: int | None = None,
                      **model_overrides: Any) -> FitConfig:
    """A ``FitConfig`` of model preset ``preset`` with its recommended training settings
    (``PRESET_TRAINING[preset]``, e.g. SIREN's lr) and the experiment's steps, image size, batch size and seed.
    ``model_overrides`` go to :func:`model_config` (``width=128``, ``num_frequencies=5``)."""
    try:
        model = model_config(preset, **model_overrides)
    except ValueError as err:
        raise InputError(str(err)) from None
    values: dict[str, Any] = {"model": model.to_dict(), "steps": steps, "max_size": size, "batch_size": batch_size,
                              "seed": seed, "image": image, "checkpoint_every": 0}
    if steps_per_call is not None:
        values["steps_per_call"] = steps_per_call
    return FitConfig.from_dict(values)


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
        from inr_utils.callbacks import FullSignalEvaluator

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


def interrupted(out: Path) -> int:
    """Reports a Ctrl-C (the tables hold the fits finished so far); returns the exit code of an interrupted run."""
    from cli_common import EXIT_INTERRUPTED  # experiments/, on sys.path in every script

    sys.stderr.write(f"\ninterrupted; the results of the finished fits are in {out}\n")
    return EXIT_INTERRUPTED


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
        label, image = load_experiment_image(spec, size)
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
                training = ", ".join(f"{k}={v}" for k, v in PRESET_TRAINING.get(job.model, {}).items())
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
                "training": "each preset's recommended settings (PRESET_TRAINING; lr column)"}
    run = GridRun(out, models, images, None, [], settings)

    def write(rows: list[dict[str, Any]], fits: list) -> None:
        run.rows = rows
        write_results(out, rows, GRID_COLUMNS, markdown(rows, settings))

    run.fits = run_grid(jobs, experiment, args.no_progress, write, together=not args.no_sweep)
    return run


def grid_parser(description: str, experiment: str, default_images: Sequence[str], examples: str,
                parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> argparse.ArgumentParser:
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
