"""INCODE (``"incode"`` in :data:`model_components.catalog.LAYERS`): sine layers whose amplitude, frequency,
phase and offset are conditioned on the signal by a small harmonizer network.

Paper: Kazerouni, Azad, Hosseini, Merhof & Bagci, "INCODE: Implicit Neural Conditioning with Prior Knowledge
Embeddings", WACV 2024 (reference code: github.com/xmindflow/INCODE, ``modules/incode.py``).

Every hidden layer of the *composer* network is

    y = exp(a) * sin(exp(b) * omega0 * (x W + bias) + c) + d

with one ``(a, b, c, d)`` shared by all layers (the reference's ``coef[0]``), computed by the *harmonizer*
from the signal itself: a feature extractor, global average pooling, and an MLP ``F -> 64 -> 32 -> 4`` with
SiLU, whose weights are truncated-normal with std 1e-3 and whose biases start at ``harmonizer_bias`` (0.312, the
reference's ``mlp_bias`` for images, audio, super-resolution and inpainting), so a, b, c, d all start at
~0.312: amplitude and frequency scaled by exp(0.312) = 1.37. W follows SIREN's init (first layer U(-1/n, 1/n),
hidden U(+-sqrt(6/n)/omega0)), omega0 = 30 for the first and hidden layers, the linear head SIREN's hidden init.
At a = b = c = d = 0 a layer is exactly a SIREN layer (:class:`layers.SineLayer`) of the same weights (tested).

**Our feature extractor differs from the paper's.** The paper feeds the image to a ResNet34 pretrained
on ImageNet (the reference code instead builds ``torchvision.models.resnet34()`` without loading weights,
truncates it after ``layer1`` and trains it jointly with the INR; for audio it uses fixed MFCCs, for
shapes a truncated r3d_18).
Here the extractor is a small CNN of our own, trained jointly with the INR: ``len(harmonizer_channels)``
d-dimensional 3^d convolutions of stride 2 with SiLU (default 16, 32, 64 features), on a *thumbnail* of the
signal, then the global average over its sample axes. It works unchanged for any dimension d (audio 1-D,
images 2-D, video 3-D): the thumbnail has ``side = round(thumbnail ** (1/d))`` samples along each axis (default
1024 samples: 1024 for audio, 32x32 for an image, 10x10x10 for a video) and the signal's C channels.

**Purity.** The thumbnail is a non-trainable variable, ``variables["constants"]["harmonizer"][SIGNAL_CONSTANT]``
(mid-grey 0.5 after ``init``), so ``model.apply(variables, coords)`` stays a pure function of its arguments and composes
with every JAX transformation. :func:`inr_utils.fitting.fit` and :func:`inr_utils.sweeps.fit_many` fill it with
the fitted signal, resized (:func:`inr_utils.conditioning.with_signal`); it is saved with the checkpoints.

**Not implemented: the reference's regulariser** ``0.1993 relu(-a) + 0.0196 relu(-b) + 0.0588 relu(-c) +
0.0269 relu(-d)`` added to the loss (it keeps a, b, c, d non-negative): the engine's loss sees predictions and
targets only. :func:`harmonizer_penalty` computes it for a caller with its own loss.

How a model uses a conditioned layer (``mlp`` and ``local_global`` do): a layer class with a ``conditioner``
classmethod gets one conditioner module built by the model (named ``harmonizer``, run once per call) and its
output passed as a second argument to every layer of that class, local and global (:func:`conditioned_call`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from model_components import initializers
from model_components.layer_zoo import sin_of
from model_components.layers import FanInInit, Linear, hyperparameter

#: Name of the constant that holds a model's thumbnail of its signal, ``(*side, C)``; the fitting engine fills
#: every constant of this name with the fitted signal resized to its shape.
SIGNAL_CONSTANT = "signal_thumbnail"
#: The reference's regularisation weights of a, b, c, d (``--a_coef`` ... in its notebooks).
PENALTY_WEIGHTS = (0.1993, 0.0196, 0.0588, 0.0269)


def thumbnail_side(thumbnail: int, in_dim: int) -> int:
    """Samples per axis of a thumbnail of about ``thumbnail`` samples in ``in_dim`` dimensions (at least 1)."""
    return max(1, round(thumbnail ** (1.0 / in_dim)))


def incode_sine(z: jax.Array, condition: jax.Array, omega0: jax.Array | float, fast: bool = True) -> jax.Array:
    """INCODE's activation ``exp(a) sin(exp(b) omega0 z + c) + d`` of a pre-activation ``z``, elementwise;
    ``condition`` is ``(a, b, c, d)``, shape ``(4,)``."""
    a, b, c, d = (condition[i] for i in range(4))
    return jnp.exp(a) * sin_of(fast)(jnp.exp(b) * omega0 * z + c) + d


def harmonizer_penalty(condition: jax.Array, weights: tuple[float, ...] = PENALTY_WEIGHTS) -> jax.Array:
    """The reference code's regulariser ``sum_i w_i relu(-p_i)`` of ``condition = (a, b, c, d)`` (a scalar)."""
    return jnp.sum(jnp.asarray(weights, condition.dtype) * jax.nn.relu(-condition))


