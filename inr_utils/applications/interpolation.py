"""Weight interpolation: two INRs fitted from the same initialisation, and the images of the straight line
between their weights, ``theta(t) = (1 - t) theta_A + t theta_B``, against a pixel cross-fade of the two fits,
``(1 - t) f_A + t f_B``.

Both fits start from the same weights (the same config and seed, so :func:`inr_utils.sweeps.fit_many` makes the
same initial state for both) and train on one image each. Fitted from a shared start, the two weight vectors
often stay in one basin, so the path between them passes through images rather than noise; but an INR is not
linear in its weights, so the midpoints are not the cross-fade: features move, blur and change colour instead of
dissolving (a known observation of functa-style and model-merging work, e.g. Frankle et al. 2020, "Linear Mode
Connectivity and the Lottery Ticket Hypothesis", for the shared-start condition). The script
``experiments/interpolate_weights.py`` writes both as animated GIFs.

Only the trainable parameters are interpolated; the constants (e.g. the Gaussian Fourier-feature matrix B) are
the same for both fits (checked) and kept. At ``t = 0`` and ``t = 1`` the interpolated parameters are exactly
A's and B's (``1 * a + 0 * b == a`` in floating point), so the end frames are the two fits' renders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from inr_utils.config import FitConfig
from inr_utils.errors import InputError
from inr_utils.metrics import psnr
from inr_utils.rendering import render
from inr_utils.sweeps import SweepResult, fit_many, unstack

__all__ = ["WeightInterpolation", "crossfade", "interpolate_params", "interpolate_weights", "render_path"]


def interpolate_params(a: Any, b: Any, t: float) -> Any:
    """``(1 - t) a + t b`` leaf by leaf (pytrees of equal structure, shapes and dtypes), in each leaf's dtype;
    exactly ``a`` at ``t = 0`` and exactly ``b`` at ``t = 1`` (finite leaves)."""
    def mix(x: jax.Array, y: jax.Array) -> jax.Array:
        x, y = jnp.asarray(x), jnp.asarray(y)
        if x.shape != y.shape or x.dtype != y.dtype:
            raise ValueError(f"cannot interpolate a {x.dtype}{x.shape} leaf with a {y.dtype}{y.shape} one")
        return jnp.asarray(1.0 - t, x.dtype) * x + jnp.asarray(t, x.dtype) * y

    return jax.tree.map(mix, a, b)


def crossfade(image_a: np.ndarray, image_b: np.ndarray, ts: Sequence[float]) -> np.ndarray:
    """``(T, H, W, C)`` pixel cross-fade ``(1 - t) image_a + t image_b`` for every ``t`` of ``ts``."""
    t = np.asarray(ts, np.float32).reshape(-1, 1, 1, 1)
    return (1.0 - t) * np.asarray(image_a, np.float32)[None] + t * np.asarray(image_b, np.float32)[None]


def render_path(result: SweepResult, ts: Sequence[float], height: int, width: int, models: tuple[int, int] = (0, 1),
                ) -> np.ndarray:
    """The images of the interpolated weights of ``result``'s models ``models = (A, B)``, one per ``t``:
    ``(T, height, width, C)``, not clipped, rendered as one stack (``render(..., stacked=True)``).

    Raises:
      InputError: the two models' constants differ (different seeds or encodings: no common start).
    """
    variables = [unstack(result, i) for i in models]
    params = [v["params"] for v in variables]
    constants = [{k: x for k, x in v.items() if k != "params"} for v in variables]
    same = jax.tree.map(lambda x, y: bool(np.array_equal(np.asarray(x), np.asarray(y))), *constants)
    if not all(jax.tree.leaves(same)):
        raise InputError("the two fits have different constants (e.g. Fourier matrices from different seeds); fit "
                         "both from the same config and seed")
    frames = [{"params": interpolate_params(*params, float(t)), **constants[0]} for t in ts]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *frames)
    return render(result.model.apply, stacked, height, width, stacked=True)


@dataclass
class WeightInterpolation:
    """What :func:`interpolate_weights` returns.

    Attributes:
      images: ``(2, H, W, C)`` the two targets.
      fits: ``(2, H, W, C)`` each fit rendered on its own (clipped to [0, 1]).
      fit_psnr: ``(2,)`` dB of each fit to its image.
      ts: ``(T,)`` interpolation weights in [0, 1].
      frames: ``(T, H, W, C)`` images of the interpolated weights (clipped).
      crossfade: ``(T, H, W, C)`` pixel cross-fade of the two fits.
      psnr_to_crossfade: ``(T,)`` dB of each weight frame to the cross-fade frame of the same ``t``.
      result: the :class:`inr_utils.sweeps.SweepResult` of the two fits.
    """

    images: np.ndarray
    fits: np.ndarray
    fit_psnr: np.ndarray
    ts: np.ndarray
    frames: np.ndarray
    crossfade: np.ndarray
    psnr_to_crossfade: np.ndarray
    result: SweepResult


def interpolate_weights(image_a: np.ndarray, image_b: np.ndarray, config: FitConfig, num_frames: int = 17,
                        progress: bool = False) -> WeightInterpolation:
    """Fits ``config`` to both images from one initialisation (one :func:`fit_many` call, both models with
    ``config.seed``), then renders ``num_frames`` evenly spaced points ``t`` in [0, 1] of the straight line between
    the two weight vectors (:func:`render_path`) and the pixel cross-fade of the two fits (:func:`crossfade`).

    Raises:
      InputError: images of different sizes or channel counts, fewer than 2 frames.
    """
    if image_a.shape != image_b.shape:
        raise InputError(f"the two images must have the same size and channels, got {image_a.shape} and "
                         f"{image_b.shape}; resize one (e.g. with --size) or convert it")
    if num_frames < 2:
        raise InputError(f"the interpolation needs at least 2 frames, got {num_frames}")
    images = np.stack([image_a, image_b]).astype(np.float32)
    result = fit_many([config, config], images, progress=progress, eval_every=config.steps)
    h, w = images.shape[1:3]
    fits = np.stack([np.clip(render(result.model.apply, unstack(result, i), h, w), 0.0, 1.0) for i in (0, 1)])
    ts = np.linspace(0.0, 1.0, num_frames)
    frames = np.clip(render_path(result, ts, h, w), 0.0, 1.0)
    fades = crossfade(fits[0], fits[1], ts)
    return WeightInterpolation(
        images=images, fits=fits, fit_psnr=np.asarray([float(psnr(fits[i], images[i])) for i in (0, 1)]), ts=ts,
        frames=frames, crossfade=fades,
        psnr_to_crossfade=np.asarray([float(psnr(f, c)) for f, c in zip(frames, fades, strict=True)]),
        result=result)
