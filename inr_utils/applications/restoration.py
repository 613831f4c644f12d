"""Image restoration with INRs: inpainting (train on the known pixels only), denoising (early stopping and
encoding bandwidth as the regulariser) and super-resolution (train on a downsampled image, render at full size).

An INR is a continuous function fitted to samples, so what it predicts between and beyond them is set by its
inductive bias: the encoding's bandwidth (Fourier-feature scale sigma, Tancik et al. 2020, "Fourier Features Let
Networks Learn High Frequency Functions in Low Dimensional Domains") or SIREN's omega0 (Sitzmann et al. 2020,
"Implicit Neural Representations with Periodic Activation Functions"), and the spectral bias of gradient descent
(low frequencies are fitted first). Inpainting and super-resolution read the INR where it saw no data; denoising
relies on the fit reaching the image before the noise. Each function fits with the one engine
(:func:`inr_utils.fitting.fit`, :func:`inr_utils.sweeps.fit_many`) and returns arrays and scores; the figures and
tables are the scripts' (``experiments/inpaint.py``, ``denoise.py``, ``super_resolve.py``).

Masks here are *known* masks: boolean ``(H, W)``, true where the pixel is given (trained on), false where it is
hidden (to be filled in). Mask files are the other way round, as scikit-image's ``inpaint_biharmonic`` takes
them: white (non-zero) = hidden.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from inr_utils.config import FitConfig
from inr_utils.engine import ChunkInfo
from inr_utils.errors import InputError
from inr_utils.fitting import fit, mask_rows
from inr_utils.grids import grid
from inr_utils.images import fit_size, image_files, load_image, load_source, resize
from inr_utils.metrics import psnr, ssim
from inr_utils.rendering import render
from inr_utils.sweeps import fit_many
from inr_utils.training import merge_variables
from model_components.inrs import build_model

__all__ = ["DenoiseResult", "InpaintResult", "SuperResolutionResult", "TargetPSNR", "add_noise", "biharmonic_fill",
           "box_mask", "denoise", "downsample", "hidden_scores", "image_inputs", "inpaint", "load_mask",
           "nearest_fill", "random_mask", "score", "super_resolve"]

#: Image file suffixes a ``--images DIR`` folder is searched for.


# --------------------------------------------------------------------------------------------- inputs and scores


def image_inputs(specs: Sequence[str], size: int) -> list[tuple[str, np.ndarray]]:
    """``(label, image)`` of each spec, resized so the longer side is ``size``: a PNG/JPEG path, a scikit-image
    test image name (centre square) or a folder (its image files, sorted by name). Labels are made unique.

    Raises:
      InputError: a missing file, an unreadable image, a folder without images.
    """
    loaded: list[tuple[str, np.ndarray]] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            files = image_files(path)
            loaded.extend((p.stem, fit_size(load_image(p), size)) for p in files)
        else:
            label, image = load_source(spec)
            loaded.append((label, fit_size(image, size)))
    seen: set[str] = set()
    out = []
    for label, image in loaded:
        while label in seen:
            label += "'"
        seen.add(label)
        out.append((label, image))
    return out


def score(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """``{"psnr": dB, "ssim": ...}`` of a prediction clipped to [0, 1] against ``target`` (``(H, W, C)``); SSIM
    (:func:`inr_utils.metrics.ssim`, 11x11 Gaussian window) is ``None`` below 11 pixels a side."""
    pred = np.clip(np.asarray(pred, np.float32), 0.0, 1.0)
    value = ssim(pred, target) if min(target.shape[:2]) >= 11 else None
    return {"psnr": round(float(psnr(pred, target)), 3), "ssim": None if value is None else round(value, 4)}


# --------------------------------------------------------------------------------------------- inpainting


def random_mask(shape: Sequence[int], hidden_fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    """Known mask hiding exactly ``round(hidden_fraction * H * W)`` pixels chosen uniformly (numpy ``seed``)."""
    if not 0.0 < hidden_fraction < 1.0:
        raise InputError(f"the hidden fraction must lie strictly between 0 and 1, got {hidden_fraction}")
    h, w = shape
    hidden = np.random.default_rng(seed).permutation(h * w) < round(hidden_fraction * h * w)
    return ~hidden.reshape(h, w)


def box_mask(shape: Sequence[int], box: Sequence[float] = (0.375, 0.625, 0.375, 0.625)) -> np.ndarray:
    """Known mask hiding the rectangle ``box = (x0, x1, y0, y1)`` (fractions of width and height; default the
    centre quarter of each side, 1/16 of the pixels)."""
    x0, x1, y0, y1 = box
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise InputError(f"a box X0 X1 Y0 Y1 needs 0 <= X0 < X1 <= 1 and 0 <= Y0 < Y1 <= 1, got {tuple(box)}")
    h, w = shape
    known = np.ones((h, w), bool)
    known[int(round(y0 * h)):max(int(round(y0 * h)) + 1, int(round(y1 * h))),
          int(round(x0 * w)):max(int(round(x0 * w)) + 1, int(round(x1 * w)))] = False
    return known


def load_mask(path: str | os.PathLike, shape: Sequence[int]) -> np.ndarray:
    """The known mask of a mask image (white = hidden, black = known; binary, exactly ``H x W`` pixels).

    Raises:
      InputError: unreadable file, another size, grey levels other than black and white, or no known pixel.
    """
    if not Path(path).is_file():
        raise InputError(f"mask file '{path}' does not exist or is not a file; pass a black-and-white PNG of the "
                         "image's size (white = hidden)")
    image = load_image(path)
    h, w = shape
    if image.shape[:2] != (h, w):
        raise InputError(f"mask '{path}' is {image.shape[1]}x{image.shape[0]} pixels but the image is "
                         f"{w}x{h}; give a mask of the image's size (or change --size)")
    gray = image.mean(axis=-1)
    if not np.all((gray == 0.0) | (gray == 1.0)):
        raise InputError(f"mask '{path}' is not binary (it has grey levels); use only black (known) and white "
                         "(hidden) pixels")
    known = gray == 0.0
    if known.all():
        raise InputError(f"mask '{path}' hides no pixel (it is all black); paint the pixels to fill in white")
    mask_rows(known, (h, w))  # a mask that hides everything is refused there
    return known


def biharmonic_fill(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The hidden pixels filled by scikit-image's biharmonic inpainting (the known ones kept)."""
    from skimage.restoration import inpaint_biharmonic

    return np.asarray(inpaint_biharmonic(image, ~known, channel_axis=-1), np.float32)


