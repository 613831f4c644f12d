"""Figures of a hypernetwork evaluation (``evaluate_hypernetwork.py``): metric histograms, super-resolution
beside bicubic, PSNR vs query jitter, the latent embedding coloured by class. Saved atomically as PNG
(:func:`inr_utils.plots.save_figure`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from inr_utils.plots import image_grid, plt, save_figure

__all__ = ["embedding_figure", "jitter_figure", "metric_histograms", "super_resolution_figure"]


def metric_histograms(path: str | Path, psnr: np.ndarray, ssim: np.ndarray, title: str = "") -> None:
    """Histograms of per-image PSNR (dB) and SSIM, with their mean and median marked."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, values, label in ((axes[0], psnr, "PSNR (dB)"), (axes[1], ssim, "SSIM")):
        values = np.asarray(values, np.float64)
        ax.hist(values, bins=min(30, max(5, values.size // 4)), color="tab:blue", alpha=0.8)
        ax.axvline(values.mean(), color="k", label=f"mean {values.mean():.3g}")
        ax.axvline(np.median(values), color="tab:red", ls="--", label=f"median {np.median(values):.3g}")
        ax.set_xlabel(label)
        ax.set_ylabel("images")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def super_resolution_figure(path: str | Path, inputs: np.ndarray, renders: dict[int, tuple[np.ndarray, np.ndarray]],
                            title: str = "") -> None:
    """One row per image: the input, then for each factor f its bicubic upsampling and the INR render at f x.

    Args:
      inputs: ``(N, H, W, C)`` in [0, 1].
      renders: ``{f: (bicubic (N, fH, fW, C), inr (N, fH, fW, C))}``.
    """
    cells, titles = [], []
    height, width = inputs.shape[1:3]
    for i, image in enumerate(inputs):
        row, names = [image], [f"input {height}x{width}"]
        for factor, (cubic, inr) in sorted(renders.items()):
            row += [cubic[i], inr[i]]
            names += [f"bicubic {factor}x", f"INR {factor}x"]
        cells.append(row)
        titles.append(names)
    image_grid(path, cells, titles, suptitle=f"super-resolution ({title})" if title else "super-resolution")


def jitter_figure(path: str | Path, sigmas: Sequence[float], psnr: np.ndarray, title: str = "") -> None:
    """Mean PSNR (with the 25-75 % band over images) vs query jitter sigma. ``psnr``: ``(len(sigmas), N)``."""
    psnr = np.asarray(psnr, np.float64)
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    ax.plot(sigmas, psnr.mean(axis=1), "o-", label="mean")
    ax.fill_between(sigmas, np.percentile(psnr, 25, axis=1), np.percentile(psnr, 75, axis=1), alpha=0.25,
                    label="25-75 %")
    ax.set_xlabel("query jitter sigma ([-1, 1] units)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"jitter robustness ({title})" if title else "jitter robustness", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def embedding_figure(path: str | Path, embedding: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                     explained: Sequence[float] = (), title: str = "") -> None:
    """Scatter of a 2-D embedding ``(N, 2)``, one colour per class (legend of ``class_names[label]``)."""
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for k in np.unique(labels):
        name = class_names[k] if 0 <= k < len(class_names) else "no class" if k < 0 else str(k)
        mask = labels == k
        ax.scatter(embedding[mask, 0], embedding[mask, 1], s=10, color=cmap(int(k) % cmap.N), label=name)
    pcs = [f"PC{i + 1}" + (f" ({100 * explained[i]:.0f} % of variance)" if i < len(explained) else "")
           for i in range(2)]
    ax.set_xlabel(pcs[0])
    ax.set_ylabel(pcs[1])
    ax.set_title(f"latents, PCA ({title})" if title else "latents, PCA", fontsize=10)
    if len(np.unique(labels)) <= 20:
        ax.legend(fontsize=7, markerscale=1.5, loc="best")
    fig.tight_layout()
    save_figure(fig, path)
