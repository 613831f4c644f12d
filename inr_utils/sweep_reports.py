"""Reports of a sweep: rendering every model, scores, the result table, the figure and the run folder.

To be merged with the experiments' report module (tables, figures, run folders) later.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from inr_utils.config import FitConfig
from inr_utils.grids import pixel_centers
from inr_utils.model_axis import stack_images
from inr_utils.sweeps import SweepResult, fit_many
from inr_utils.tables import to_csv, to_markdown


def render_many(apply_fn: Callable, variables: Any, height: int, width: int, chunk_pixels: int = 1 << 16,
                ) -> np.ndarray:
    """Renders every model of stacked ``variables`` on the ``height x width`` pixel grid of [-1, 1]^2.

    The sweep's :func:`inr_utils.rendering.render`: one compiled function evaluates all models on a band of
    rows; ``chunk_pixels`` bounds the pixels per model and band.

    Args:
      apply_fn: ``model.apply`` shared by the models (``SweepResult.model.apply``).
      variables: stacked variables, every leaf ``(N, ...)`` (``SweepResult.variables``).
      height, width: output size in pixels.

    Returns:
      float32 ``(N, height, width, C)`` numpy array (unclipped).
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"render size must be positive, got {height}x{width}")
    rows_per_band = max(1, min(height, chunk_pixels // width))
    xs, ys = pixel_centers(width), pixel_centers(height)

    @jax.jit
    def band(variables: Any, band_ys: jax.Array) -> jax.Array:
        yy, xx = jnp.meshgrid(band_ys, jnp.asarray(xs), indexing="ij")
        coords = jnp.stack([xx, yy], axis=-1).reshape(-1, 2)
        values = jax.vmap(apply_fn, in_axes=(0, None))(variables, coords)
        return values.reshape(values.shape[0], band_ys.shape[0], width, -1)

    bands = []
    for row in range(0, height, rows_per_band):
        rows = min(rows_per_band, height - row)
        band_ys = np.pad(ys[row:row + rows], (0, rows_per_band - rows), mode="edge")
        bands.append(np.asarray(band(variables, jnp.asarray(band_ys, jnp.float32)))[:, :rows])
    return np.concatenate(bands, axis=1).astype(np.float32)


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_sweep(configs: Sequence[FitConfig], labels: Sequence[Mapping[str, Any]], images: np.ndarray,
              out: str | Path, image_names: Sequence[str] | None = None, progress: bool = True,
              eval_every: int = 200) -> list[dict[str, Any]]:
    """Fits every config to every image in one :func:`fit_many` call and writes the results into ``out``.

    Args:
      configs, labels: the grid (:func:`sweep_grid`).
      images: one ``(H, W, C)`` image, or ``(K, H, W, C)``: then every config is fitted to every image
        (N = K * len(configs) models, image-major), and the labels get an ``image`` entry.
      out: an existing, writable folder (see :func:`fitting.prepare_output_dir`).
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
    recons = render_many(result.model.apply, result.variables, height, width)
    psnr, ssim = score_reconstructions(recons, images)
    rows = sweep_rows(result, labels, ssim)
    (out / "results.csv").write_text(to_csv(rows))
    (out / "results.md").write_text(to_markdown(rows))
    curve_rows = [{"step": int(s), **{f"model_{i}": round(float(p), 4) for i, p in enumerate(psnrs)}}
                  for s, psnrs in zip(result.history.eval_steps, result.history.full_psnr, strict=True)]
    (out / "curves.csv").write_text(to_csv(curve_rows) if curve_rows else "step\n")
    summary = {
        "num_models": result.num_models, "devices": result.num_devices, "steps": result.steps_run,
        "wall_s": round(result.wall_s, 2), "compile_s": round(result.compile_s, 2), "init_s": round(result.init_s, 2),
        "train_s": round(result.train_s, 2),
        "images_per_s": round(result.num_models / result.wall_s, 3),
        "base_config": result.configs[0].to_dict(), "rows": rows,
    }
    (out / "sweep.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    best = int(np.nanargmax(np.where(np.isfinite(psnr), psnr, -np.inf)))
    sweep_figure(out / "sweep.png", result, labels, recons,
                 title=f"{result.num_models} {result.configs[0].model.model} models, {result.steps_run} steps, "
                       f"{result.wall_s:.1f} s; best {best}: {psnr[best]:.2f} dB")
    return rows