def nearest_fill(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Each hidden pixel takes the value of the nearest known one (Euclidean distance, ties by scipy's order)."""
    from scipy.ndimage import distance_transform_edt

    rows, cols = distance_transform_edt(~known, return_distances=False, return_indices=True)
    return image[rows, cols]


def hidden_scores(pred: np.ndarray, image: np.ndarray, known: np.ndarray) -> dict[str, float]:
    """Scores of a fill on the hidden pixels: ``psnr_hidden`` (dB, over the hidden pixels only) and ``ssim_box``
    (SSIM of the composite, known pixels from ``image``, over the bounding box of the hidden pixels; ``None``
    when that box is under 11 pixels a side)."""
    pred = np.clip(np.asarray(pred, np.float32), 0.0, 1.0)
    hidden = ~known
    mse = float(np.mean(np.square(pred[hidden].astype(np.float64) - image[hidden])))
    composite = np.where(known[..., None], image, pred)
    rows, cols = np.flatnonzero(hidden.any(axis=1)), np.flatnonzero(hidden.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return {"psnr_hidden": round(10.0 * np.log10(1.0 / max(mse, 1e-20)), 3),
            "ssim_box": score(composite[box], image[box])["ssim"]}


@dataclass
class InpaintResult:
    """What :func:`inpaint` returns.

    Attributes:
      known: the ``(H, W)`` known mask trained on.
      inr: the INR rendered at the image size, clipped to [0, 1] (every pixel is its prediction).
      fills: baseline name -> filled image (``biharmonic``, ``nearest``).
      scores: method name (``inr`` and each baseline) -> :func:`hidden_scores`.
      train_psnr: the INR's PSNR (dB) on the known pixels.
      wall_s: seconds of the fit.
    """

    known: np.ndarray
    inr: np.ndarray
    fills: dict[str, np.ndarray]
    scores: dict[str, dict[str, float]]
    train_psnr: float
    wall_s: float


BASELINES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "biharmonic": biharmonic_fill, "nearest": nearest_fill}


def inpaint(image: np.ndarray, known: np.ndarray, config: FitConfig, baselines: Sequence[str] = tuple(BASELINES),
            progress: bool = False) -> InpaintResult:
    """Fits ``config`` to the known pixels of ``image`` only (:func:`inr_utils.fitting.fit` with ``mask``) and
    scores its prediction on the hidden ones against the ``baselines`` fills.

    Args:
      image: float ``(H, W, C)`` in [0, 1] (the hidden pixels' values are read only for scoring).
      known: boolean ``(H, W)``, true where the pixel is given.
      config: the fit.
      baselines: names of :data:`BASELINES`.

    Raises:
      InputError: a mask of another size, not binary, hiding nothing or everything.
    """
    known = np.asarray(known)
    mask_rows(known, image.shape[:2])
    known = known.astype(bool)
    if known.all():
        raise InputError("the mask hides no pixel, so there is nothing to inpaint; hide some pixels")
    result = fit(image, config, progress=progress, eval_every=config.steps, mask=known)
    inr = np.clip(render(result.model.apply, result.variables, *image.shape[:2]), 0.0, 1.0)
    fills = {name: np.clip(BASELINES[name](image, known), 0.0, 1.0) for name in baselines}
    scores = {name: hidden_scores(pred, image, known) for name, pred in {"inr": inr, **fills}.items()}
    train_psnr = float(psnr(inr[known], image[known]))
    return InpaintResult(known, inr, fills, scores, train_psnr, result.wall_s)


# --------------------------------------------------------------------------------------------- denoising


def add_noise(image: np.ndarray, sigma: float = 0.1, seed: int = 0) -> np.ndarray:
    """``image + sigma * N(0, 1)``, float32, numpy ``seed``; not clipped, so the noise has exactly standard deviation
    ``sigma`` and the noisy image's expected PSNR is ``-20 log10(sigma)`` (20 dB at 0.1)."""
    if not sigma > 0:
        raise InputError(f"the noise level sigma must be positive, got {sigma}")
    noise = np.random.default_rng(seed).standard_normal(image.shape)
    return (np.asarray(image, np.float64) + sigma * noise).astype(np.float32)


class TargetPSNR:
    """Callback: PSNR (dB) of the prediction clipped to [0, 1] against a fixed ``target`` signal (not the training
    one, e.g. the clean image of a noisy fit) at every chunk end that crosses a multiple of ``every`` and at the
    last step; works for one model or stacked ones (then ``psnr`` rows are ``(N,)``, padding models included).
    Keeps the best render of every model.

    Attributes:
      steps: evaluation steps ``(E,)``; psnr: ``(E, N)`` dB; best_psnr, best_step: ``(N,)``; best: ``(N, *shape, C)``.
    """

    def __init__(self, apply_fn: Callable, target: np.ndarray, every: int):
        self.target = jnp.asarray(target, jnp.float32)
        coords = jnp.asarray(grid(target.shape[:-1])).reshape(-1, target.ndim - 1)
        shape = target.shape

        def one(variables: Any) -> tuple[jax.Array, jax.Array]:
            pred = jnp.clip(apply_fn(variables, coords).reshape(shape), 0.0, 1.0)
            return psnr(pred, self.target), pred

        self._one, self._many = jax.jit(one), jax.jit(jax.vmap(one))
        self.every = every
        self._last: int | None = None
        self.steps: list[int] = []
        self.rows: list[np.ndarray] = []
        self.best_psnr = self.best_step = self.best = None

    def __call__(self, info: ChunkInfo) -> None:
        crossed = self._last is None or info.step // self.every > self._last // self.every
        if not (crossed or info.step >= info.total_steps):
            return
        self._last = info.step
        variables = merge_variables(info.state.params, info.state.constants)
        values, preds = (self._many if info.stacked else self._one)(variables)
        values, preds = np.atleast_1d(np.asarray(values, np.float64)), np.asarray(preds)
        preds = preds if info.stacked else preds[None]
        if self.best is None:
            self.best_psnr, self.best_step, self.best = values.copy(), np.full(values.shape, info.step), preds.copy()
        better = values > self.best_psnr
        self.best_psnr[better], self.best_step[better], self.best[better] = values[better], info.step, preds[better]
        self.steps.append(info.step)
        self.rows.append(values)

    @property
    def psnr(self) -> np.ndarray:
        return np.stack(self.rows) if self.rows else np.zeros((0, 0))


@dataclass
class DenoiseResult:
    """What :func:`denoise` returns (N = number of configs).

    Attributes:
      noisy: the noisy training image; noisy_psnr: its PSNR (dB) to the clean image.
      steps: ``(E,)`` evaluation steps; psnr: ``(E, N)`` PSNR to the clean image at those steps.
      final: ``(N, H, W, C)`` final renders; final_scores: N :func:`score` dicts against the clean image.
      best: ``(N, H, W, C)`` renders at the best step (early stopping with an oracle); best_step ``(N,)``;
      best_scores: N :func:`score` dicts.
      fit_psnr: ``(N,)`` final PSNR to the noisy training image.
      wall_s: seconds of the fits.
    """

    noisy: np.ndarray
    noisy_psnr: float
    steps: np.ndarray
    psnr: np.ndarray
    final: np.ndarray
    final_scores: list[dict[str, float]]
    best: np.ndarray
    best_step: np.ndarray
    best_scores: list[dict[str, float]]
    fit_psnr: np.ndarray
    wall_s: float


def denoise(clean: np.ndarray, configs: Sequence[FitConfig], sigma: float = 0.1, seed: int = 0,
            eval_every: int = 100, progress: bool = False) -> DenoiseResult:
    """Fits every config to ``clean`` plus Gaussian noise (:func:`add_noise`) in one :func:`fit_many` call, and
    follows each fit's PSNR to the clean image during training (:class:`TargetPSNR`).

    The fit first reaches the image (low frequencies are learnt first, the spectral bias), then the noise: its
    PSNR to the clean image rises above the noisy input's, peaks and falls. A lower encoding bandwidth (Fourier
    scale, omega0, PE frequencies) slows the second phase down, and can keep it from happening at all.

    Args:
      clean: float ``(H, W, C)`` in [0, 1].
      configs: N configs that share a model axis (e.g. :func:`inr_utils.sweeps.sweep_grid` over
        ``fourier_scale``).
      sigma, seed: the noise.
      eval_every: steps between evaluations against the clean image (at chunk ends).
    """
    noisy = add_noise(clean, sigma, seed)
    configs = list(configs)
    n = len(configs)
    model = build_model(dataclasses.replace(configs[0].model, out_dim=clean.shape[-1], in_dim=clean.ndim - 1))
    tracker = TargetPSNR(model.apply, clean, eval_every)
    result = fit_many(configs, noisy, progress=progress, eval_every=eval_every, callbacks=[tracker])
    final = np.clip(render(result.model.apply, result.variables, *clean.shape[:2], stacked=True), 0.0, 1.0)
    return DenoiseResult(noisy, float(psnr(noisy, clean)), np.asarray(tracker.steps), tracker.psnr[:, :n], final,
                         [score(f, clean) for f in final], tracker.best[:n], tracker.best_step[:n],
                         [score(b, clean) for b in tracker.best[:n]], np.asarray(result.psnr_unclipped),
                         result.wall_s)


# --------------------------------------------------------------------------------------------- super-resolution


def downsample(image: np.ndarray, factor: int, method: str = "area") -> tuple[np.ndarray, np.ndarray]:
    """``(reference, small)``: ``image`` cropped (top-left kept) to a multiple of ``factor`` on each side, and that
    crop shrunk ``factor`` times with ``method`` (``area``: the mean of each ``factor x factor`` block, exact;
    ``bicubic``: Pillow's antialiased bicubic). A small pixel covers the same square of the [-1, 1]^2 domain as its
    block, so an INR fitted to ``small`` and rendered at the reference size is sampled at the reference's pixel
    centres."""
    if factor < 2:
        raise InputError(f"the downsampling factor must be at least 2, got {factor}")
    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    if h < factor or w < factor:
        raise InputError(f"the image ({image.shape[1]}x{image.shape[0]}) is smaller than the factor {factor}; "
                         "use a larger image or a smaller --factor")
    reference = image[:h, :w]
    if method == "area":
        small = reference.reshape(h // factor, factor, w // factor, factor, -1).mean(axis=(1, 3))
    elif method == "bicubic":
        small = np.clip(resize(reference, h // factor, w // factor, "bicubic"), 0.0, 1.0)
    else:
        raise InputError(f"unknown downsampling method {method!r}; choose area or bicubic")
    return reference, small.astype(np.float32)


@dataclass
class SuperResolutionResult:
    """What :func:`super_resolve` returns (N = number of configs).

    Attributes:
      reference: the ``(H, W, C)`` original (cropped to a multiple of the factor); small: the training image.
      renders: ``(N, H, W, C)`` INR renders at the reference size, clipped; baselines: name -> upsampled image
        (``bicubic``, ``nearest``).
      scores: method name (``inr_0``, ... per config, and each baseline) -> :func:`score` against the reference.
      train_psnr: ``(N,)`` PSNR (dB) of each INR to the small training image, rendered at its size.
      wall_s: seconds of the fits.
    """

    reference: np.ndarray
    small: np.ndarray
    renders: np.ndarray
    baselines: dict[str, np.ndarray]
    scores: dict[str, dict[str, float]]
    train_psnr: np.ndarray
    wall_s: float


def super_resolve(image: np.ndarray, configs: Sequence[FitConfig], factor: int = 4, method: str = "area",
                  progress: bool = False) -> SuperResolutionResult:
    """Downsamples ``image`` ``factor`` times (:func:`downsample`), fits every config to the small image in one
    :func:`fit_many` call, renders each at the original size (:func:`inr_utils.rendering.render`) and scores
    them and bicubic/nearest upsampling (Pillow) against the original."""
    reference, small = downsample(image, factor, method)
    h, w = reference.shape[:2]
    result = fit_many(list(configs), small, progress=progress, eval_every=configs[0].steps)
    renders = np.clip(render(result.model.apply, result.variables, h, w, stacked=True), 0.0, 1.0)
    at_train = np.clip(render(result.model.apply, result.variables, *small.shape[:2], stacked=True), 0.0, 1.0)
    baselines = {name: np.clip(resize(small, h, w, name), 0.0, 1.0) for name in ("bicubic", "nearest")}
    scores = {f"inr_{i}": score(r, reference) for i, r in enumerate(renders)}
    scores.update({name: score(b, reference) for name, b in baselines.items()})
    train_psnr = np.asarray([float(psnr(a, small)) for a in at_train])
    return SuperResolutionResult(reference, small, renders, baselines, scores, train_psnr, result.wall_s)
