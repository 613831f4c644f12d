"""Figures: the 2x3 summary of an image fit; image panels and grids of the experiments; atomic saving."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from inr_utils.files import atomic_write  # noqa: E402


def _show(ax, image: np.ndarray, title: str) -> None:
    image = np.clip(image, 0.0, 1.0)
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.axis("off")


def _resize_nearest(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    rows = np.arange(size[0]) * image.shape[0] // size[0]
    cols = np.arange(size[1]) * image.shape[1] // size[1]
    return image[rows][:, cols]


def _centre_crop(image: np.ndarray, fraction: float) -> np.ndarray:
    h, w = image.shape[:2]
    ch, cw = max(1, round(h * fraction)), max(1, round(w * fraction))
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[top:top + ch, left:left + cw]


def summary_figure(path: str | Path, original: np.ndarray, reconstruction: np.ndarray, render_2x: np.ndarray,
                   render_4x: np.ndarray, steps: np.ndarray, losses: np.ndarray, eval_steps: np.ndarray,
                   eval_psnrs: np.ndarray, title: str = "", zoom_fraction: float = 0.25) -> None:
    """Saves the 2x3 summary of a fit as PNG.

    Panels: original | reconstruction | 2x render / loss (log scale) and full-image PSNR curves |
    zoomed centre crop of original, reconstruction and 4x render side by side | absolute error map.

    Args:
      path: output PNG path.
      original, reconstruction: ``(H, W, C)`` in [0, 1].
      render_2x, render_4x: ``(2H, 2W, C)`` and ``(4H, 4W, C)`` renders.
      steps, losses: per-step training loss ``(T,)``.
      eval_steps, eval_psnrs: full-image PSNR (dB) at evaluation steps ``(E,)``.
      title: figure title.
      zoom_fraction: side of the centre crop as a fraction of the image side.
    """
    fig, axes = plt.subplots(2, 3, figsize=(15, 9.5))
    _show(axes[0, 0], original, f"original {original.shape[1]}x{original.shape[0]}")
    _show(axes[0, 1], reconstruction, "reconstruction")
    _show(axes[0, 2], render_2x, f"2x render {render_2x.shape[1]}x{render_2x.shape[0]}")

    ax = axes[1, 0]
    ax.plot(steps, losses, color="tab:blue", linewidth=0.8, label="training loss")
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (log)", color="tab:blue")
    twin = ax.twinx()
    twin.plot(eval_steps, eval_psnrs, "o-", color="tab:red", markersize=3, label="full-image PSNR")
    twin.set_ylabel("PSNR (dB)", color="tab:red")
    ax.set_title("loss and PSNR", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)

    crops = [_centre_crop(img, zoom_fraction) for img in (original, reconstruction, render_4x)]
    size = crops[2].shape[:2]
    upsampled = [_resize_nearest(c, size) for c in crops[:2]]
    gap = np.ones((size[0], max(2, size[1] // 40), crops[2].shape[-1]))
    _show(axes[1, 1], np.concatenate([upsampled[0], gap, upsampled[1], gap, crops[2]], axis=1),
          "centre zoom: original | reconstruction | 4x render")

    error = np.abs(reconstruction - original).mean(axis=-1)
    im = axes[1, 2].imshow(error, cmap="inferno", vmin=0.0, vmax=max(1e-6, float(np.percentile(error, 99.5))))
    axes[1, 2].set_title("absolute error (mean over channels)", fontsize=10)
    axes[1, 2].axis("off")
    fig.colorbar(im, ax=axes[1, 2], fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


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


def image_grid(path: str | Path, cells: Sequence[Sequence[np.ndarray | None]], titles: Sequence[Sequence[str]],
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


def save_figure(fig: Any, path: str | Path, dpi: int = 100) -> None:
    """Saves a matplotlib figure atomically (:func:`inr_utils.files.atomic_write`; format from the suffix,
    e.g. PNG) and closes it."""
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi))
    finally:
        plt.close(fig)
