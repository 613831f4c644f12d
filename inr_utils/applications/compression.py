"""Image compression with INRs, COIN-style, against JPEG.

COIN (Dupont, Golinski, Alizadeh, Teh & Doucet 2021, "COIN: COmpression with Implicit Neural representations")
stores an image as the weights of a small SIREN fitted to it, ``f_theta(x, y) = (r, g, b)``; its file is the
weights at 16 bits. Here, per image:

1. fit a SIREN of ``width``/``depth`` with the engine (:func:`inr_utils.fitting.fit`; images of one size and
   channel count share a model axis, :func:`inr_utils.sweeps.fit_many`);
2. quantise every tensor ``w`` to b bits with its own affine grid (scale and offset, both stored as float16;
   the offset makes the grid cover ``[min w, max w]`` exactly, which for the one-signed biases and the narrow
   first layer wastes no levels, unlike a grid symmetric around 0)::

       offset = min w (rounded down),  scale = (max w - offset) / (2^b - 1) (rounded up),
       q = round((w - offset) / scale) in {0, ..., 2^b - 1},  w_hat = offset + scale * q,  |w - w_hat| <= scale / 2;

   The first layer (its kernel and bias, 3w of the weights) is kept at ``first_layer_bits`` (16 by default):
   its outputs are multiplied by omega0 = 30 before the sine, so its rounding costs 30 times the phase; on a
   256x256 photo at 6 bits, rounding it too cost 6 dB, rounding all but it 1 dB (measured, see the docs page).
3. optionally fine-tune with the quantiser in the loop (quantisation-aware training with the straight-through
   estimator, Bengio et al. 2013: the forward pass uses ``w_hat``, the gradient is taken as ``dw_hat/dw = 1``)
   so the weights settle where their rounded values fit the image;
4. entropy-code the integers ``q`` (:mod:`inr_utils.applications.compression_format`: the coder giving the fewest
   bytes among bit-packing, zlib, LZMA and ANS under a per-tensor quantised Gaussian or Laplace model).

The bits per pixel are ``8 * file bytes / (H W)``, header included; decoding renders the dequantised SIREN on
the pixel grid and rounds to 8 bits, so the PSNR reported by :func:`compress_image` is the decoded file's.
:func:`jpeg_curve` gives Pillow's JPEG on the same pixels (quality swept) for the rate-distortion comparison.
"""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from inr_utils.applications.compression_format import CompressedImage, bits_per_pixel, check_bits
from inr_utils.callbacks import ProgressBar
from inr_utils.config import FitConfig
from inr_utils.errors import InputError
from inr_utils.fitting import fit
from inr_utils.images import to_uint8
from inr_utils.losses import LOSSES
from inr_utils.optim import build_optimizer
from inr_utils.rendering import render
from inr_utils.samplers import make_sampler, signal_to_data
from inr_utils.sweeps import fit_many, unstack
from inr_utils.training import TrainState, make_train_step, merge_variables, train
from model_components.inrs import ModelConfig, build_model, model_config

__all__ = ["COIN_KODAK", "CompressionResult", "CompressionSettings", "SirenArchitecture", "compress_image",
           "decode", "dequantize", "encode_params", "fake_quantize", "finetune_quantized", "fit_sirens",
           "jpeg_curve", "jpeg_psnr_at", "psnr_uint8", "quantize", "quantized_params", "tensor_bits"]

#: COIN's published Kodak points (Dupont et al. 2021, Fig. 4): (bpp, PSNR dB); JPEG there: ~25.9 dB at 0.3 bpp.
COIN_KODAK = ((0.16, 24.64), (0.31, 26.41))
JPEG_KODAK = ((0.3, 25.9),)


