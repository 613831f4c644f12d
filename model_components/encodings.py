"""Coordinate encodings: maps ``(..., d) -> (..., d')`` applied before an INR's first layer.

Every encoding is a Flax Linen module registered in :data:`model_components.catalog.ENCODINGS` by name and exposes
``output_dim(input_dim)`` so a model can size its first layer without tracing.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


class IdentityEncoding(nn.Module):
    """Passes raw coordinates through: ``(..., d) -> (..., d)``."""

    def output_dim(self, input_dim: int) -> int:
        return input_dim

    @nn.compact
    def __call__(self, coords: jax.Array) -> jax.Array:
        return coords


class PositionalEncoding(nn.Module):
    """NeRF positional encoding (Mildenhall et al. 2020, "NeRF", Eq. 4).

        gamma(p) = [p, sin(2^0 c p), ..., sin(2^(L-1) c p), cos(2^0 c p), ..., cos(2^(L-1) c p)]

    applied to each coordinate, with c = 1 (``pi=False``) or c = pi (``pi=True``, the paper's Eq. 4).
    Output layout: ``[p (if include_input), sin block, cos block]`` where each block is ordered
    coordinate-major (all L frequencies of coordinate 0, then of coordinate 1, ...).

    Convention (README "Conventions", item 1): the paper writes 2^k pi, but the NeRF code (and FINER's PE
    baseline) multiply by 2^k only. On our pixel-centre grid over [-1, 1] (pixel pitch 2/N), 2^k pi with L = 10
    on a 256-pixel image puts octaves 8 and 9 on multiples of pi at every pixel centre (sines 0, cosines +-1)
    and octave 7 at Nyquist (sine +-1 alternating, cosine 0): 5 of each coordinate's 20 channels are constant
    in training and only add unconstrained high frequencies between the pixels. With c = 1 the angles at
    pixel centres, 2^k (2j + 1 - N) / N rad, are rational, never multiples of pi (except 0 at one centre), so
    no channel is constant on any grid; the highest octave of L = 10 is 512 rad per unit (a period of 1.6
    pixels at 256). ``benchmarks/results/conventions.json`` has the measured effect.

    Attributes:
      num_frequencies: L, the number of octaves; L = 0 means raw coordinates (include_input is then forced).
      include_input: whether p itself is prepended.
      pi: multiply the octaves 2^k by pi (the paper's Eq. 4) instead of 1 (the NeRF code).

    Shapes: ``(..., d) -> (..., d * 2L + d * include_input)``; L=10 on 2-D input with the input gives 42.
    """

    num_frequencies: int = 10
    include_input: bool = True
    pi: bool = False

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
        freqs = 2.0 ** jnp.arange(self.num_frequencies, dtype=coords.dtype)  # (L,)
        if self.pi:
            freqs = freqs * jnp.pi
        angles = (coords[..., :, None] * freqs).reshape(*coords.shape[:-1], -1)  # (..., d*L)
        parts = [jnp.sin(angles), jnp.cos(angles)]
        if self.include_input:
            parts.insert(0, coords)
        return jnp.concatenate(parts, axis=-1)


def gaussian_fourier_matrix(key: jax.Array, shape: tuple[int, int], scale: float) -> jax.Array:
    """Draws B ~ N(0, scale^2) of ``shape = (input_dim, num_features)`` for Gaussian Fourier features."""
    return scale * jax.random.normal(key, shape)


class GaussianFourierFeatures(nn.Module):
    """Random Fourier features (Tancik et al. 2020, "Fourier Features Let Networks Learn High Frequency
    Functions in Low Dimensional Domains", Sec. 5):

        gamma(v) = [cos(2 pi B v), sin(2 pi B v)],  B in R^{m x d}, B_ij ~ N(0, sigma^2),

    with v = (x + 1) / 2 in [0, 1]^d the paper's coordinates, x in [-1, 1]^d ours (README "Conventions",
    item 2): sigma is in cycles per unit of [0, 1), i.e. per image side, so a sigma here means what it means
    in the paper's tables and code (which sample v on [0, 1)), whatever the resolution. The stored matrix is
    per unit of x: ``B_x = B / 2 ~ N(0, (sigma / 2)^2)`` and the features ``[cos(2 pi B_x x), sin(...)]``, i.e.
    ``2 pi B (v - 1/2)``: the paper's features centred on the image (each (cos, sin) pair rotated by a fixed
    angle, which the next linear layer absorbs). A network saved before this convention (sigma per unit of
    x, stored B unchanged) is the same network at twice its old ``scale``.

    B is drawn once at init and stored in the ``"constants"`` collection, so optimizers never update it
    (it is not in ``"params"``) while it still travels with the model's variables for saving and vmapping.

    Attributes:
      num_features: m, the number of random frequencies (output has 2m features).
      scale: sigma, standard deviation of the frequencies in cycles per image side (per unit of v in [0, 1)).
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
                self.make_rng("params"), (coords.shape[-1], self.num_features), 0.5 * self.scale
            ),  # sigma per unit of v = (x + 1) / 2 is sigma / 2 per unit of x
        ).value  # (d, m)
        angles = 2.0 * math.pi * (coords @ matrix.astype(coords.dtype))  # (..., m)
        parts = [jnp.cos(angles), jnp.sin(angles)]
        if self.include_input:
            parts.insert(0, coords)
        return jnp.concatenate(parts, axis=-1)


