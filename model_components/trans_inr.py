"""Trans-INR (``"transinr"`` in :data:`model_components.hypernetworks.HYPERNETWORKS`): a transformer reads image
patches and learnable weight tokens; each group of weight tokens rescales the columns of one layer of a shared
base MLP INR with positional encoding, and the columns are then normalised.

Chen & Wang, "Transformers as Meta-Learners for Implicit Neural Representations" (ECCV 2022), Sec. 3 and the
reference code (github.com/yinboc/trans-inr: ``models/trans_inr.py``, ``hyponets/hypo_mlp.py``,
``tokenizers/imgrec_tokenizer.py``). For layer l of the base MLP, ``y = x W_l + b_l`` with ``W_l`` of shape
``(n_l, m_l)`` (fan-in x fan-out), ``g_l = min(n_groups, m_l)`` weight tokens ``w_{l,1..g_l}`` and the
transformer's outputs ``t_{l,k}`` at them:

    s_{l,k} = Linear_l(LN_l(t_{l,k})) in R^{n_l},      k = 1..g_l
    W_l(x)[:, j] = (W_l[:, j] ⊙ s_{l, j mod g_l}) / || W_l[:, j] ⊙ s_{l, j mod g_l} ||_2,      j = 1..m_l
    b_l(x) = b_l   (shared)

i.e. every column (the incoming weights of one output unit; the bias row is excluded) is rescaled elementwise by
its group's vector, groups assigned to columns cyclically as in the reference (``repeat`` tiles), then L2-
normalised. Every layer is modulated, the output layer included (g = min(n_groups, C) = C tokens there).

As in the reference: patches are embedded linearly (a p x p stride-p conv, the same map as unfold + Linear)
from [0, 1] pixels, plus a learnable positional embedding ~ N(0, 1); the weight tokens are ~ N(0, 1); one
pre-norm transformer *encoder* runs over ``[patch tokens; weight tokens]`` (the reference's image-regression
model uses this single encoder too, not the encoder-decoder of the paper's Fig. 2); the base weights and biases
start at PyTorch's default init. Differences: the shared blocks of :mod:`model_components.transformer` have
biases in q/k/v and a final LayerNorm (the reference has neither; each head's own LayerNorm follows it anyway);
the base MLP is the registry's ``relu_pe``-style ``mlp`` INR (so ``inr()`` is ``build_model(...)``), whose NeRF
positional encoding uses the octave frequencies ``pi 2^k``, k < L (``pe_frequencies``), with
``[sin, cos]`` blocks and no raw input, where the reference uses ``pe_dim / 2`` log-spaced frequencies
``pi exp(linspace(0, log sigma))`` (sigma 1024) with ``[cos, sin]`` blocks: the same kind of axis-aligned
multi-scale encoding, fewer and coarser-spaced frequencies (a feature permutation does not matter: the first
layer's columns are normalised over all of its inputs); its head is linear plus 0.5 (the reference's
``out_bias``).

Reference sizes (CelebA / Imagenette 178 x 178): patch 9 (padding 1: 20 x 20 tokens), dim 768, depth 6, 12
heads of 64, feed-forward 3072, base MLP of 5 linear layers (``inr_depth`` 3 here) of width 256, PE with
``pe_dim`` 128, ``n_groups`` 64; Adam 1e-4, batch 16. The defaults here are sized for CPU training on CIFAR-10
32 x 32: patch 4 (64 tokens), dim 128, depth 6, 4 heads, base MLP width 64 with 5 linear layers, ``n_groups``
16 (4 columns per token as in the reference; 67 weight tokens), L = 8 octaves: 1.27 M parameters (1.19 M of
them in the transformer).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from model_components.inrs import ModelConfig, build_model, model_config
from model_components.transformer import PatchTokens, TransformerEncoder
from model_components.weight_hypernet import apply_inr_batch, check_images

if TYPE_CHECKING:
    from model_components.hypernetworks import HyperConfig

__all__ = ["TransINR", "TransINROptions", "modulated_columns"]


def modulated_columns(kernel: jax.Array, scales: jax.Array) -> jax.Array:
    """Trans-INR's weight modulation: columns rescaled by their group's vector, then L2-normalised.

    Args:
      kernel: base weights ``(n, m)`` (fan-in x fan-out, ``y = x W``).
      scales: ``(..., n, g)``, one vector per group; ``m`` must be a multiple of ``g``; column j uses group
        ``j mod g``.

    Returns:
      ``(..., n, m)``: every column of unit L2 norm (``F.normalize(..., dim=1)`` of the reference, eps 1e-12).
    """
    n, m = kernel.shape
    g = scales.shape[-1]
    if m % g:
        raise ValueError(f"{m} columns are not a multiple of {g} groups")
    w = kernel * jnp.tile(scales, (*(1,) * (scales.ndim - 1), m // g))
    sum_sq = jnp.sum(jnp.square(w), axis=-2, keepdims=True)
    return w * jax.lax.rsqrt(jnp.maximum(sum_sq, 1e-24))  # max: no NaN gradient for an all-zero column


class TransINR(nn.Module):
    """Images -> per-image modulated base MLP INRs (the hypernetwork contract of
    :mod:`model_components.hypernetworks`); see the module docstring for the formula.

    Attributes:
      inr_config: the base MLP INR (``build_model(inr_config)``).
      patch_size: p, pixels per patch side.
      dim: token features.
      depth: transformer blocks.
      heads: attention heads.
      mlp_ratio: feed-forward features per token feature.
      n_groups: weight tokens per layer (at most; ``min(n_groups, fan-out)``).
      dtype: compute dtype name; the shared transformer blocks compute in float32 (kept for the config).

    Variables: ``{"params": {"patches", "pos_embedding", "weight_tokens", "transformer", "base",
    "postfc_<layer>"}}``.

    Shapes: ``__call__(images (B, H, W, C), coords (P, 2) or (B, P, 2)) -> (B, P, C)``;
    ``encode(images) -> {"params": leaves (B, *template shape)}``; ``latents(images) -> (B, dim)`` (the mean of
    the transformer's outputs at the weight tokens).
    """

    inr_config: ModelConfig
    patch_size: int = 4
    dim: int = 128
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    n_groups: int = 16
    dtype: str = "float32"

    @nn.nowrap  # not a Flax-wrapped method, so an unbound hypernetwork builds a free-standing INR
    def inr(self) -> nn.Module:
        """The base INR module whose variables :meth:`encode` emits (``build_model(inr_config)``)."""
        return build_model(self.inr_config)

    @nn.compact
    def _emit(self, images: jax.Array, coords: jax.Array | None = None, latent_only: bool = False) -> Any:
        """Per-image params (leading B); the latents (``latent_only``); or the INRs' values at ``coords``. One
        compact method, so that every path builds the same variables."""
        check_images(images)
        batch = images.shape[0]
        inr = self.inr()
        dummy = jnp.zeros((1, self.inr_config.in_dim), jnp.float32)
        template = dict(jax.eval_shape(inr.init, jax.random.key(0), jax.ShapeDtypeStruct(dummy.shape, dummy.dtype)))
        if set(template) - {"params"}:
            raise ValueError("Trans-INR's base INR must have no constants")
        base = self.param("base", lambda key: inr.init(key, dummy)["params"])
        paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(base)
        modulated = [i for i, (path, leaf) in enumerate(paths_leaves)
                     if leaf.ndim == 2 and str(getattr(path[-1], "key", "")) == "kernel"]
        groups = [min(self.n_groups, paths_leaves[i][1].shape[1]) for i in modulated]

        tokens = PatchTokens(self.patch_size, self.dim, name="patches")(images)  # (B, N, dim)
        pos = self.param("pos_embedding", nn.initializers.normal(1.0), tokens.shape[1:])
        weight_tokens = self.param("weight_tokens", nn.initializers.normal(1.0), (sum(groups), self.dim))
        tokens = jnp.concatenate([tokens + pos, jnp.broadcast_to(weight_tokens, (batch, *weight_tokens.shape))],
                                 axis=1)
        out = TransformerEncoder(self.depth, self.heads, self.mlp_ratio, name="transformer")(tokens)
        out = out[:, -sum(groups):]  # (B, sum g, dim)
        if latent_only:
            return jnp.mean(out, axis=1)

        leaves = [jnp.broadcast_to(leaf, (batch, *leaf.shape)) for _, leaf in paths_leaves]
        start = 0
        for i, g in zip(modulated, groups, strict=True):
            path, kernel = paths_leaves[i]
            name = "_".join(str(getattr(k, "key", k)) for k in path[:-1]) or "kernel"
            t = out[:, start:start + g]  # (B, g, dim)
            start += g
            scales = nn.Dense(kernel.shape[0], name=f"postfc_{name}")(nn.LayerNorm(name=f"postfc_norm_{name}")(t))
            leaves[i] = modulated_columns(kernel, jnp.swapaxes(scales, -1, -2))  # (B, n, m)
        params = jax.tree_util.tree_unflatten(treedef, leaves)
        if coords is not None:
            return apply_inr_batch(inr, params, {}, coords)
        return params

    def encode(self, images: jax.Array) -> dict[str, Any]:
        """Per-image INR variables ``{"params": leaves (B, *shape)}`` for ``images (B, H, W, C)`` in [0, 1]."""
        return {"params": self._emit(images)}

    def latents(self, images: jax.Array) -> jax.Array:
        """``(B, H, W, C) -> (B, dim)``: the mean transformer output over the weight tokens."""
        return self._emit(images, latent_only=True)

    def __call__(self, images: jax.Array, coords: jax.Array) -> jax.Array:
        """``images (B, H, W, C)``, ``coords (P, 2)`` or ``(B, P, 2)`` in [-1, 1] -> ``(B, P, C)`` float32."""
        return self._emit(images, coords)


@dataclasses.dataclass(frozen=True)
class TransINROptions:
    """Options of the ``"transinr"`` hypernetwork (:class:`TransINR`); reference sizes in the module docstring.

    Attributes:
      patch_size: pixels per patch side (the image size must be a multiple).
      dim: token features (a multiple of ``heads``).
      depth: transformer blocks.
      heads: attention heads.
      mlp_ratio: feed-forward features per token feature.
      n_groups: weight tokens per base layer (``min(n_groups, fan-out)``, which must divide the fan-out).
      inr_width: hidden width of the base MLP.
      inr_depth: its hidden layers after the first (linear layers = ``inr_depth + 2``; the reference's 5 is 3).
      pe_frequencies: L, octaves of its NeRF positional encoding (frequencies ``pi 2^k``, k < L; no raw input).
    """

    patch_size: int = 4
    dim: int = 128
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    n_groups: int = 16
    inr_width: int = 64
    inr_depth: int = 3
    pe_frequencies: int = 8

    def inr_config(self, config: HyperConfig) -> ModelConfig:
        """The base INR: ReLU MLP with NeRF positional encoding (no raw input), linear head + 0.5, float32."""
        return model_config("relu_pe", encoding="nerf",
                            encoding_options={"num_frequencies": self.pe_frequencies, "include_input": False},
                            width=self.inr_width, depth=self.inr_depth, output_activation="identity",
                            output_offset=0.5, in_dim=2, out_dim=config.channels, dtype="float32")

    def validate(self, config: HyperConfig) -> None:
        """Raises ``ValueError`` naming the bad option and the fix (field types are already checked)."""
        for name in ("patch_size", "dim", "depth", "heads", "n_groups", "inr_width", "pe_frequencies"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.inr_depth < 0:
            raise ValueError(f"inr_depth must be >= 0, got {self.inr_depth}")
        if not self.mlp_ratio > 0:
            raise ValueError(f"mlp_ratio must be positive, got {self.mlp_ratio}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be a multiple of heads {self.heads}; change dim or heads")
        height, width = config.image_size
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"image_size {height}x{width} is not a multiple of patch_size {self.patch_size}; "
                             "choose a patch_size dividing both")
        for fan_out in (self.inr_width, config.channels):
            if fan_out % min(self.n_groups, fan_out):
                raise ValueError(f"n_groups {self.n_groups} must divide the base layers' widths (inr_width "
                                 f"{self.inr_width}, channels {config.channels}) or exceed them; change n_groups")

    def build(self, config: HyperConfig) -> TransINR:
        """The Flax module of ``config`` (whose options are these)."""
        return TransINR(inr_config=self.inr_config(config), patch_size=self.patch_size, dim=self.dim,
                        depth=self.depth, heads=self.heads, mlp_ratio=float(self.mlp_ratio), n_groups=self.n_groups,
                        dtype=config.dtype)
