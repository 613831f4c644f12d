"""Transformer pieces shared by the hypernetworks: image patches as tokens, pre-norm encoder blocks, attention
with an additive bias.

Vaswani et al., "Attention is all you need" (NeurIPS 2017): ``Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V``;
the pre-norm block of ViT (Dosovitskiy et al., ICLR 2021): ``x + MHA(LN(x))`` then ``x + MLP(LN(x))``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["PatchTokens", "TransformerBlock", "TransformerEncoder", "attention", "patch_positions"]


def patch_positions(image_size: tuple[int, int], patch_size: int) -> np.ndarray:
    """Centres of the ``patch_size`` x ``patch_size`` patches of an image in the grid convention of
    ``inr_utils.grids`` (coords in [-1, 1], ``(x, y)`` order), row-major patch order.

    Returns:
      float32 ``(num_patches, 2)`` with ``num_patches = (H / p) * (W / p)``.
    """
    height, width = image_size
    rows, cols = height // patch_size, width // patch_size
    y = -1.0 + (2.0 * np.arange(rows) + 1.0) / rows
    x = -1.0 + (2.0 * np.arange(cols) + 1.0) / cols
    yy, xx = np.meshgrid(y, x, indexing="ij")
    return np.stack([xx, yy], axis=-1).reshape(-1, 2).astype(np.float32)


class PatchTokens(nn.Module):
    """Splits images into non-overlapping ``patch_size`` patches and embeds each linearly (a strided conv).

    Attributes:
      patch_size: p, pixels per patch side (H and W must be multiples of p).
      dim: token features.

    Shapes: ``(B, H, W, C) -> (B, (H / p) * (W / p), dim)``, row-major patch order (as :func:`patch_positions`).
    """

    patch_size: int
    dim: int

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        batch, height, width, _ = images.shape
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"image size {height}x{width} is not a multiple of the patch size {self.patch_size}")
        p = self.patch_size
        tokens = nn.Conv(self.dim, (p, p), strides=(p, p), padding="VALID", name="embed")(images)
        return tokens.reshape(batch, -1, self.dim)


def attention(query: jax.Array, key: jax.Array, value: jax.Array, bias: jax.Array | None = None) -> jax.Array:
    """Scaled dot-product attention, ``softmax(q k^T / sqrt(d) + bias) v`` over the key axis.

    Args:
      query: ``(..., Q, heads, d)``.
      key: ``(..., K, heads, d)``.
      value: ``(..., K, heads, d_v)``.
      bias: additive logits broadcastable to ``(..., heads, Q, K)`` (e.g. a spatial bias), or ``None``.

    Returns:
      ``(..., Q, heads, d_v)``.
    """
    logits = jnp.einsum("...qhd,...khd->...hqk", query, key) / jnp.sqrt(query.shape[-1]).astype(query.dtype)
    if bias is not None:
        logits = logits + bias
    weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(value.dtype)
    return jnp.einsum("...hqk,...khd->...qhd", weights, value)


class TransformerBlock(nn.Module):
    """Pre-norm encoder block: ``x + MHA(LN(x))``, then ``x + MLP(LN(x))`` with a GELU MLP.

    Attributes:
      heads: attention heads (``dim`` must be a multiple).
      mlp_ratio: hidden features of the MLP per token feature.

    Shapes: ``(..., N, dim) -> (..., N, dim)``.
    """

    heads: int = 4
    mlp_ratio: float = 4.0

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        dim = tokens.shape[-1]
        if dim % self.heads:
            raise ValueError(f"token features {dim} are not a multiple of the {self.heads} heads")
        head_dim = dim // self.heads
        h = nn.LayerNorm(name="norm_attention")(tokens)
        q, k, v = (nn.DenseGeneral((self.heads, head_dim), name=name)(h) for name in ("query", "key", "value"))
        h = nn.DenseGeneral(dim, axis=(-2, -1), name="out")(attention(q, k, v))
        tokens = tokens + h
        h = nn.LayerNorm(name="norm_mlp")(tokens)
        h = nn.Dense(int(dim * self.mlp_ratio), name="mlp_in")(h)
        h = nn.Dense(dim, name="mlp_out")(nn.gelu(h))
        return tokens + h


class TransformerEncoder(nn.Module):
    """``depth`` :class:`TransformerBlock` s and a final LayerNorm.

    Shapes: ``(..., N, dim) -> (..., N, dim)``.
    """

    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        for i in range(self.depth):
            tokens = TransformerBlock(self.heads, self.mlp_ratio, name=f"block_{i}")(tokens)
        return nn.LayerNorm(name="norm")(tokens)