def _positive_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


class MultiScaleFourierFeatures(nn.Module):
    """Multi-scale random Fourier features (Wang, Wang & Perdikaris 2021, "On the eigenvector bias of Fourier
    feature networks: From regression to solving multi-scale PDEs with physics-informed neural networks",
    Sec. 4): one Gaussian frequency matrix per scale,

        gamma_i(v) = [cos(2 pi B_i v), sin(2 pi B_i v)],  B_i in R^{m x d},  (B_i)_jk ~ N(0, sigma_i^2),

    with v = (x + 1) / 2 in [0, 1]^d (the convention of :class:`GaussianFourierFeatures`: sigma_i in cycles per
    unit of [0, 1), the papers' unit domain; stored per unit of x, with std sigma_i / 2), for scales
    sigma_1 .. sigma_S. In the paper every gamma_i goes through the same MLP (shared weights) and the S branch
    outputs meet at the last layer; an encoding can only shape the first layer's input, so it offers:

      * ``combine="concat"`` (default): ``[gamma_1(v), ..., gamma_S(v)]``. The first layer then has its own
        weights per scale and sums their contributions: ``W [gamma_1; ...; gamma_S] = sum_i W_i gamma_i``, the
        per-scale branches with an unshared first layer.
      * ``combine="sum"``: ``sum_i gamma_i(v)``. A first layer W then computes ``W sum_i gamma_i = sum_i W
        gamma_i``: exactly the per-scale branches through one *shared* first linear map, summed (as in the
        multi-scale decoder of LA-INR), with the bias counted once.

    The matrices are drawn once at init from the ``"params"`` RNG (standard normals scaled per scale) and stored
    as one ``(S, d, m)`` array ``B`` in the ``"constants"`` collection, so they are never trained.

    Attributes:
      num_features: m, random frequencies per scale.
      scales: sigma_i, the standard deviations in cycles per side of the domain (per unit of v in [0, 1)),
        e.g. ``(1.0, 10.0)``; a list or tuple of positive numbers.
      combine: ``"concat"`` or ``"sum"``, see above.
      include_input: whether v itself is prepended.

    Shapes: ``(..., d) -> (..., 2 m S + d * include_input)`` (concat) or ``(..., 2 m + d * include_input)``
    (sum). Block layout (concat): scale-major, each block ``[cos (m), sin (m)]``.
    """

    num_features: int = 128
    scales: tuple[float, ...] = (1.0, 10.0)
    combine: str = "concat"
    include_input: bool = False

    @staticmethod
    def check_options(options: dict) -> None:
        num_features = options.get("num_features", 128)
        if not isinstance(num_features, int) or isinstance(num_features, bool) or num_features <= 0:
            raise ValueError(f"num_features of multiscale_fourier must be a positive integer, got {num_features!r}")
        scales = options.get("scales", (1.0, 10.0))
        if not isinstance(scales, (list, tuple)) or not scales or not all(_positive_number(s) for s in scales):
            raise ValueError(f"scales of multiscale_fourier must be a non-empty list of positive numbers, "
                             f"got {scales!r}")
        if options.get("combine", "concat") not in ("concat", "sum"):
            raise ValueError(f"combine of multiscale_fourier must be 'concat' or 'sum', got {options['combine']!r}")

    def output_dim(self, input_dim: int) -> int:
        per_scale = 2 * self.num_features
        features = per_scale * len(self.scales) if self.combine == "concat" else per_scale
        return features + (input_dim if self.include_input else 0)

    @nn.compact
    def __call__(self, coords: jax.Array) -> jax.Array:
        self.check_options({"num_features": self.num_features, "scales": tuple(self.scales),
                            "combine": self.combine})
        sigma = jnp.asarray(tuple(self.scales), jnp.float32)  # (S,)
        shape = (len(self.scales), coords.shape[-1], self.num_features)
        matrices = self.variable(
            "constants", "B", lambda: 0.5 * sigma[:, None, None] * jax.random.normal(self.make_rng("params"), shape)
        ).value  # (S, d, m)
        angles = 2.0 * math.pi * jnp.einsum("...d,sdm->...sm", coords, matrices.astype(coords.dtype))  # (..., S, m)
        bands = jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)  # (..., S, 2m)
        if self.combine == "sum":
            features = jnp.sum(bands, axis=-2)
        else:
            features = bands.reshape(*bands.shape[:-2], -1)
        return jnp.concatenate([coords, features], axis=-1) if self.include_input else features