@dataclasses.dataclass(frozen=True)
class SirenArchitecture:
    """The SIREN of a file (the ``siren`` preset with these fields).

    Attributes:
      width: hidden units per layer.
      depth: hidden layers after the first (``MLPOptions.depth``; ``depth + 1`` sine layers and a linear head).
      omega0: frequency factor of the hidden sine layers.
      first_omega0: frequency factor of the first layer (SIREN: 30).
    """

    width: int
    depth: int
    omega0: float = 30.0
    first_omega0: float = 30.0

    def model_config(self, channels: int) -> ModelConfig:
        """The :class:`ModelConfig` for a ``channels``-channel image."""
        return model_config("siren", width=self.width, depth=self.depth, omega0=self.omega0,
                            first_omega0=self.first_omega0, out_dim=channels)

    def tensor_shapes(self, channels: int) -> list[tuple[int, ...]]:
        """Shapes of the parameter tensors in the order the file stores them (``jax.tree.leaves`` order)."""
        model = build_model(self.model_config(channels))
        template = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 2), jnp.float32)))
        return [tuple(x.shape) for x in jax.tree.leaves(template["params"])]

    def num_params(self, channels: int) -> int:
        """Number of weights: ``3w + depth (w^2 + w) + (w + 1) C`` for width w."""
        return sum(int(np.prod(s)) for s in self.tensor_shapes(channels))

    def label(self) -> str:
        return f"{self.width}x{self.depth + 1}"


@dataclasses.dataclass(frozen=True)
class CompressionSettings:
    """How an image is fitted and quantised.

    Attributes:
      steps: Adam steps of the float fit (cosine-decayed learning rate).
      lr: peak learning rate of the fit (small SIRENs take more than the preset's 1e-4).
      batch_size: random pixels per step; ``None``: the whole image every step.
      qat_steps: steps of quantisation-aware fine-tuning per bit depth (0: quantise after training only), each
        on the whole image.
      qat_lr: peak learning rate of the fine-tuning (small: the fit ended at 5% of ``lr``, and larger steps
        undid more than the fine-tuning gained).
      qat_max_bits: fine-tune only for bit depths up to this (16-bit rounding costs nothing measurable).
      first_layer_bits: bit depth of the first layer's kernel and bias (at least the file's bit depth).
      seed: initialisation and sampling seed.
      coder: entropy coder name, or ``best`` (the fewest bytes).
    """

    steps: int = 2000
    lr: float = 1e-3
    batch_size: int | None = 16384
    qat_steps: int = 100
    qat_lr: float = 1e-5
    qat_max_bits: int = 10
    first_layer_bits: int = 16
    seed: int = 0
    coder: str = "best"

    def fit_config(self, architecture: SirenArchitecture, channels: int) -> FitConfig:
        return FitConfig(model=architecture.model_config(channels), steps=self.steps, lr=self.lr,
                         batch_size=self.batch_size, seed=self.seed, steps_per_call=min(100, self.steps),
                         checkpoint_every=0).validate()


# --------------------------------------------------------------------------------------------- quantisation


def quantize(weights: np.ndarray, bits: int) -> tuple[np.ndarray, np.float16, np.float16]:
    """Affine b-bit quantisation of one tensor on a float16 grid covering ``[min w, max w]``.

    Args:
      weights: any shape, float.
      bits: b in 1 ... 16.

    Returns:
      ``(codes, offset, scale)``: codes uint16 (same shape) in ``[0, 2^b - 1]``; ``offset <= min w`` and
      ``scale`` float16 with ``offset + scale (2^b - 1) >= max w``, so ``|w - dequantize(...)| <= scale / 2``.

    Raises:
      ValueError: weights not finite or beyond float16's range.
    """
    bits = check_bits(bits)
    w = np.asarray(weights, np.float64)
    if not np.all(np.isfinite(w)) or np.max(np.abs(w), initial=0.0) > 6e4:
        raise ValueError("weights must be finite and within float16's range to be quantised")
    levels = (1 << bits) - 1
    low, high = (float(w.min()), float(w.max())) if w.size else (0.0, 0.0)
    offset = np.float16(low)
    if float(offset) > low:
        offset = np.nextafter(offset, np.float16(-np.inf))
    scale = np.float16((high - float(offset)) / levels)
    if float(scale) * levels < high - float(offset):
        scale = np.nextafter(scale, np.float16(np.inf))
    if float(scale) == 0.0:  # a constant tensor stored exactly at the offset
        scale = np.float16(1.0)
    codes = np.clip(np.round((w - float(offset)) / float(scale)), 0, levels)
    return codes.astype(np.uint16), offset, scale


