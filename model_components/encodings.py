"""Coordinate encodings: maps ``(..., d) -> (..., d')`` applied before an INR's first layer.

Every encoding is a Flax Linen module registered in :data:`ENCODINGS` by name and exposes
``output_dim(input_dim)`` so a model can size its first layer without tracing.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from model_components.registry import Registry

ENCODINGS: Registry[type[nn.Module]] = Registry("encoding")


@ENCODINGS.register("none")
class IdentityEncoding(nn.Module):
    """Passes raw coordinates through: ``(..., d) -> (..., d)``."""

    def output_dim(self, input_dim: int) -> int:
        return input_dim

    @nn.compact
    def __call__(self, coords: jax.Array) -> jax.Array:
        return coords


@ENCODINGS.register("nerf")
class PositionalEncoding(nn.Module):
    """NeRF positional encoding (Mildenhall et al. 2020, "NeRF", Eq. 4).

        gamma(p) = [p, sin(2^0 pi p), ..., sin(2^(L-1) pi p), cos(2^0 pi p), ..., cos(2^(L-1) pi p)]

    applied to each coordinate. Output layout: ``[p (if include_input), sin block, cos block]`` where each
    block is ordered coordinate-major (all L frequencies of coordinate 0, then of coordinate 1, ...).

    Attributes:
      num_frequencies: L, the number of octaves; L = 0 means raw coordinates (include_input is then forced).
      include_input: whether p itself is prepended.

    Shapes: ``(..., d) -> (..., d * 2L + d * include_input)``; L=10 on 2-D input with the input gives 42.
    """

    num_frequencies: int = 10
    include_input: bool = True

    @staticmethod
    def check_options(options: dict) -> None:
        if options.get("num_frequencies", 10) < 0:
            raise ValueError(f"num_frequencies must be >= 0, got {options['num_frequencies']}")

    def output_dim(self, input_dim: int) -> int:
        if self.num_frequencies == 0:
            return input_dim
        return input_dim * 2 * self.num_frequencies + (input_dim if self.include_input else 0)

    @nn.compact
    def __call__(self, coords: jax.Array) -> jax.Array:
        if self.num_frequencies < 0:
            raise ValueError(f"num_frequencies must be >= 0, got {self.num_frequencies}")
        if self.num_frequencies == 0:
            return coords
        freqs = (2.0 ** jnp.arange(self.num_frequencies, dtype=coords.dtype)) * jnp.pi  # (L,)
        angles = (coords[..., :, None] * freqs).reshape(*coords.shape[:-1], -1)  # (..., d*L)
        parts = [jnp.sin(angles), jnp.cos(angles)]
        if self.include_input:
            parts.insert(0, coords)
        return jnp.concatenate(parts, axis=-1)


def gaussian_fourier_matrix(key: jax.Array, shape: tuple[int, int], scale: float) -> jax.Array:
    """Draws B ~ N(0, scale^2) of ``shape = (input_dim, num_features)`` for Gaussian Fourier features."""
    return scale * jax.random.normal(key, shape)


@ENCODINGS.register("fourier")
class GaussianFourierFeatures(nn.Module):
    """Random Fourier features (Tancik et al. 2020, "Fourier Features Let Networks Learn High Frequency
    Functions in Low Dimensional Domains", Sec. 5):

        gamma(v) = [cos(2 pi B v), sin(2 pi B v)],  B in R^{m x d}, B_ij ~ N(0, sigma^2)

    B is drawn once at init and stored in the ``"constants"`` collection, so optimizers never update it
    (it is not in ``"params"``) while it still travels with the model's variables for saving and vmapping.

    Attributes:
      num_features: m, the number of random frequencies (output has 2m features).
      scale: sigma, standard deviation of the frequencies in cycles per unit of the coordinate domain;
        with coordinates in [-1, 1], sigma ~ 10 suits 256 px images.
      include_input: whether v itself is prepended.

    Shapes: ``(..., d) -> (..., 2m + d * include_input)``.
    """

    num_features: int = 256
    scale: float = 10.0
    include_input: bool = False

    @staticmethod
    def check_options(options: dict) -> None:
        if options.get("num_features", 256) <= 0:
            raise ValueError(f"num_features (fourier_features) must be positive, got {options['num_features']}")
        if not options.get("scale", 10.0) > 0:
            raise ValueError(f"scale (fourier_scale) of Fourier features must be positive, got {options['scale']}")

    def output_dim(self, input_dim: int) -> int:
        return 2 * self.num_features + (input_dim if self.include_input else 0)

    @nn.compact
    def __call__(self, coords: jax.Array) -> jax.Array:
        matrix = self.variable(
            "constants",
            "B",
            lambda: gaussian_fourier_matrix(
                self.make_rng("params"), (coords.shape[-1], self.num_features), self.scale
            ),
        ).value  # (d, m)
        angles = 2.0 * math.pi * (coords @ matrix.astype(coords.dtype))  # (..., m)
        parts = [jnp.cos(angles), jnp.sin(angles)]
        if self.include_input:
            parts.insert(0, coords)
        return jnp.concatenate(parts, axis=-1)
