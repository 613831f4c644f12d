"""Fitting an image from its gradients only, or from its Laplacian only: SIREN's Poisson experiments.

Sitzmann et al. 2020, "Implicit Neural Representations with Periodic Activation Functions" (SIREN), Sec. 4.1
"Solving the Poisson equation": an INR ``f_theta`` is supervised only by derivatives of the image ``I``,

    L_grad = mean_x || grad f_theta(x) - grad I(x) ||^2          (gradient fit)
    L_lap  = mean_x ( Laplacian f_theta(x) - Laplacian I(x) )^2    (Laplacian fit)

where the derivatives of the INR are taken by autodiff with respect to its input coordinates
(:func:`inr_utils.applications.objectives.field_gradient` and ``field_second_derivatives``: ``jax.jvp`` along
each axis, once and twice; equal to ``jax.jacfwd`` / the diagonal of ``jax.hessian``, tested) and
the targets are finite differences of the image: the Sobel filter (as the paper) for the gradient, the 5-point
stencil (``scipy.ndimage.laplace``, as the paper's code) for the Laplacian.

Units. Coordinates span [-1, 1] (:mod:`inr_utils.grids`), so one pixel of an axis of ``n`` pixels is ``h = 2 / n``
coordinate units. The INR's derivative ``df/dx`` is per coordinate unit; ``df/dx * h`` is per pixel, the unit of
the finite differences (Sobel / 8, the 5-point stencil per pixel squared). The fits compare the INR's derivatives
converted to per-pixel units with the targets, so the loss is O(1) and ``h`` is applied exactly once.

What is lost: a gradient determines the image up to a constant, a Laplacian up to a harmonic function (a
constant and a linear ramp, among others). The recovered image is scored after matching the mean (gradient
fit) or the mean and the scale by least squares, ``a f + b`` (Laplacian fit), as the brief of this experiment asks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from inr_utils.applications.objectives import (
    Field,
    OperatorFit,
    field_gradient,
    field_second_derivatives,
    fit_operator,
    render_field,
)
from inr_utils.config import FitConfig
from inr_utils.errors import InputError
from inr_utils.grids import pixel_centers
from inr_utils.metrics import psnr
from model_components.inrs import model_config

__all__ = ["MODES", "PoissonResult", "discrete_laplacian", "fit_poisson",
           "match_affine", "match_mean", "pixel_laplacian", "pixel_gradient", "poisson_config", "poisson_figure",
           "sobel_gradient", "to_gray"]

MODES = ("gradient", "laplacian")


def to_gray(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` or ``(H, W, C)`` in [0, 1] -> float32 ``(H, W)``: the mean of RGB channels (alpha dropped)."""
    image = np.asarray(image, np.float32)
    if image.ndim == 3:
        image = image[..., :3].mean(axis=-1) if image.shape[-1] >= 3 else image[..., 0]
    if image.ndim != 2:
        raise InputError(f"expected an (H, W) or (H, W, C) image, got shape {image.shape}")
    return image


def sobel_gradient(image: np.ndarray) -> np.ndarray:
    """The image's gradient by the Sobel filter, per pixel: ``(H, W) -> (H, W, 2)`` as ``(d/dx, d/dy)`` (x along
    columns, y along rows, the grid's order). ``scipy.ndimage.sobel`` weights the central difference by
    ``[1, 2, 1]``, 8 times the derivative of a linear ramp, so it is divided by 8 (reflected borders)."""
    from scipy import ndimage

    image = np.asarray(image, np.float64)
    return np.stack([ndimage.sobel(image, axis=1), ndimage.sobel(image, axis=0)], axis=-1).astype(np.float32) / 8.0


def discrete_laplacian(image: np.ndarray) -> np.ndarray:
    """The 5-point Laplacian of the image per squared pixel (``scipy.ndimage.laplace``, reflected borders)."""
    from scipy import ndimage

    return ndimage.laplace(np.asarray(image, np.float64)).astype(np.float32)


def pixel_steps(shape: Sequence[int]) -> np.ndarray:
    """Pixel size in coordinate units of an ``(H, W)`` grid on [-1, 1]^2, in coordinate order ``(2/W, 2/H)``."""
    h, w = shape
    return np.asarray([2.0 / w, 2.0 / h], np.float32)


def image_grid(shape: Sequence[int]) -> np.ndarray:
    """The ``(H, W, 2)`` (x, y) pixel-centre grid of :func:`inr_utils.grids.grid`, as numpy."""
    x, y = np.meshgrid(pixel_centers(shape[1]), pixel_centers(shape[0]))
    return np.stack([x, y], axis=-1)


def pixel_gradient(field: Field, coords: jax.Array, steps: np.ndarray) -> jax.Array:
    """The field's autodiff gradient in per-pixel units: ``grad f * h`` (``steps`` = ``h`` per coordinate)."""
    return field_gradient(field, coords) * jnp.asarray(steps)


def pixel_laplacian(field: Field, coords: jax.Array, steps: np.ndarray) -> jax.Array:
    """The field's autodiff Laplacian in per-squared-pixel units: ``sum_k d^2 f / dx_k^2 * h_k^2``."""
    return jnp.sum(field_second_derivatives(field, coords) * jnp.asarray(steps) ** 2, axis=-1)


