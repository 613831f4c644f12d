"""The weight hypernetwork (``"weights"`` in :data:`model_components.hypernetworks.HYPERNETWORKS`): an image
encoder to a latent vector, and per-leaf linear heads that emit the parameters of any INR of the model registry.

Ha, Dai & Le, "HyperNetworks" (ICLR 2017); for INRs, Sitzmann et al., "Implicit Neural Representations with
Periodic Activation Functions" (NeurIPS 2020, Sec. 4.4: a hypernetwork over SIREN weights). With ``z = E(x)``
the latent of image ``x``, two modes:

* ``mode="full"``: every leaf ``theta_l`` of the INR's params is emitted,

      theta_l(x) = c_l + (rho_l / sqrt(n_z)) K_l z,   K_l ~ N(0, s^2) at init,

  with ``c_l`` initialised to a fresh init of the INR, ``rho_l`` the RMS of that leaf in the INR's init (a fixed
  multiplier, computed from a fixed-key init) and ``s = head_init_scale``: training starts from a working INR,
  each image's deviating by about ``s`` of the leaf's scale. The fixed multiplier is the "equalised learning
  rate" of Karras et al. (ICLR 2018) per leaf: Adam moves every emitted leaf in proportion to its own scale
  (SIREN's hidden weights are ~100x smaller than its first layer's), which an unscaled head does not.
* ``mode="lowrank"``: shared base weights ``W`` (trainable, initialised as the INR's own init) with per-image
  multiplicative low-rank modulations of every 2-D leaf (kernels),

      W(x) = W ⊙ (1 + U(x) V(x)^T),   U(x) = K_U z + c_U  (n x r),   V(x) = K_V z  (m x r),

  where ``V``'s head is zero-initialised (so training starts from the base INR; ``U``'s is random, as LoRA's
  ``A``, so that the gradient of ``V`` is not zero). 1-D leaves (biases) are additively modulated,
  ``b(x) = b + K_b z`` with a zero-initialised head, when ``modulate_biases`` (else shared); other leaves
  (scalars) are shared.

The INR's constants (a Fourier matrix, fixed omega0s) are drawn once at the hypernetwork's init, from the INR's
own init, and kept in the hypernetwork's ``"constants"`` collection as ``{"constants": {"inr": <the INR's
non-params collections>}}``: never trained, saved with the hypernetwork, shared by every image.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from model_components.inrs import ModelConfig, build_model, model_config
from model_components.precision import DTYPES

if TYPE_CHECKING:
    from model_components.hypernetworks import HyperConfig

__all__ = ["WeightHypernetOptions", "WeightHypernetwork", "ImageEncoder", "apply_inr_batch", "check_images"]

MODES = ("full", "lowrank")
ENCODERS = ("conv", "mlp")


def apply_inr_batch(inr: nn.Module, params: Any, constants: Mapping[str, Any], coords: jax.Array) -> jax.Array:
    """Evaluates one INR per image: ``vmap`` of ``inr.apply`` over the leading batch axis of ``params``.

    Args:
      inr: the INR module.
      params: its params with a leading batch axis B on every leaf.
      constants: its other collections, shared by the batch (no batch axis).
      coords: ``(P, d)`` shared by the batch, or ``(B, P, d)``.

    Returns:
      ``(B, P, C)`` float32.
    """
    if coords.ndim not in (2, 3):
        raise ValueError(f"coords must be (P, d) or (B, P, d), got shape {tuple(coords.shape)}")

    def one(p: Any, c: jax.Array) -> jax.Array:
        return inr.apply({"params": p, **constants}, c)

    return jax.vmap(one, in_axes=(0, 0 if coords.ndim == 3 else None))(params, coords)


def check_images(images: jax.Array) -> None:
    """Raises ``ValueError`` unless ``images`` is ``(B, H, W, C)``."""
    if images.ndim != 4:
        raise ValueError(f"images must be (B, H, W, C), got shape {tuple(images.shape)}")


class ImageEncoder(nn.Module):
    """Image -> latent vector: a small conv net or an MLP on the flattened image, then a dense map and LayerNorm.

    Attributes:
      kind: ``"conv"`` (one strided 3x3 conv with GELU per width, stride 2, SAME padding: H, W halve at
        each) or ``"mlp"`` (a dense layer with GELU per width on the flattened image).
      widths: channels of the convs, or hidden widths of the MLP.
      latent_dim: features of the latent.
      dtype: compute dtype of the products (parameters float32).

    Shapes: ``(B, H, W, C)`` in [0, 1] -> ``(B, latent_dim)`` float32 (zero mean, unit variance per image).
    """

    kind: str = "conv"
    widths: tuple[int, ...] = (32, 64, 128)
    latent_dim: int = 256
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        h = (2.0 * images - 1.0).astype(self.dtype)  # [0, 1] -> [-1, 1]
        if self.kind == "conv":
            for i, width in enumerate(self.widths):
                h = nn.gelu(nn.Conv(width, (3, 3), strides=(2, 2), padding="SAME", dtype=self.dtype,
                                    name=f"conv_{i}")(h))
            h = h.reshape(h.shape[0], -1)
        elif self.kind == "mlp":
            h = h.reshape(h.shape[0], -1)
            for i, width in enumerate(self.widths):
                h = nn.gelu(nn.Dense(width, dtype=self.dtype, name=f"dense_{i}")(h))
        else:
            raise ValueError(f"unknown encoder {self.kind!r}; choose one of: {', '.join(ENCODERS)}")
        h = nn.Dense(self.latent_dim, dtype=self.dtype, name="to_latent")(h)
        return nn.LayerNorm(name="norm")(h.astype(jnp.float32))


class _Head(nn.Module):
    """Linear head ``m (z K) + c`` with a fixed multiplier m, the product in ``dtype`` and the bias added in float32
    (so a head whose bias holds an INR's weights keeps them exactly). ``(B, n) -> (B, features)`` float32."""

    features: int
    kernel_init: Callable[..., jax.Array]
    bias_init: Callable[..., jax.Array]
    dtype: Any = jnp.float32
    multiplier: float = 1.0

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (z.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
        out = jnp.dot(z.astype(self.dtype), kernel.astype(self.dtype), preferred_element_type=jnp.float32)
        return out * self.multiplier + bias


def _leaf_name(path: tuple[Any, ...]) -> str:
    return "_".join(str(getattr(k, "key", k)) for k in path)


def _normal(std: float) -> Callable[..., jax.Array]:
    return lambda key, shape, dtype=jnp.float32: std * jax.random.normal(key, shape, dtype)


class WeightHypernetwork(nn.Module):
    """Image -> the params of an INR of the registry (the hypernetwork contract of
    :mod:`model_components.hypernetworks`); see the module docstring for the two modes and their formulas.

    Attributes:
      inr_config: the INR (``build_model(inr_config)``; float32, ``in_dim`` 2, ``out_dim`` = image channels).
      mode: ``"full"`` or ``"lowrank"``.
      encoder: ``"conv"`` or ``"mlp"`` (:class:`ImageEncoder`).
      encoder_widths: its conv channels / hidden widths.
      latent_dim: features of the latent z.
      rank: r of the low-rank modulations.
      modulate_biases: low-rank mode: modulate 1-D leaves additively (else they are shared).
      head_init_scale: full mode: s, the std of the emitted deviation from the INR init at the start, relative
        to the leaf's init RMS (the heads' kernels are ``N(0, s^2)``, times the fixed ``rms / sqrt(latent_dim)``).
      dtype: compute dtype name of the encoder and heads' products.

    Variables: ``{"params": {"encoder", "emit_<leaf>" (full) / "base", "u_<leaf>", "v_<leaf>", "b_<leaf>"
    (lowrank)}, "constants": {"inr": <the INR's non-params collections>}}`` (no ``"constants"`` when the INR has
    none).

    Shapes: ``__call__(images (B, H, W, C), coords (P, 2) or (B, P, 2)) -> (B, P, C)``;
    ``encode(images) -> {"params": leaves (B, *template shape), **constants with leading B}``;
    ``latents(images) -> (B, latent_dim)``.
    """

    inr_config: ModelConfig
    mode: str = "full"
    encoder: str = "conv"
    encoder_widths: tuple[int, ...] = (32, 64, 128)
    latent_dim: int = 256
    rank: int = 4
    modulate_biases: bool = True
    head_init_scale: float = 0.1
    dtype: str = "float32"

    @nn.nowrap  # not a Flax-wrapped method, so an unbound hypernetwork builds a free-standing INR
    def inr(self) -> nn.Module:
        """The INR module whose variables :meth:`encode` emits (``build_model(inr_config)``)."""
        return build_model(self.inr_config)

    def _fresh_inr(self, inr: nn.Module, template: Any) -> dict[str, Any]:
        """A fresh init of the INR's variables at the hypernetwork's init; zeros of the template's shapes
        afterwards (Flax only traces the param initialisers then, to check shapes)."""
        if not self.is_initializing():
            return jax.tree.map(lambda leaf: jnp.zeros(leaf.shape, leaf.dtype), template)
        coords = jnp.zeros((1, self.inr_config.in_dim), jnp.float32)
        return dict(inr.init(self.make_rng("params"), coords))

    def _leaf_scales(self, inr: nn.Module) -> list[float]:
        """RMS of each params leaf of the INR's init with a fixed key (Python floats, computed eagerly even
        under ``jit``): the per-leaf scale of the full-mode heads."""
        with jax.ensure_compile_time_eval():
            coords = jnp.zeros((1, self.inr_config.in_dim), jnp.float32)
            params = inr.init(jax.random.key(0), coords).get("params", {})
            return [float(jnp.sqrt(jnp.mean(jnp.square(leaf)))) if leaf.size else 0.0
                    for leaf in jax.tree_util.tree_leaves(params)]

    @nn.compact
    def _emit(self, images: jax.Array, coords: jax.Array | None = None, latent_only: bool = False) -> Any:
        """``(per-image params with leading B, shared constants without)``; the latents (``latent_only``); or the
        INRs' values at ``coords`` (given). One compact method, so that every path builds the same variables."""
        check_images(images)
        dtype = DTYPES[self.dtype]
        z = ImageEncoder(self.encoder, tuple(self.encoder_widths), self.latent_dim, dtype, name="encoder")(images)
        if latent_only:
            return z
        inr = self.inr()
        template = jax.eval_shape(inr.init, jax.random.key(0),
                                  jax.ShapeDtypeStruct((1, self.inr_config.in_dim), jnp.float32))
        template = dict(template)
        fresh = self._fresh_inr(inr, template)
        params_template = template.pop("params", {})
        constants = {}
        if template:
            constants = self.variable("constants", "inr",
                                      lambda: {k: v for k, v in fresh.items() if k != "params"}).value
        paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(params_template)
        fresh_leaves = jax.tree_util.tree_leaves(fresh.get("params", {}))
        batch = images.shape[0]
        if self.mode == "full":
            scales = self._leaf_scales(inr)
            out = [self._full_head(z, _leaf_name(path), leaf.shape, init, rms) for (path, leaf), init, rms in
                   zip(paths_leaves, fresh_leaves, scales, strict=True)]
        elif self.mode == "lowrank":
            base = self.param("base", lambda key: fresh.get("params", {}))
            base_leaves = jax.tree_util.tree_leaves(base)
            out = [self._lowrank_leaf(z, _leaf_name(path), w) for (path, _), w in
                   zip(paths_leaves, base_leaves, strict=True)]
        else:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of: {', '.join(MODES)}")
        out = [jnp.broadcast_to(leaf, (batch, *leaf.shape[1:])) for leaf in out]
        params = jax.tree_util.tree_unflatten(treedef, out)
        if coords is not None:
            return apply_inr_batch(inr, params, constants, coords)
        return params, constants

    def _full_head(self, z: jax.Array, name: str, shape: tuple[int, ...], init: jax.Array, rms: float) -> jax.Array:
        def kernel_init(key: jax.Array, kernel_shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
            return (self.head_init_scale * jax.random.normal(key, kernel_shape)).astype(dtype)

        def bias_init(key: jax.Array, bias_shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
            return jnp.reshape(init, bias_shape).astype(dtype)

        multiplier = (rms if rms > 0 else 0.01) / math.sqrt(self.latent_dim)
        head = _Head(math.prod(shape), kernel_init, bias_init, DTYPES[self.dtype], multiplier, name=f"emit_{name}")
        return head(z).reshape(z.shape[0], *shape)

    def _lowrank_leaf(self, z: jax.Array, name: str, w: jax.Array) -> jax.Array:
        dtype = DTYPES[self.dtype]
        zeros = nn.initializers.zeros
        if w.ndim == 2:
            (n, m), r = w.shape, self.rank
            u = _Head(n * r, _normal(1.0 / math.sqrt(self.latent_dim)), zeros, dtype, name=f"u_{name}")(z)
            v = _Head(m * r, zeros, zeros, dtype, name=f"v_{name}")(z)
            uv = jnp.einsum("bnr,bmr->bnm", u.reshape(-1, n, r), v.reshape(-1, m, r))
            return w * (1.0 + uv)
        if w.ndim == 1 and self.modulate_biases:
            return w + _Head(w.shape[0], zeros, zeros, dtype, name=f"b_{name}")(z)
        return w[None]

    def encode(self, images: jax.Array) -> dict[str, Any]:
        """Per-image INR variables: ``{"params": leaves (B, *shape), <constants>: leaves (B, *shape)}``.

        Args:
          images: ``(B, H, W, C)`` in [0, 1].
        """
        params, constants = self._emit(images)
        batch = images.shape[0]
        constants = jax.tree.map(lambda c: jnp.broadcast_to(c, (batch, *jnp.shape(c))), constants)
        return {"params": params, **constants}

    def latents(self, images: jax.Array) -> jax.Array:
        """The encoder's latent z of each image, ``(B, H, W, C) -> (B, latent_dim)``."""
        return self._emit(images, latent_only=True)

    def __call__(self, images: jax.Array, coords: jax.Array) -> jax.Array:
        """``images (B, H, W, C)``, ``coords (P, 2)`` or ``(B, P, 2)`` in [-1, 1] -> ``(B, P, C)`` float32."""
        return self._emit(images, coords)


@dataclasses.dataclass(frozen=True)
class WeightHypernetOptions:
    """Options of the ``"weights"`` hypernetwork (:class:`WeightHypernetwork`).

    Attributes:
      mode: ``"full"`` (emit every param of the INR) or ``"lowrank"`` (modulate shared base weights).
      encoder: ``"conv"`` (strided 3x3 convs) or ``"mlp"`` (dense layers on the flattened image).
      encoder_widths: conv channels (one stride-2 conv each) or MLP hidden widths.
      latent_dim: features of the image latent.
      rank: r of the low-rank modulations ``W ⊙ (1 + U V^T)``.
      modulate_biases: low-rank mode: additive per-image bias modulations (else biases are shared).
      head_init_scale: full mode: initial per-image deviation of the emitted params from the INR's init, as a
        fraction of each leaf's init RMS.
      inr_model: the INR, a preset in ``MODEL_PRESETS`` or an architecture in ``MODELS`` (``siren``,
        ``relu_pe``, ``ffn``, ...).
      inr_width: its hidden width (``width`` option).
      inr_depth: its depth (``depth`` option: hidden layers after the first).
      inr_options: further overrides of ``model_config`` for the INR (e.g. ``{"omega0": 20.0}``).
    """

    mode: str = "full"
    encoder: str = "conv"
    encoder_widths: tuple[int, ...] = (32, 64, 128)
    latent_dim: int = 256
    rank: int = 4
    modulate_biases: bool = True
    head_init_scale: float = 0.1
    inr_model: str = "siren"
    inr_width: int = 32
    inr_depth: int = 2
    inr_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def inr_config(self, config: HyperConfig) -> ModelConfig:
        """The INR's config: ``inr_model`` with width, depth, ``inr_options``, 2-D coords, ``config.channels``
        outputs, float32."""
        try:
            return model_config(self.inr_model, **{"width": self.inr_width, "depth": self.inr_depth,
                                                   **dict(self.inr_options)},
                                in_dim=2, out_dim=config.channels, dtype="float32")
        except ValueError as error:
            raise ValueError(f"inr_model {self.inr_model!r} with inr_width/inr_depth/inr_options: {error}; fix "
                             "inr_model or inr_options") from None

    def validate(self, config: HyperConfig) -> None:
        """Raises ``ValueError`` naming the bad option and the fix (field types are already checked)."""
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of: {', '.join(MODES)}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; choose one of: {', '.join(ENCODERS)}")
        if not self.encoder_widths or any(w <= 0 for w in self.encoder_widths):
            raise ValueError(f"encoder_widths must be a non-empty list of positive ints, got {self.encoder_widths!r}")
        for name in ("latent_dim", "rank", "inr_width"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.inr_depth < 0:
            raise ValueError(f"inr_depth must be >= 0, got {self.inr_depth}")
        if not self.head_init_scale >= 0:
            raise ValueError(f"head_init_scale must be >= 0, got {self.head_init_scale}")
        self.inr_config(config)

    def build(self, config: HyperConfig) -> WeightHypernetwork:
        """The Flax module of ``config`` (whose options are these)."""
        return WeightHypernetwork(inr_config=self.inr_config(config), mode=self.mode, encoder=self.encoder,
                                  encoder_widths=tuple(self.encoder_widths), latent_dim=self.latent_dim,
                                  rank=self.rank, modulate_biases=self.modulate_biases,
                                  head_init_scale=float(self.head_init_scale), dtype=config.dtype)