def dequantize(codes: np.ndarray, offset: float, scale: float) -> np.ndarray:
    """``offset + scale * codes`` in float32 (the decoder's arithmetic)."""
    return np.float32(offset) + np.float32(scale) * np.asarray(codes).astype(np.float32)


def tensor_bits(params: Any, bits: int, first_layer_bits: int | None = None) -> list[int]:
    """Bit depth of each tensor of a SIREN's parameter tree (``jax.tree.leaves`` order): ``bits``, and
    ``max(bits, first_layer_bits)`` for the first layer's (``layer_0``) kernel and bias."""
    first = bits if first_layer_bits is None else max(bits, check_bits(first_layer_bits))
    paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    return [first if "'layer_0'" in path else check_bits(bits) for path in paths]


def quantized_params(params: Any, bits: int | Sequence[int]) -> tuple[Any, list[np.ndarray], np.ndarray, np.ndarray]:
    """Every tensor of a parameter tree quantised (at ``bits``, or one bit depth per tensor):
    ``(dequantised tree, flat codes, offsets, scales)``."""
    leaves, treedef = jax.tree.flatten(jax.device_get(params))
    depths = [bits] * len(leaves) if isinstance(bits, (int, np.integer)) else list(bits)
    codes, offsets, scales, values = [], [], [], []
    for leaf, b in zip(leaves, depths, strict=True):
        q, offset, scale = quantize(leaf, b)
        codes.append(q.ravel())
        offsets.append(offset)
        scales.append(scale)
        values.append(dequantize(q, offset, scale).reshape(np.shape(leaf)))
    return (jax.tree.unflatten(treedef, values), codes, np.asarray(offsets, np.float16),
            np.asarray(scales, np.float16))


def fake_quantize(weights: jax.Array, bits: int) -> jax.Array:
    """The b-bit rounding of :func:`quantize` with a straight-through gradient (jittable): the value is
    ``w_hat``, the derivative with respect to ``w`` is the identity (grid bounds held fixed)."""
    levels = (1 << bits) - 1
    low = jax.lax.stop_gradient(jnp.min(weights))
    scale = jax.lax.stop_gradient(jnp.maximum((jnp.max(weights) - low) / levels, 1e-12))
    rounded = low + scale * jnp.clip(jnp.round((weights - low) / scale), 0, levels)
    return weights + jax.lax.stop_gradient(rounded - weights)


def encode_params(params: Any, architecture: SirenArchitecture, shape: Sequence[int], bits: int,
                  coder: str = "best", first_layer_bits: int | None = None) -> bytes:
    """The ``.inrc`` file of a SIREN's parameters for an image of ``shape = (H, W, C)``, every tensor at
    ``bits`` (the first layer's at ``first_layer_bits`` when higher, :func:`tensor_bits`)."""
    check_bits(bits)
    height, width, channels = (int(n) for n in shape)
    if max(height, width, architecture.width) > 65535 or channels > 255 or architecture.depth > 255:
        raise InputError(f"the .inrc format holds images up to 65535 pixels a side, 255 channels and SIRENs of "
                         f"width <= 65535 and depth <= 255, got {height}x{width}x{channels}, "
                         f"{architecture.width}x{architecture.depth}")
    depths = tensor_bits(params, bits, first_layer_bits)
    _, codes, offsets, scales = quantized_params(params, depths)
    record = CompressedImage(height, width, channels, architecture.width, architecture.depth, architecture.omega0,
                             architecture.first_omega0, bits, offsets, scales, tuple(codes), tuple(depths))
    return record.to_bytes(coder)