def match_mean(recon: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``recon`` shifted to ``target``'s mean (the constant a gradient cannot see)."""
    return recon - recon.mean() + target.mean()


def match_affine(recon: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``a recon + b`` with ``a, b`` the least-squares fit to ``target`` (mean and scale)."""
    x, y = recon.reshape(-1).astype(np.float64), target.reshape(-1).astype(np.float64)
    a, b = np.polyfit(x, y, 1) if x.std() > 0 else (0.0, y.mean())
    return (a * recon + b).astype(np.float32)


def poisson_config(steps: int = 400, width: int = 64, depth: int = 3, lr: float = 1e-4, seed: int = 0,
                   omega0: float = 30.0) -> FitConfig:
    """SIREN (``omega0`` = 30, linear output) with Adam at 1e-4, the paper's Poisson setting, smaller (width
    ``width``, ``depth`` hidden layers after the first) for the CPU; full-image steps. Derivatives are supervised
    only at pixel centres, so a SIREN whose bandwidth (``omega0``) far exceeds the image's pixel rate can match
    them there and integrate to something else between them: lower ``omega0`` for tiny images."""
    model = model_config("siren", width=width, depth=depth, in_dim=2, out_dim=1, output_offset=0.0,
                         omega0=omega0, first_omega0=omega0)
    return FitConfig(model=model, steps=steps, lr=lr, batch_size=None, seed=seed, lr_schedule="constant",
                     steps_per_call=min(100, steps)).validate()


@dataclass
class PoissonResult:
    """What :func:`fit_poisson` returns (images float32 ``(H, W)``).

    Attributes:
      mode: ``"gradient"`` or ``"laplacian"``.
      image: the grayscale image whose derivatives were given.
      target: the supervision: ``(H, W, 2)`` Sobel gradient or ``(H, W)`` Laplacian, per pixel.
      fitted: the INR's own derivative of the same kind and units.
      raw: the INR on the pixel grid (its constant is arbitrary).
      recovered: ``raw`` after matching the mean (gradient) or mean and scale (Laplacian).
      psnr: PSNR (dB) of ``recovered`` clipped to [0, 1] against ``image``.
      fit: the fit (state, loss history, timings).
    """

    mode: str
    image: np.ndarray
    target: np.ndarray
    fitted: np.ndarray
    raw: np.ndarray
    recovered: np.ndarray
    psnr: float
    fit: OperatorFit


def fit_poisson(image: np.ndarray, mode: str = "gradient", config: FitConfig | None = None,
                callbacks: Sequence[Callable[[Any], None]] = ()) -> PoissonResult:
    """Fits an INR to an image's gradient (Sobel) or Laplacian only, and recovers the image from it.

    Args:
      image: ``(H, W)`` or ``(H, W, C)`` in [0, 1] (colour is averaged to gray).
      mode: ``"gradient"`` or ``"laplacian"``.
      config: model and training (default :func:`poisson_config`); ``batch_size`` is ignored (full image).

    Raises:
      InputError: an unknown mode, an image smaller than 8x8.
    """
    if mode not in MODES:
        raise InputError(f"unknown supervision {mode!r}; choose one of: {', '.join(MODES)}")
    image = to_gray(image)
    if min(image.shape) < 8:
        raise InputError(f"the image must be at least 8x8 pixels, got {image.shape[1]}x{image.shape[0]}")
    config = dataclasses.replace(config or poisson_config(), batch_size=None)
    steps = pixel_steps(image.shape)
    coords = image_grid(image.shape)
    if mode == "gradient":
        target = sobel_gradient(image)

        def operator(field: Field, x: jax.Array) -> jax.Array:
            return pixel_gradient(field, x, steps)
    else:
        target = discrete_laplacian(image)

        def operator(field: Field, x: jax.Array) -> jax.Array:
            return pixel_laplacian(field, x, steps)

    fit = fit_operator(config, operator, coords, target, callbacks=callbacks)
    field = fit.field()
    raw = render_field(field, coords)[..., 0]
    derivative = jax.jit(lambda x: operator(field, x))
    fitted = np.concatenate([np.asarray(derivative(jnp.asarray(part)))
                             for part in np.array_split(coords, max(1, image.shape[0] // 32))])
    recovered = match_mean(raw, image) if mode == "gradient" else match_affine(raw, image)
    score = round(float(psnr(np.clip(recovered, 0.0, 1.0), image)), 3)
    return PoissonResult(mode, image, target, fitted, raw, recovered, score, fit)


def poisson_figure(path: str | Path, results: Sequence[tuple[str, PoissonResult]]) -> None:
    """One row per ``(label, result)``: the image, the target derivative map (gradient magnitude or Laplacian),
    the fit's own map, the fit's raw output and the recovered image (PSNR in its title)."""
    import matplotlib.pyplot as plt

    from inr_utils.plots import save_figure, show

    fig, axes = plt.subplots(len(results), 5, figsize=(12, 2.6 * len(results) + 0.3), squeeze=False)
    for row, (label, r) in zip(axes, results, strict=True):
        if r.mode == "gradient":
            target, fitted, name = np.linalg.norm(r.target, axis=-1), np.linalg.norm(r.fitted, axis=-1), "|grad|"
        else:
            target, fitted, name = r.target, r.fitted, "Laplacian"
        lo, hi = np.percentile(target, [1, 99])
        show(row[0], r.image[..., None], label)
        for ax, m, title in ((row[1], target, f"target {name}"), (row[2], fitted, f"fit's {name}")):
            ax.imshow(m, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        raw = (r.raw - r.raw.min()) / max(float(np.ptp(r.raw)), 1e-12)
        show(row[3], raw[..., None], "fit (raw, rescaled)")
        matched = "mean" if r.mode == "gradient" else "mean + scale"
        show(row[4], np.clip(r.recovered, 0, 1)[..., None], f"recovered ({matched}): {r.psnr:.2f} dB")
    fig.tight_layout()
    save_figure(fig, path)