def lattice_frequencies(in_dim: int, max_frequency: int, half: bool = True) -> np.ndarray:
    """Integer frequency vectors ``{k in Z^d : |k|_inf <= K}`` in lexicographic order (first axis slowest).

    With ``half``, k = 0 and one of each pair (k, -k) are dropped (the one kept has its first non-zero
    component positive): cos and sin of ``-k . x`` repeat those of ``k . x`` up to sign.

    Returns:
      ``(n, d)`` int32 array; n = (2K + 1)^d, or ((2K + 1)^d - 1) / 2 with ``half``.
    """
    axis = np.arange(-max_frequency, max_frequency + 1)
    grid = np.stack(np.meshgrid(*([axis] * in_dim), indexing="ij"), axis=-1).reshape(-1, in_dim)
    if half:
        nonzero = grid != 0
        first = np.where(nonzero.any(axis=1), grid[np.arange(len(grid)), nonzero.argmax(axis=1)], 0)
        grid = grid[first > 0]
    return grid.astype(np.int32)


class LatticeFourierFeatures(nn.Module):
    """Fourier features on the integer lattice: a deterministic, complete Fourier basis of [-1, 1]^d up to
    frequency K per axis (the Fourier-series view of Fourier feature networks; cf. Tancik et al. 2020, Sec. 4,
    and Benbarka et al. 2022, "Seeing Implicit Neural Representations as Fourier Series"):

        gamma(x) = [cos(pi k . x), sin(pi k . x)]  for k in {k in Z^d : |k|_inf <= K},

    with coordinates x in [-1, 1] (so k = 1 is one period over the domain, period 2). With ``half`` (default)
    k = 0 and the duplicates -k are dropped. The frequencies are fixed numbers computed at trace time (no
    variables at all).

    Attributes:
      max_frequency: K >= 1, the largest |k_i|.
      half: keep one of each (k, -k) and drop k = 0.
      include_input: whether x itself is prepended.

    Shapes: ``(..., d) -> (..., 2n + d * include_input)`` with n = ((2K + 1)^d - 1) / 2 (half) or (2K + 1)^d;
    layout ``[x (if include_input), cos block (n), sin block (n)]``, frequencies in the order of
    :func:`lattice_frequencies`. K = 8 in 2-D with ``half`` gives 288 features.
    """

    max_frequency: int = 8
    half: bool = True
    include_input: bool = False

    @staticmethod
    def check_options(options: dict) -> None:
        k = options.get("max_frequency", 8)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"max_frequency of lattice_fourier must be an integer >= 1, got {k!r}")

    def num_frequencies(self, input_dim: int) -> int:
        full = (2 * self.max_frequency + 1) ** input_dim
        return (full - 1) // 2 if self.half else full

    def output_dim(self, input_dim: int) -> int:
        return 2 * self.num_frequencies(input_dim) + (input_dim if self.include_input else 0)

    @nn.compact
    def __call__(self, coords: jax.Array) -> jax.Array:
        self.check_options({"max_frequency": self.max_frequency})
        freqs = lattice_frequencies(coords.shape[-1], self.max_frequency, self.half)  # (n, d)
        angles = coords @ jnp.asarray(math.pi * freqs.T, coords.dtype)  # (..., n)
        parts = [jnp.cos(angles), jnp.sin(angles)]
        if self.include_input:
            parts.insert(0, coords)
        return jnp.concatenate(parts, axis=-1)