class Harmonizer(nn.Module):
    """INCODE's harmonizer on the signal's thumbnail: ``() -> (a, b, c, d)``, shape ``(4,)`` float32.

    Attributes:
      in_dim: sample axes d of the signal.
      channels: its channels C.
      thumbnail: about how many samples the thumbnail has (``thumbnail_side(thumbnail, d)`` per axis).
      conv_features: features of the stride-2 3^d convolutions (our own CNN, trained jointly; see the module
        docstring for the paper's pretrained ResNet34).
      hidden: widths of the MLP's hidden layers (the reference's 64, 32).
      bias: initial bias of every MLP layer (the reference's ``mlp_bias``); the output starts at ~``bias``.
      std: std of the MLP's truncated-normal weights (1e-3 as in the reference).

    Variables: ``constants/SIGNAL_CONSTANT`` ``(side,) * d + (C,)`` (the thumbnail; mid-grey 0.5 until a fit sets it,
    so an unfitted model's gradients reach every convolution);
    params ``Conv_i`` and ``Dense_i``.
    """

    in_dim: int
    channels: int
    thumbnail: int = 1024
    conv_features: tuple[int, ...] = (16, 32, 64)
    hidden: tuple[int, ...] = (64, 32)
    bias: float = 0.312
    std: float = 1e-3

    @nn.compact
    def __call__(self) -> jax.Array:
        shape = (thumbnail_side(self.thumbnail, self.in_dim),) * self.in_dim + (self.channels,)
        signal = self.variable("constants", SIGNAL_CONSTANT, lambda: jnp.full(shape, 0.5, jnp.float32)).value
        h = signal[None]  # one "image" of a batch, as nn.Conv expects
        for features in self.conv_features:
            h = nn.silu(nn.Conv(int(features), (3,) * self.in_dim, strides=2, padding="SAME")(h))
        h = jnp.mean(h, axis=tuple(range(1, 1 + self.in_dim)))[0]  # global average pooling: (F,)
        dense = dict(kernel_init=nn.initializers.truncated_normal(self.std),
                     bias_init=nn.initializers.constant(self.bias))
        for width in self.hidden:
            h = nn.silu(nn.Dense(int(width), **dense)(h))
        return nn.Dense(4, **dense)(h)