def decode(data: bytes | CompressedImage, name: str = "file") -> np.ndarray:
    """Decodes an ``.inrc`` file (its bytes, or parsed) to uint8 ``(H, W, C)`` pixels.

    Raises:
      InputError: a corrupt, truncated or foreign file (see :meth:`CompressedImage.from_bytes`).
    """
    record = data if isinstance(data, CompressedImage) else CompressedImage.from_bytes(data, name=name)
    architecture = SirenArchitecture(record.hidden, record.depth, record.omega0, record.first_omega0)
    model = build_model(architecture.model_config(record.channels))
    variables = model.init(jax.random.key(0), jnp.zeros((1, 2), jnp.float32))
    leaves, treedef = jax.tree.flatten(variables["params"])
    values = [v.reshape(leaf.shape) for v, leaf in zip(record.dequantized(), leaves, strict=True)]
    variables = {**variables, "params": jax.tree.unflatten(treedef, values)}
    pixels = render(model.apply, variables, record.height, record.width)
    return to_uint8(pixels).reshape(record.height, record.width, record.channels)


def psnr_uint8(decoded: np.ndarray, image: np.ndarray) -> float:
    """PSNR in dB of uint8 pixels against a float image in [0, 1] of the same size (data range 1)."""
    mse = np.mean((np.asarray(decoded, np.float64).reshape(image.shape) / 255.0 - np.asarray(image, np.float64)) ** 2)
    return float(10.0 * np.log10(1.0 / max(mse, 1e-12)))


# --------------------------------------------------------------------------------------------- fitting


