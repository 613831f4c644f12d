"""LA-INR: a locality-aware generalizable INR (a hypernetwork registered as ``"lainr"``).

Lee, Kim, Cho & Han, "Locality-Aware Generalizable Implicit Neural Representation" (NeurIPS 2023). An encoder
turns an image into ``num_lp`` latent tokens ``z_r`` (each with a position ``s_r`` in the image); the INR (the
*decoder*, shared by all images) evaluates a coordinate ``v`` in three steps:

1. Selective token aggregation (cross-attention of the coordinate to the tokens), with a spatial bias::

       q = W_q ReLU(W γ_{σ_q}(v)),   m_v = W_o Σ_r softmax_r(q·k_r / sqrt(d) - α |v - s_r|²) v_r

   (per head; ``k_r, v_r`` linear in ``z_r``; α per head, learnable, initialised at ``alpha_init`` ≥ 0 and
   not constrained afterwards).
2. Multi-band feature modulation, one band per bandwidth σ_ℓ of ``sigmas`` (ℓ = 1..L, in the given order)::

       h_ℓ = ReLU(W_ℓ γ_{σ_ℓ}(v) + b_ℓ)                  (band features)
       m_ℓ = ReLU(h_ℓ + U_ℓ m_v + c_ℓ)                    (modulated by the aggregated tokens)
       g_1 = m_1,   g_ℓ = ReLU(V_ℓ (m_ℓ + g_{ℓ-1}) + e_ℓ)  (residual chain through the bands)

3. Output ``f(v) = Σ_ℓ (O_ℓ g_ℓ + o_ℓ)``: per-band heads summed (C channels, RGB).

Fourier features (as ``deterministic_transinr`` of the reference code base kakaobrain/ginr-ipc, on which LA-INR
is built): per coordinate dimension, ``n`` frequencies log-spaced in ``[ω_min, σ]``
(``ω_k = exp(linspace(log ω_min, log σ, n))``, ``ω_min = 1``), ``γ_σ(v) = [cos(π ω_k v_i), sin(π ω_k v_i)]``
for coords ``v ∈ [-1, 1]^2`` (so frequency ω is ω/2 cycles per unit).

Where this follows / deviates from the paper (the official LA-INR code was not available to check; the
formulas above follow the paper, the Fourier convention follows ginr-ipc):
* Encoder: patch tokens (``patch_size`` 2 on 32x32 -> 256 tokens) plus a Fourier positional encoding of the patch
  centres, through a transformer (pre-norm ViT blocks, :mod:`model_components.transformer`) or a bidirectional
  Mamba (:mod:`model_components.mamba`; not in the paper). The paper appends learnable latent tokens to the
  patch tokens and reads them out (``latent_tokens="learned"`` here, ``num_lp`` a square number, positions the
  centres of a ``sqrt(num_lp)`` grid over the image); the default ``"patches"`` reads the latents out at the patch
  tokens themselves (``num_lp`` = number of patches, ``s_r`` = the patch centres): half the sequence, and the
  natural choice for the scan-based encoder, whose tokens then sit at their own place in the scan.
* The spatial bias ``-α |v - s_r|²`` is an addition of this library (the paper lets locality emerge from
  the learned attention alone: ``alpha_init=0, learn_alpha=False`` is the paper's decoder).
* Defaults are sized for CPU training on CIFAR-10: encoder width 128, 4 blocks (transformer: 4 heads, MLP ratio 2;
  Mamba: expand 1, 8 states per channel); 256 latent tokens; decoder width 64, 2 heads, 16 frequencies per
  dimension and band. Parameters: 586,248 with the transformer, 302,088 with Mamba (CIFAR-10, 32x32x3).
  Paper-scale (approximately; the paper's appendix has the exact numbers): a 6-block width-256 transformer
  encoder, 256 latent tokens, decoder width 256, ``sigmas = (128, 32)``, ``query_sigma = 16``; e.g.
  ``hyper_config("lainr", dim=256, depth=6, heads=8, mlp_ratio=4.0, decoder_width=256, num_frequencies=64)``.

Variables: the hypernetwork's params are ``{"patches", "position_embed", "encoder", ["latent_tokens"],
"decoder"}``; ``encode`` emits per image ``{"params": {"decoder": <the shared decoder params>, "latents":
(num_lp, dim)}}`` (leading batch axis added), the variables of :class:`LAINRField` (``inr()``): both latents
and decoder are ``params`` of the INR, so an encoded image can be fine-tuned like a fitted INR. The token
positions are fixed by the options (not variables).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from model_components.mamba import SCANS, MambaEncoder
from model_components.precision import DTYPES
from model_components.transformer import PatchTokens, TransformerEncoder, attention, patch_positions

__all__ = ["LAINR", "LAINRDecoder", "LAINRField", "LAINROptions", "fourier_features", "fourier_frequencies",
           "spatial_attention_weights", "spatial_bias"]

ENCODERS = ("transformer", "mamba")
LATENT_TOKENS = ("patches", "learned")


def fourier_frequencies(sigma: float, n: int, min_frequency: float = 1.0) -> np.ndarray:
    """``n`` frequencies log-spaced in ``[min_frequency, sigma]`` (float32 ``(n,)``; one value when ``n == 1``:
    ``sigma``)."""
    if n == 1:
        return np.asarray([sigma], np.float32)
    return np.exp(np.linspace(math.log(min_frequency), math.log(sigma), n)).astype(np.float32)


def fourier_features(coords: jax.Array, frequencies: np.ndarray) -> jax.Array:
    """``[cos(π ω_k v_i), sin(π ω_k v_i)]`` for every coordinate dimension i and frequency k.

    Args:
      coords: ``(..., d)`` in [-1, 1].
      frequencies: ``(n,)``.

    Returns:
      ``(..., 2 d n)``: all cosines (dimension-major), then all sines.
    """
    arg = jnp.pi * coords[..., :, None] * jnp.asarray(frequencies, coords.dtype)
    arg = arg.reshape(*coords.shape[:-1], -1)
    return jnp.concatenate([jnp.cos(arg), jnp.sin(arg)], axis=-1)


def spatial_bias(query_positions: jax.Array, token_positions: jax.Array, alpha: jax.Array) -> jax.Array:
    """The additive attention logits ``-α_h |p_q - s_k|²``.

    Args:
      query_positions: ``(..., Q, 2)`` query coordinates p.
      token_positions: ``(K, 2)`` token positions s.
      alpha: ``(heads,)`` bias strength per head (1 / coordinate units²).

    Returns:
      ``(..., heads, Q, K)``.
    """
    # |p|² - 2 p·s + |s|²: a matrix product instead of a (..., Q, K, 2) difference tensor.
    sq = (jnp.sum(query_positions ** 2, -1)[..., :, None] - 2.0 * query_positions @ token_positions.T
          + jnp.sum(token_positions ** 2, -1))
    return -alpha[:, None, None] * sq[..., None, :, :]


def spatial_attention_weights(query: jax.Array, key: jax.Array, query_positions: jax.Array,
                              token_positions: jax.Array, alpha: jax.Array) -> jax.Array:
    """Attention weights of the decoder's cross-attention, ``softmax_k(q·k / sqrt(d) - α |p - s_k|²)``.

    Args:
      query: ``(..., Q, heads, d)``; key: ``(..., K, heads, d)``.
      query_positions, token_positions, alpha: as :func:`spatial_bias`.

    Returns:
      ``(..., heads, Q, K)``, summing to 1 over K (what :func:`model_components.transformer.attention` applies).
    """
    logits = jnp.einsum("...qhd,...khd->...hqk", query, key) / jnp.sqrt(query.shape[-1]).astype(query.dtype)
    return jax.nn.softmax(logits + spatial_bias(query_positions, token_positions, alpha), axis=-1)


class LAINRDecoder(nn.Module):
    """The locality-aware INR decoder (module docstring, steps 1-3), batched over images.

    Attributes:
      channels: C, output channels.
      token_grid: ``(rows, cols)`` of the latent tokens; token r sits at the centre of cell r (row-major) of a
        ``rows x cols`` grid over [-1, 1]^2 (``(x, y)`` order, as ``inr_utils.grids``).
      width: hidden features of every layer.
      heads: attention heads (``width`` must be a multiple).
      query_sigma: bandwidth σ_q of the query's Fourier features.
      sigmas: bandwidths σ_ℓ of the bands, in chain order.
      num_frequencies: frequencies per coordinate dimension of every Fourier feature map.
      min_frequency: lowest frequency ω_min.
      alpha_init: initial (or fixed) spatial-bias strength α (1 / coordinate units²; 0: no bias).
      learn_alpha: α is a param ``alpha`` (one per head) rather than the constant ``alpha_init``.
      dtype: compute dtype of the dense layers (attention weights and outputs are float32).

    Shapes: ``latents (B, K, D), coords (B, N, 2) -> (B, N, C)``.
    """

    channels: int = 3
    token_grid: tuple[int, int] = (16, 16)
    width: int = 64
    heads: int = 2
    query_sigma: float = 16.0
    sigmas: tuple[float, ...] = (128.0, 32.0)
    num_frequencies: int = 16
    min_frequency: float = 1.0
    alpha_init: float = 32.0
    learn_alpha: bool = True
    dtype: Any = None

    def _dense(self, features: int, name: str) -> nn.Dense:
        return nn.Dense(features, dtype=self.dtype, name=name)

    def token_positions(self) -> np.ndarray:
        """``(K, 2)`` positions s of the latent tokens."""
        return patch_positions(tuple(self.token_grid), 1)

    def alpha(self) -> jax.Array:
        """``(heads,)`` spatial-bias strengths."""
        if self.learn_alpha:
            return self.param("alpha", nn.initializers.constant(self.alpha_init), (self.heads,))
        return jnp.full((self.heads,), self.alpha_init, jnp.float32)

    def _queries_keys_values(self, latents: jax.Array, coords: jax.Array):
        head_dim = self.width // self.heads
        freqs = fourier_frequencies(self.query_sigma, self.num_frequencies, self.min_frequency)
        x = nn.relu(self._dense(self.width, "query_in")(fourier_features(coords, freqs)))
        dense = dict(features=(self.heads, head_dim), dtype=self.dtype)
        q = nn.DenseGeneral(**dense, name="query")(x)
        k = nn.DenseGeneral(**dense, name="key")(latents)
        v = nn.DenseGeneral(**dense, name="value")(latents)
        return q, k, v

    @nn.compact
    def __call__(self, latents: jax.Array, coords: jax.Array) -> jax.Array:
        positions = jnp.asarray(self.token_positions())
        q, k, v = self._queries_keys_values(latents, coords)
        bias = spatial_bias(coords.astype(jnp.float32), positions, self.alpha())
        m = nn.DenseGeneral(self.width, axis=(-2, -1), dtype=self.dtype, name="attention_out")(
            attention(q, k, v, bias.astype(q.dtype)))
        out, chain = 0.0, None
        for band, sigma in enumerate(self.sigmas):
            freqs = fourier_frequencies(sigma, self.num_frequencies, self.min_frequency)
            h = nn.relu(self._dense(self.width, f"band_{band}")(fourier_features(coords, freqs)))
            m_band = nn.relu(h + self._dense(self.width, f"modulation_{band}")(m))
            chain = m_band if chain is None else nn.relu(self._dense(self.width, f"residual_{band}")(m_band + chain))
            out = out + self._dense(self.channels, f"head_{band}")(chain)
        return out.astype(jnp.float32)

    @nn.compact
    def attention_weights(self, latents: jax.Array, coords: jax.Array) -> jax.Array:
        """The cross-attention weights ``(B, heads, N, K)`` of :meth:`__call__` (same params; for inspection)."""
        q, k, _ = self._queries_keys_values(latents, coords)
        return spatial_attention_weights(q.astype(jnp.float32), k.astype(jnp.float32), coords.astype(jnp.float32),
                                         jnp.asarray(self.token_positions()), self.alpha())


class LAINRField(nn.Module):
    """One image's LA-INR: latent tokens (``params["latents"]``) and the decoder (``params["decoder"]``); keeps
    the INR contract of :mod:`model_components.inrs` (what :meth:`LAINR.inr` returns).

    Attributes:
      decoder: the :class:`LAINRDecoder` (its attributes; bound here as the child ``decoder``).
      num_latents: K, latent tokens (``prod(decoder.token_grid)``).
      latent_dim: D, features per latent token.

    Shapes: ``coords (..., 2) -> (..., C)`` float32, any leading axes.
    """

    decoder: LAINRDecoder
    num_latents: int = 256
    latent_dim: int = 128

    @nn.compact
    def __call__(self, coords: jax.Array) -> jax.Array:
        latents = self.param("latents", nn.initializers.normal(1.0), (self.num_latents, self.latent_dim))
        lead = coords.shape[:-1]
        values = self.decoder(latents[None], coords.reshape(1, -1, coords.shape[-1]))
        return values.reshape(*lead, values.shape[-1])


class LAINR(nn.Module):
    """LA-INR hypernetwork (module docstring): keeps the contract of :mod:`model_components.hypernetworks`.

    Attributes:
      options: the :class:`LAINROptions`.
      image_size: ``(H, W)`` of the input images.
      channels: C of images and outputs.
      dtype: compute dtype name of the dense layers of the decoder and the Mamba encoder.

    ``apply(variables, images (B, H, W, C), coords (P, 2) or (B, P, 2)) -> (B, P, C)``;
    ``apply(variables, images, method="encode") -> {"params": {"decoder": ..., "latents": (B, K, D)}}``.
    """

    options: LAINROptions
    image_size: tuple[int, int] = (32, 32)
    channels: int = 3
    dtype: str = "float32"

    @nn.nowrap
    def _decoder(self, name: str | None = "decoder", **parent: Any) -> LAINRDecoder:
        o = self.options
        return LAINRDecoder(channels=self.channels, token_grid=self.options.token_grid(self.image_size),
                            width=o.decoder_width, heads=o.decoder_heads, query_sigma=o.query_sigma,
                            sigmas=tuple(o.sigmas), num_frequencies=o.num_frequencies,
                            min_frequency=o.min_frequency, alpha_init=o.alpha_init, learn_alpha=o.learn_alpha,
                            dtype=DTYPES.get(self.dtype), name=name, **parent)

    def setup(self) -> None:
        o = self.options
        self.patches = PatchTokens(o.patch_size, o.dim)
        self.position_embed = nn.Dense(o.dim)
        if o.encoder == "transformer":
            self.encoder = TransformerEncoder(o.depth, o.heads, o.mlp_ratio)
        else:
            self.encoder = MambaEncoder(o.depth, o.mamba_expand, o.state_dim, 0, o.conv_width, o.mamba_scan,
                                        DTYPES.get(self.dtype))
        if o.latent_tokens == "learned":
            self.latent_tokens = self.param("latent_tokens", nn.initializers.normal(0.02), (o.num_lp, o.dim))
        self.decoder = self._decoder()

    def _pe(self, positions: np.ndarray) -> jax.Array:
        o = self.options
        freqs = fourier_frequencies(o.pe_sigma, o.pe_frequencies, o.min_frequency)
        return self.position_embed(fourier_features(jnp.asarray(positions), freqs))

    def latents(self, images: jax.Array) -> jax.Array:
        """The latent tokens ``(B, num_lp, dim)`` of images ``(B, H, W, C)`` in [0, 1]."""
        o = self.options
        tokens = self.patches(2.0 * images - 1.0) + self._pe(patch_positions(self.image_size, o.patch_size))
        if o.latent_tokens == "patches":
            return self.encoder(tokens)
        lp = self.latent_tokens + self._pe(patch_positions(o.token_grid(self.image_size), 1))
        lp = jnp.broadcast_to(lp, (tokens.shape[0], *lp.shape))
        return self.encoder(jnp.concatenate([tokens, lp], axis=1))[:, tokens.shape[1]:]

    def __call__(self, images: jax.Array, coords: jax.Array) -> jax.Array:
        latents = self.latents(images)
        coords = jnp.broadcast_to(coords, (latents.shape[0], *coords.shape[-2:]))
        return self.decoder(latents, coords)

    def encode(self, images: jax.Array) -> dict[str, Any]:
        """Per-image variables of :meth:`inr`: ``{"params": {"decoder": <decoder params, leaves (B, ...)>,
        "latents": (B, num_lp, dim)}}``."""
        latents = self.latents(images)
        if self.is_initializing():  # make the decoder's params when init is called with method="encode"
            self.decoder(latents, jnp.zeros((latents.shape[0], 1, 2), jnp.float32))
        batch = latents.shape[0]
        decoder = jax.tree.map(lambda p: jnp.broadcast_to(p, (batch, *p.shape)), self.decoder.variables["params"])
        return {"params": {"decoder": decoder, "latents": latents}}

    @nn.nowrap
    def inr(self) -> LAINRField:
        """The INR of one encoded image (:class:`LAINRField`)."""
        decoder = self._decoder(name=None, parent=None)
        return LAINRField(decoder=decoder, num_latents=self.options.num_lp, latent_dim=self.options.dim,
                          parent=None)


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"LA-INR option {name} must be positive, got {value}")


@dataclasses.dataclass(frozen=True)
class LAINROptions:
    """Options of the ``"lainr"`` hypernetwork (module docstring; defaults sized for CPU training on CIFAR-10).

    Attributes:
      encoder: ``"transformer"`` or ``"mamba"`` (bidirectional selective SSM).
      patch_size: pixels per patch side (must divide H and W): 2 -> 256 tokens on 32x32.
      dim: features of encoder tokens and latent tokens.
      depth: encoder blocks.
      heads: transformer attention heads (``dim`` a multiple).
      mlp_ratio: transformer MLP hidden features per token feature.
      mamba_expand, state_dim, conv_width: Mamba inner channels per feature, SSM states per channel, causal
        depthwise conv width (0: none).
      mamba_scan: ``"associative"`` (``lax.associative_scan``, the default) or ``"sequential"`` (``lax.scan``: the
        same numbers, faster on CPUs).
      latent_tokens: ``"patches"`` (the encoder's patch outputs are the latents, at the patch centres) or
        ``"learned"`` (the paper's learnable latent tokens appended to the sequence).
      num_lp: latent tokens (``"patches"``: must equal the number of patches; ``"learned"``: a square number).
      pe_frequencies, pe_sigma: Fourier positional encoding of the token positions (frequencies per dimension,
        bandwidth).
      decoder_width, decoder_heads: the decoder's hidden features and attention heads.
      query_sigma: bandwidth of the query's Fourier features.
      sigmas: bandwidths of the bands, in chain order.
      num_frequencies: Fourier frequencies per coordinate dimension in the decoder.
      min_frequency: lowest Fourier frequency.
      alpha_init, learn_alpha: spatial-bias strength α (initial value; learnable per head or fixed).
    """

    encoder: str = "transformer"
    patch_size: int = 2
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 2.0
    mamba_expand: int = 1
    state_dim: int = 8
    conv_width: int = 4
    mamba_scan: str = "associative"
    latent_tokens: str = "patches"
    num_lp: int = 256
    pe_frequencies: int = 8
    pe_sigma: float = 8.0
    decoder_width: int = 64
    decoder_heads: int = 2
    query_sigma: float = 16.0
    sigmas: tuple[float, ...] = (128.0, 32.0)
    num_frequencies: int = 16
    min_frequency: float = 1.0
    alpha_init: float = 32.0
    learn_alpha: bool = True

    def token_grid(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """``(rows, cols)`` grid of the latent tokens for images of ``image_size``."""
        if self.latent_tokens == "patches":
            return image_size[0] // self.patch_size, image_size[1] // self.patch_size
        side = math.isqrt(self.num_lp)
        return side, side

    def validate(self, config: Any) -> None:
        """Raises ``ValueError`` naming the bad option and the fix (``config``: the :class:`HyperConfig`)."""
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown LA-INR encoder {self.encoder!r}; choose one of: {', '.join(ENCODERS)}")
        if self.mamba_scan not in SCANS:
            raise ValueError(f"unknown mamba_scan {self.mamba_scan!r}; choose one of: {', '.join(SCANS)}")
        if self.latent_tokens not in LATENT_TOKENS:
            raise ValueError(f"unknown latent_tokens {self.latent_tokens!r}; choose one of: {', '.join(LATENT_TOKENS)}")
        for name in ("patch_size", "dim", "depth", "heads", "mamba_expand", "state_dim", "num_lp", "pe_frequencies",
                     "decoder_width", "decoder_heads", "num_frequencies", "mlp_ratio", "pe_sigma", "query_sigma",
                     "min_frequency"):
            _positive(name, getattr(self, name))
        if self.conv_width < 0:
            raise ValueError(f"conv_width must be >= 0 (0: no conv), got {self.conv_width}")
        height, width = config.image_size
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"image size {height}x{width} is not divisible by patch_size {self.patch_size}; choose a "
                             "patch_size dividing both sides (e.g. 2 for 32x32)")
        if len(config.image_size) != 2 or config.channels <= 0:
            raise ValueError("LA-INR takes 2-D images")
        if self.encoder == "transformer" and self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not a multiple of heads {self.heads}; change one of them")
        if self.decoder_width % self.decoder_heads:
            raise ValueError(f"decoder_width {self.decoder_width} is not a multiple of decoder_heads "
                             f"{self.decoder_heads}; change one of them")
        patches = (height // self.patch_size) * (width // self.patch_size)
        if self.latent_tokens == "patches" and self.num_lp != patches:
            raise ValueError(f"num_lp {self.num_lp} must equal the number of patches {patches} with "
                             f"latent_tokens='patches'; set num_lp={patches} or latent_tokens='learned'")
        if self.latent_tokens == "learned" and math.isqrt(self.num_lp) ** 2 != self.num_lp:
            raise ValueError(f"num_lp {self.num_lp} must be a square number with latent_tokens='learned' (latents sit "
                             "on a square grid); e.g. 64, 144 or 256")
        if not self.sigmas or any(s <= 0 for s in self.sigmas):
            raise ValueError(f"sigmas must be one or more positive bandwidths, got {self.sigmas!r}")
        if any(s < self.min_frequency for s in (*self.sigmas, self.query_sigma, self.pe_sigma)):
            raise ValueError(f"every bandwidth (sigmas, query_sigma, pe_sigma) must be >= min_frequency "
                             f"{self.min_frequency}")
        if self.alpha_init < 0:
            raise ValueError(f"alpha_init must be >= 0 (0: no spatial bias), got {self.alpha_init}")

    def build(self, config: Any) -> LAINR:
        """The :class:`LAINR` module for ``config`` (a :class:`HyperConfig` whose options are self)."""
        return LAINR(options=self, image_size=tuple(config.image_size), channels=config.channels,
                     dtype=config.dtype)
