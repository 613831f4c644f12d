"""Reports of multi-fit runs: run folders, result tables written atomically, ``configs.json`` (enough to
re-run every fit), and the scores, table, figure and run folder of a sweep (:func:`run_sweep`).

Every classic experiment (``experiments/classic/``) writes into its run folder (``--out``, default
``runs/<time>-<experiment>``):

| file | what |
|---|---|
| ``results.csv`` | one row per fit (or render), machine-readable |
| ``results.md`` | the same results as Markdown table(s), with the settings |
| ``figure.png`` | the experiment's figure (some experiments add more PNGs) |
| ``configs.json`` | the command line, the settings and every fit's ``FitConfig``: enough to re-run it |

A sweep (``experiments/sweep.py``, :func:`run_sweep`) writes ``results.csv``, ``results.md``, ``sweep.png``,
``curves.csv`` and ``sweep.json`` into its folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from inr_utils.config import FitConfig
from inr_utils.files import write_text
from inr_utils.fit_runs import prepare_output_dir
from inr_utils.model_axis import stack_images
from inr_utils.plots import save_figure
from inr_utils.rendering import render
from inr_utils.sweeps import SweepResult, fit_many
from inr_utils.tables import Row, to_csv, to_markdown


def write_results(out: str | Path, rows: Sequence[Row], columns: Sequence[str], markdown: str) -> None:
    """Writes ``results.csv`` (``columns`` of ``rows``) and ``results.md`` (the given Markdown) into ``out``."""
    write_text(Path(out) / "results.csv", to_csv(rows, columns))
    write_text(Path(out) / "results.md", markdown)


def settings_markdown(settings: Mapping[str, Any]) -> str:
    """A bullet list of experiment settings for ``results.md``."""
    return "".join(f"- {key}: `{value}`\n" for key, value in settings.items())


def make_run_dir(out: str | Path | None, experiment: str) -> Path:
    """The run folder (created; refused with an ``InputError`` when it already holds files): ``out`` or
    ``runs/<time>-<experiment>``."""
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


def write_configs(out: str | Path, experiment: str, args: argparse.Namespace | Mapping[str, Any],
                  runs: Sequence[Mapping[str, Any]]) -> None:
    """Writes ``configs.json``: the experiment, its command line (``sys.argv``), its settings (``args``) and
    ``runs``, one entry per fit with at least ``config`` (a ``FitConfig`` dict, usable with
    ``fit_image.py --config`` for file images) and the image it fits."""
    settings = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    payload = {"experiment": experiment, "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
               "settings": jsonable(settings), "runs": jsonable(list(runs))}
    write_text(Path(out) / "configs.json", json.dumps(payload, indent=2) + "\n")


# --------------------------------------------------------------------------------------------- sweeps


def label_text(label: Mapping[str, Any]) -> str:
    """``{"lr": 0.001, "omega0": 30.0}`` -> ``"lr=0.001 omega0=30"`` (short, for tables and figures)."""
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in label.items()) or "-"


def score_reconstructions(recons: np.ndarray, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PSNR (dB) and SSIM of N reconstructions clipped to [0, 1] against their targets.

    Args:
      recons: ``(N, H, W, C)``.
      images: ``(N, H, W, C)`` or one ``(H, W, C)`` target for all.

    Returns:
      ``(psnr (N,), ssim (N,))`` float64; SSIM as :func:`inr_utils.metrics.ssim` (dm-pix, paper settings).
    """
    import dm_pix

    recons = np.clip(np.asarray(recons, np.float32), 0.0, 1.0)
    targets = np.broadcast_to(np.asarray(images, np.float32), recons.shape)
    mse = np.mean(np.square(recons.astype(np.float64) - targets), axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(1.0 / mse)
    ssim = jax.jit(jax.vmap(lambda a, b: dm_pix.ssim(a, b, max_val=1.0)))(jnp.asarray(recons), jnp.asarray(targets))
    return psnr, np.asarray(ssim, np.float64)


def sweep_rows(result: SweepResult, labels: Sequence[Mapping[str, Any]], ssim: np.ndarray | None = None,
               ) -> list[dict[str, Any]]:
    """One dict per model: index, swept values, seed, lr, final PSNR (clipped and raw), SSIM, divergence."""
    rows = []
    for i, (config, label) in enumerate(zip(result.configs, labels, strict=True)):
        row: dict[str, Any] = {"model": i, **label}
        row.setdefault("seed", config.seed)
        row.setdefault("lr", config.lr)
        row.update(psnr=round(float(result.psnr[i]), 3), psnr_unclipped=round(float(result.psnr_unclipped[i]), 3))
        if ssim is not None:
            row["ssim"] = round(float(ssim[i]), 4)
        row["diverged_at"] = int(result.diverged_step[i]) if result.diverged_step[i] >= 0 else ""
        rows.append(row)
    return rows


def sweep_figure(path: str | Path, result: SweepResult, labels: Sequence[Mapping[str, Any]], recons: np.ndarray,
                 max_thumbnails: int = 36, title: str = "") -> None:
    """Saves a PNG: PSNR curves of every model (left; per-step batch PSNR, dots at full-image evaluations)
    and a grid of reconstructions titled with their swept values and final PSNR (right; the first
    ``max_thumbnails`` models)."""
    import matplotlib.pyplot as plt  # the Agg backend: chosen by inr_utils.plots

    n = result.num_models
    shown = min(n, max_thumbnails)
    cols = int(np.ceil(np.sqrt(shown)))
    rows = int(np.ceil(shown / cols))
    fig = plt.figure(figsize=(6 + 1.8 * cols, max(4.5, 2.1 * rows + 0.8)), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[6, 1.8 * cols])
    ax = left.subplots()
    history = result.history
    colors = plt.cm.viridis(np.linspace(0, 0.9, n))
    for i in range(n):
        text = f"{i}: {label_text(labels[i])}"
        ax.plot(history.steps, history.batch_psnr[:, i], lw=0.8, color=colors[i], label=text if n <= 12 else None)
        if history.eval_steps.size:
            ax.plot(history.eval_steps, history.full_psnr[:, i], "o", ms=3, color=colors[i])
    ax.set_xlabel("step")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("batch PSNR per step (dots: full image)", fontsize=10)
    ax.grid(alpha=0.3)
    if n <= 12:
        ax.legend(fontsize=7)
    axes = np.atleast_1d(right.subplots(rows, cols)).ravel()
    for i, axis in enumerate(axes):
        axis.axis("off")
        if i >= shown:
            continue
        image = np.clip(recons[i], 0.0, 1.0)
        axis.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None,
                    vmin=0.0, vmax=1.0, interpolation="nearest")
        text = textwrap.fill(f"{i}: {label_text(labels[i])}", 24)
        axis.set_title(f"{text}\n{result.psnr[i]:.2f} dB", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    save_figure(fig, path, dpi=110)


def run_sweep(configs: Sequence[FitConfig], labels: Sequence[Mapping[str, Any]], images: np.ndarray,
              out: str | Path, image_names: Sequence[str] | None = None, progress: bool = True,
              eval_every: int = 200) -> list[dict[str, Any]]:
    """Fits every config to every image in one :func:`fit_many` call and writes the results into ``out``.

    Args:
      configs, labels: the grid (:func:`sweep_grid`).
      images: one ``(H, W, C)`` image, or ``(K, H, W, C)``: then every config is fitted to every image
        (N = K * len(configs) models, image-major), and the labels get an ``image`` entry.
      out: an existing, writable folder (see :func:`fit_runs.prepare_output_dir`).
      image_names: K names for the ``image`` label (default: indices).

    Files: ``results.csv`` and ``results.md`` (one row per model: swept values, seed, lr, PSNR, SSIM),
    ``sweep.png`` (:func:`sweep_figure`), ``curves.csv`` (full-image PSNR of every model at each evaluation)
    and ``sweep.json`` (base config, timings, rows).

    Returns:
      the table rows.
    """
    out = Path(out)
    images = stack_images(images)
    if images.ndim == 4:
        names = list(image_names) if image_names is not None else [str(k) for k in range(images.shape[0])]
        labels = [{"image": name, **label} for name in names for label in labels]
        configs = [config for _ in names for config in configs]
        images = np.repeat(images, len(configs) // len(names), axis=0)
    result = fit_many(configs, images, progress=progress, eval_every=eval_every)
    height, width = images.shape[-3:-1]
    recons = render(result.model.apply, result.variables, height, width, stacked=True)
    psnr, ssim = score_reconstructions(recons, images)
    rows = sweep_rows(result, labels, ssim)
    write_text(out / "results.csv", to_csv(rows))
    write_text(out / "results.md", to_markdown(rows))
    curve_rows = [{"step": int(s), **{f"model_{i}": round(float(p), 4) for i, p in enumerate(psnrs)}}
                  for s, psnrs in zip(result.history.eval_steps, result.history.full_psnr, strict=True)]
    write_text(out / "curves.csv", to_csv(curve_rows) if curve_rows else "step\n")
    summary = {
        "num_models": result.num_models, "devices": result.num_devices, "steps": result.steps_run,
        "wall_s": round(result.wall_s, 2), "compile_s": round(result.compile_s, 2), "init_s": round(result.init_s, 2),
        "train_s": round(result.train_s, 2),
        "images_per_s": round(result.num_models / result.wall_s, 3),
        "base_config": result.configs[0].to_dict(), "rows": rows,
    }
    write_text(out / "sweep.json", json.dumps(summary, indent=2, default=str) + "\n")
    best = int(np.nanargmax(np.where(np.isfinite(psnr), psnr, -np.inf)))
    sweep_figure(out / "sweep.png", result, labels, recons,
                 title=f"{result.num_models} {result.configs[0].model.model} models, {result.steps_run} steps, "
                       f"{result.wall_s:.1f} s; best {best}: {psnr[best]:.2f} dB")
    return rows