class IncodeLayer(nn.Module):
    """INCODE composer layer: ``exp(a) sin(exp(b) omega0 (x W + bias) + c) + d`` (see the module docstring).

    Attributes:
      features: output width.
      omega0: frequency factor (30 for first and hidden layers, as in the reference); a variable
        (:func:`layers.hyperparameter`).
      learnable: train omega0 with the weights.
      is_first: whether this layer reads the coordinates (SIREN's first-layer init).
      fast: use :func:`fast_math.fast_sin`.
      dtype: compute dtype of the matrix product, see :class:`layers.Linear`.
      thumbnail, harmonizer_channels, harmonizer_hidden, harmonizer_bias, harmonizer_std: options of the
        model's :class:`Harmonizer` (the layer itself does not read them).

    Shapes: ``(..., fan_in), condition (4,) -> (..., features)``; ``condition=None`` means a = b = c = d = 0
    (a SIREN layer).
    """

    features: int
    omega0: float = 30.0
    learnable: bool = False
    is_first: bool = False
    fast: bool = True
    dtype: Any = None
    thumbnail: int = 1024
    harmonizer_channels: tuple[int, ...] = (16, 32, 64)
    harmonizer_hidden: tuple[int, ...] = (64, 32)
    harmonizer_bias: float = 0.312
    harmonizer_std: float = 1e-3

    @staticmethod
    def check_options(options: Mapping[str, Any]) -> None:
        """Raises ``ValueError`` naming an option out of range."""
        if not options.get("omega0", 30.0) > 0:
            raise ValueError(f"layer 'incode': option omega0 must be positive, got {options['omega0']}")
        if not options.get("thumbnail", 1024) >= 1:
            raise ValueError(f"layer 'incode': option thumbnail must be >= 1 sample, got {options['thumbnail']}")
        for name in ("harmonizer_channels", "harmonizer_hidden"):
            if any(int(w) < 1 for w in options.get(name, ())):
                raise ValueError(f"layer 'incode': option {name} must list positive widths, got {options[name]}")
        if not options.get("harmonizer_std", 1e-3) >= 0:
            raise ValueError(f"layer 'incode': option harmonizer_std must be >= 0, got {options['harmonizer_std']}")

    @classmethod
    def conditioner(cls, options: Mapping[str, Any], in_dim: int, out_dim: int, name: str) -> Harmonizer:
        """The model's one :class:`Harmonizer` for layers of these ``options`` on a signal with ``in_dim`` sample
        axes and ``out_dim`` channels (a submodule named ``name`` of the calling module)."""
        get = lambda key: options.get(key, getattr(cls, key))  # noqa: E731
        return Harmonizer(in_dim=in_dim, channels=out_dim, thumbnail=int(get("thumbnail")),
                          conv_features=tuple(get("harmonizer_channels")), hidden=tuple(get("harmonizer_hidden")),
                          bias=float(get("harmonizer_bias")), std=float(get("harmonizer_std")), name=name)

    def head_initializers(self) -> tuple[FanInInit, FanInInit]:
        return (lambda n: initializers.siren_hidden_init(n, self.omega0)), initializers.torch_default_init

    @nn.compact
    def __call__(self, x: jax.Array, condition: jax.Array | None = None) -> jax.Array:
        if self.is_first:
            kernel_init = initializers.siren_first_layer_init
        else:
            kernel_init = lambda n: initializers.siren_hidden_init(n, self.omega0)  # noqa: E731
        z = Linear(self.features, kernel_init=kernel_init, dtype=self.dtype)(x)
        if condition is None:
            condition = jnp.zeros((4,), z.dtype)
        return incode_sine(z, condition, hyperparameter(self, "omega0", self.omega0, self.learnable), self.fast)


def conditioned_call(layer_cls: type, options: Mapping[str, Any], in_dim: int, out_dim: int) -> tuple[Any, ...]:
    """Extra arguments of every call of a ``layer_cls`` layer inside a model's compact ``__call__``: ``()`` for an
    ordinary layer, ``(condition,)`` for a conditioned one (a class with a ``conditioner`` classmethod, e.g.
    :class:`IncodeLayer`), whose conditioner is built and run here as the submodule ``harmonizer``."""
    make = getattr(layer_cls, "conditioner", None)
    return () if make is None else (make(options, in_dim, out_dim, name="harmonizer")(),)


_INCODE = {"layer": "incode", "layer_options": {"omega0": 30.0}, "first_layer_options": {"omega0": 30.0}}

#: Model presets (listed in :data:`model_components.presets.MODEL_PRESETS`): INCODE as the reference's image
#: model (1 + 3 hidden layers of 256, omega0 30; our output offset 0.5 as SIREN's preset), and LG-INCODE, the
#: Local-Global INR of :mod:`model_components.local_global` wrapping INCODE layers (one harmonizer for the whole
#: signal; its (a, b, c, d) reach every local, global, projection and aggregation layer).
PRESETS: dict[str, dict[str, Any]] = {
    "incode": dict(encoding="none", width=256, depth=3, output_activation="identity", output_offset=0.5,
                   dtype="float32", **_INCODE),
    "lg_incode": dict(architecture="local_global", mode="lg", combine="fc_and_add", width=16, global_width=32,
                      depth=3, dtype="float32", **_INCODE),
}