def fit_sirens(images: Sequence[np.ndarray], architecture: SirenArchitecture, settings: CompressionSettings,
               progress: bool = True) -> list[Any]:
    """Fits one SIREN per image (float weights); images of one shape are fitted together on a model axis.

    Returns:
      the parameter trees, in the order of ``images``.
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(i)
    params: list[Any] = [None] * len(images)
    for shape, members in groups.items():
        config = settings.fit_config(architecture, shape[-1])
        if len(members) == 1:
            params[members[0]] = jax.device_get(fit(images[members[0]], config, progress=progress).state.params)
            continue
        result = fit_many(config, np.stack([images[i] for i in members]), progress=progress)
        for j, i in enumerate(members):
            params[i] = jax.device_get(unstack(result, j)["params"])
    return params


def _quantized_mse(model: Any, params: Any, constants: Any, image: np.ndarray, bits: Sequence[int]) -> float:
    values, *_ = quantized_params(params, bits)
    pixels = render(model.apply, merge_variables(values, constants), image.shape[0], image.shape[1])
    return float(np.mean((pixels - image) ** 2))


def finetune_quantized(image: np.ndarray, architecture: SirenArchitecture, params: Any, bits: int,
                       settings: CompressionSettings, progress: bool = True) -> tuple[Any, float, float]:
    """Quantisation-aware fine-tuning: ``settings.qat_steps`` Adam steps on the loss of the b-bit weights
    (:func:`fake_quantize`, straight-through gradient), run by the engine (:func:`inr_utils.training.train`).

    Returns:
      ``(params, mse_before, mse_after)``: the float weights whose quantised version fits best, and the full-image
      MSE of the quantised model before and after (the input is returned when fine-tuning did not help, so the
      quantised loss never rises).
    """
    depths = tensor_bits(params, bits, settings.first_layer_bits)
    image = np.asarray(image, np.float32)
    config = dataclasses.replace(settings.fit_config(architecture, image.shape[-1]), steps=settings.qat_steps,
                                 lr=settings.qat_lr, steps_per_call=min(100, settings.qat_steps))
    model = build_model(config.model)
    constants = {k: v for k, v in model.init(jax.random.key(0), jnp.zeros((1, 2), jnp.float32)).items()
                 if k != "params"}
    before = _quantized_mse(model, params, constants, image, depths)
    if settings.qat_steps <= 0:
        return params, before, before

    def quantized_apply(variables: Mapping[str, Any], coords: jax.Array) -> jax.Array:
        leaves, treedef = jax.tree.flatten(variables["params"])
        quantized = jax.tree.unflatten(treedef, [fake_quantize(w, b) for w, b in zip(leaves, depths, strict=True)])
        return model.apply({**variables, "params": quantized}, coords)

    optimizer = build_optimizer(config)
    params = jax.tree.map(jnp.asarray, params)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, constants=constants,
                       opt_state=optimizer.init(params))
    data = signal_to_data(image)
    # the whole image every step: the moves that change a weight's rounding are small, and the noise of random
    # batches undid them (astronaut 256x256, 25x4 SIREN at 6 bits: +0.4 dB full-image, -0.3 dB with batches)
    batch = None
    step = make_train_step(quantized_apply, LOSSES.get("mse"), optimizer)
    bar = ProgressBar(config.steps, disable=not progress, desc=f"fine-tuning at {bits} bits")
    try:
        result = train(state, data, jax.random.key(config.seed + 1), step, make_sampler(batch, False, "random"),
                       config.steps, config.steps_per_call, [bar])
    finally:
        bar.close()
    tuned = jax.device_get(result.state.params)
    after = _quantized_mse(model, tuned, constants, image, depths)
    return (tuned, before, after) if after <= before else (jax.device_get(params), before, before)


@dataclasses.dataclass
class CompressionResult:
    """One image at one architecture and bit depth.

    Attributes:
      data: the ``.inrc`` file's bytes.
      decoded: uint8 ``(H, W, C)``, what :func:`decode` gives for ``data``.
      bpp: ``8 len(data) / (H W)``.
      psnr: dB of ``decoded`` against the image.
      coder: the entropy coder used.
      seconds: encoding time (fit and fine-tuning; the fit's share when several bit depths reuse it).
    """

    data: bytes
    decoded: np.ndarray
    bpp: float
    psnr: float
    coder: str
    seconds: float


def quantize_and_code(image: np.ndarray, architecture: SirenArchitecture, params: Any, bits: int,
                      settings: CompressionSettings, progress: bool = True) -> CompressionResult:
    """Steps 2-4 for fitted float ``params``: fine-tune (bit depths up to ``settings.qat_max_bits``), quantise,
    code; the file is decoded to measure its PSNR."""
    start = time.perf_counter()
    if settings.qat_steps > 0 and bits <= settings.qat_max_bits:
        params, _, _ = finetune_quantized(image, architecture, params, bits, settings, progress)
    data = encode_params(params, architecture, image.shape, bits, settings.coder, settings.first_layer_bits)
    record = CompressedImage.from_bytes(data)
    decoded = decode(record)
    return CompressionResult(data, decoded, bits_per_pixel(len(data), *image.shape[:2]), psnr_uint8(decoded, image),
                             record.coder, time.perf_counter() - start)


def compress_image(image: np.ndarray, architecture: SirenArchitecture, bits: int = 8,
                   settings: CompressionSettings | None = None, progress: bool = True) -> CompressionResult:
    """Compresses a float ``(H, W, C)`` image in [0, 1] to an ``.inrc`` file (steps 1-4 of the module doc)."""
    settings = settings or CompressionSettings()
    check_bits(bits)
    start = time.perf_counter()
    params = fit_sirens([image], architecture, settings, progress)[0]
    result = quantize_and_code(image, architecture, params, bits, settings, progress)
    result.seconds = time.perf_counter() - start
    return result


# --------------------------------------------------------------------------------------------- JPEG


def jpeg_curve(image: np.ndarray, qualities: Sequence[int] = (*range(1, 20), *range(20, 96, 5))
               ) -> list[dict[str, float]]:
    """Pillow's JPEG (baseline, 4:2:0 chroma subsampling, optimised Huffman tables) of the image at each quality.

    Returns:
      rows ``{"quality", "bytes", "bpp", "psnr"}`` (bpp from the whole file, PSNR of the decoded pixels).
    """
    pixels = to_uint8(image)
    rows = []
    for quality in qualities:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=int(quality), optimize=True)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert(Image.fromarray(pixels).mode))
        rows.append({"quality": int(quality), "bytes": len(buffer.getvalue()),
                     "bpp": bits_per_pixel(len(buffer.getvalue()), *image.shape[:2]),
                     "psnr": psnr_uint8(decoded, image)})
    return rows


def jpeg_psnr_at(curve: Sequence[Mapping[str, float]], bpp: float) -> float:
    """JPEG's PSNR at ``bpp``, linearly interpolated along its curve (upper envelope); NaN outside its range
    (JPEG cannot go below its quality-1 size)."""
    points = sorted((r["bpp"], r["psnr"]) for r in curve)
    xs, ys = np.array([p[0] for p in points]), np.maximum.accumulate([p[1] for p in points])
    if not xs[0] <= bpp <= xs[-1]:
        return float("nan")
    return float(np.interp(bpp, xs, ys))


def coin_psnr_at(bpp: float) -> float:
    """COIN's Kodak PSNR at ``bpp`` (linear between its two published points; NaN outside them)."""
    (x0, y0), (x1, y1) = COIN_KODAK
    return float(np.interp(bpp, [x0, x1], [y0, y1])) if x0 <= bpp <= x1 else float("nan")


def rate_distortion(images: Mapping[str, np.ndarray], architectures: Sequence[SirenArchitecture],
                    bit_depths: Sequence[int], settings: CompressionSettings, progress: bool = True,
                    on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """The study: every architecture fitted to every image (one model axis per image size), each fit quantised
    at every bit depth; one row per (image, architecture, bits) with the file's bpp and PSNR, the float fit's
    PSNR and JPEG's and COIN's PSNR at the same bpp."""
    for bits in bit_depths:
        check_bits(bits)
    labels = list(images)
    curves = {label: jpeg_curve(images[label]) for label in labels}
    rows = []
    for architecture in architectures:
        start = time.perf_counter()
        fitted = fit_sirens([images[label] for label in labels], architecture, settings, progress)
        fit_s = (time.perf_counter() - start) / len(labels)
        for label, params in zip(labels, fitted, strict=True):
            image = images[label]
            model = build_model(architecture.model_config(image.shape[-1]))
            float_pixels = render(model.apply, {"params": params, **_constants(model)}, *image.shape[:2])
            float_psnr = psnr_uint8(to_uint8(float_pixels).reshape(image.shape), image)
            for bits in bit_depths:
                result = quantize_and_code(image, architecture, params, bits, settings, progress)
                row = {"image": label, "size": f"{image.shape[1]}x{image.shape[0]}", "arch": architecture.label(),
                       "params": architecture.num_params(image.shape[-1]), "bits": bits, "coder": result.coder,
                       "bytes": len(result.data), "bpp": result.bpp, "psnr": result.psnr, "float_psnr": float_psnr,
                       "jpeg_psnr": jpeg_psnr_at(curves[label], result.bpp),
                       "coin_kodak_psnr": coin_psnr_at(result.bpp), "encode_s": fit_s + result.seconds}
                row["gain_vs_jpeg_db"] = row["psnr"] - row["jpeg_psnr"]
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    return rows


def _constants(model: Any) -> dict[str, Any]:
    variables = model.init(jax.random.key(0), jnp.zeros((1, 2), jnp.float32))
    return {k: v for k, v in variables.items() if k != "params"}
