"""Image quality metrics for signals in [0, 1]: MSE, PSNR, SSIM (Gaussian window, and the uniform-window
variant SIREN and WIRE report)."""

from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

from inr_utils.losses import check_same_shape


def mse(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Mean squared error over all elements (arrays of equal shape); float32 scalar."""
    check_same_shape(pred, target)
    return jnp.mean(jnp.square(jnp.asarray(pred, jnp.float32) - jnp.asarray(target, jnp.float32)))


def psnr_from_mse(mse_value: jax.Array | float, data_range: float = 1.0) -> jax.Array:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range^2 / mse)`` (inf for mse = 0)."""
    return 10.0 * jnp.log10(data_range**2 / jnp.asarray(mse_value, jnp.float32))


def psnr(pred: jax.Array, target: jax.Array, data_range: float = 1.0) -> jax.Array:
    """PSNR in dB between arrays of equal shape with values in [0, data_range]; float32 scalar."""
    return psnr_from_mse(mse(pred, target), data_range)


def ssim(pred: np.ndarray | jax.Array, target: np.ndarray | jax.Array) -> float:
    """Structural similarity (Wang et al. 2004, "Image Quality Assessment: From Error Visibility to Structural
    Similarity") of two ``(H, W, C)`` images in [0, 1], using dm-pix with the paper's settings (11x11
    Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03), averaged over pixels and channels.

        SSIM(x, y) = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))

    Returns:
      Python float in [-1, 1]; 1 means identical.
    """
    check_same_shape(jnp.asarray(pred), jnp.asarray(target))
    if np.ndim(pred) != 3:
        raise ValueError(f"ssim expects (H, W, C) images, got shape {np.shape(pred)}")
    value = dm_pix.ssim(jnp.asarray(pred, jnp.float32), jnp.asarray(target, jnp.float32), max_val=1.0)
    return float(value)


def ssim_skimage(pred: np.ndarray | jax.Array, target: np.ndarray | jax.Array) -> float:
    """SSIM as the SIREN and WIRE papers report it: scikit-image's ``structural_similarity`` with its defaults
    (7x7 uniform window, sample covariances, K1 = 0.01, K2 = 0.03, data range 1), averaged over pixels and
    channels. The same formula as :func:`ssim` with another window, so the two differ on the same pair (on
    photographs with mild noise the flat window usually reads higher); compare a paper's SSIM with this one.

    Args:
      pred, target: ``(H, W, C)`` images in [0, 1], H and W at least 7.

    Returns:
      Python float in [-1, 1]; 1 means identical.
    """
    from skimage.metrics import structural_similarity

    check_same_shape(jnp.asarray(pred), jnp.asarray(target))
    if np.ndim(pred) != 3 or min(np.shape(pred)[:2]) < 7:
        raise ValueError(f"ssim_skimage expects (H, W, C) images of at least 7x7 pixels, got shape {np.shape(pred)}")
    return float(structural_similarity(np.asarray(pred, np.float64), np.asarray(target, np.float64),
                                       channel_axis=-1, data_range=1.0))
