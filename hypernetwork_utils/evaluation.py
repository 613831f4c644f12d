"""Using a trained hypernetwork: images -> one INR per image (:func:`encode`), INRs -> images at any size
(:func:`render`), both at once (:func:`reconstruct`), and the held-out measurements of
``experiments/evaluate_hypernetwork.py``: PSNR/SSIM per image and their distribution, super-resolution beside
bicubic, PSNR under query jitter, a 2-D embedding of the latents, and vmapped vs looped INR evaluation.

Everything streams over groups of ``batch_size`` images (the last group padded, so one compiled program serves
every group) and chunks of ``chunk_points`` query points, so memory is bounded by ``batch_size * chunk_points``
INR evaluations plus the outputs, whatever the number or size of the images. The emitted INR variables of a
hypernetwork repeat its shared weights for every image (the contract of
:mod:`model_components.hypernetworks`), so only :func:`encode` holds all of them at once.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dm_pix
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from inr_utils.grids import Bounds, grid
from inr_utils.metrics import psnr_from_mse

__all__ = ["JITTER_SIGMAS", "PSNR_CAP_DB", "as_images", "bicubic", "compiled_flops", "distribution", "encode",
           "evaluate_inr", "inr_speed", "jitter_psnr", "latent_features", "pca_2d", "psnr_per_image", "reconstruct",
           "render", "ssim_per_image"]

#: Query-jitter standard deviations (in [-1, 1] coordinate units; a 32-pixel image's pixel is 0.0625 wide).
JITTER_SIGMAS = (0.0, 0.005, 0.01, 0.02)
#: PSNR of a perfect reconstruction (mse = 0 would be infinite, which no mean, histogram or JSON file takes).
PSNR_CAP_DB = 100.0


def as_images(images: Any) -> np.ndarray:
    """``images`` as float32 numpy ``(N, H, W, C)`` in [0, 1]: uint8 images are divided by 255, float ones kept."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be a stack (N, H, W, C), got shape {images.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32, copy=False)


# ------------------------------------------------------------------------------------------ compiled pieces


#: (kind, id(model)) -> (model, compiled function); the model is kept so that its id is not reused. Keyed by id:
#: modules with dict-valued attributes are not hashable.
_COMPILED: collections.OrderedDict[tuple[str, int], tuple[nn.Module, Any]] = collections.OrderedDict()


def _compiled(kind: str, model: nn.Module, build: Callable[[], Any]) -> Any:
    """The jitted function ``kind`` of ``model`` (built once per model; the 32 most recent kept)."""
    key = (kind, id(model))
    if key not in _COMPILED:
        _COMPILED[key] = (model, build())
        while len(_COMPILED) > 32:
            _COMPILED.popitem(last=False)
    _COMPILED.move_to_end(key)
    return _COMPILED[key][1]


def _encoder(model: nn.Module) -> Any:
    """jit of ``(variables, images (B, H, W, C)) -> INR variables (B, ...)``; one per model."""
    return _compiled("encode", model,
                     lambda: jax.jit(lambda variables, images: model.apply(variables, images, method="encode")))


def _applier(model: nn.Module) -> Any:
    """jit of the hypernetwork itself, ``(variables, images (B, H, W, C), coords (P, d)) -> (B, P, C)``."""
    return _compiled("apply", model, lambda: jax.jit(model.apply))


def _evaluator(model: nn.Module, per_image_coords: bool) -> Any:
    """jit of ``(INR variables (B, ...), coords (P, d) or (B, P, d)) -> (B, P, C)``: the INR vmapped over images."""
    axes = (0, 0 if per_image_coords else None)
    return _compiled(f"evaluate{axes}", model, lambda: jax.jit(jax.vmap(model.inr().apply, in_axes=axes)))


def _pad(tree: Any, size: int, axis: int = 0) -> Any:
    """Pads every (numpy) leaf's ``axis`` to ``size`` by repeating its last entry (values ignored afterwards).
    Host-side glue is numpy throughout: eager JAX ops would compile a program for every new shape."""
    def pad(leaf: np.ndarray) -> np.ndarray:
        missing = size - leaf.shape[axis]
        widths = [(0, 0)] * leaf.ndim
        widths[axis] = (0, missing)
        return leaf if missing == 0 else np.pad(leaf, widths, mode="edge")
    return jax.tree_util.tree_map(pad, tree)


def _host(tree: Any) -> Any:
    """A pytree's arrays as numpy arrays (one transfer)."""
    return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))


def _groups(count: int, batch_size: int) -> tuple[int, Iterator[tuple[int, int]]]:
    """Group size and ``(start, n)`` of each group of ``count`` items (at most ``batch_size`` each)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    size = max(1, min(batch_size, count))
    return size, ((start, min(size, count - start)) for start in range(0, count, size))


def _encoded_groups(model: nn.Module, variables: Any, images: jax.Array, batch_size: int,
                    ) -> Iterator[tuple[int, int, Any]]:
    """``(start, n, INR variables of images[start:start + n] padded to the group size)`` for every group."""
    size, groups = _groups(images.shape[0], batch_size)
    for start, n in groups:
        yield start, n, _encoder(model)(variables, _pad(images[start:start + n], size))


# ------------------------------------------------------------------------------------------ encode / render


def encode(model: nn.Module, variables: Any, images: Any, batch_size: int = 64) -> Any:
    """The INR of every image: ``model.apply(variables, images, method="encode")``, jitted, in groups.

    Args:
      model: a hypernetwork (:func:`model_components.hypernetworks.build_hypernetwork`).
      variables: its variables (``{"params": ..., ...}``).
      images: ``(N, H, W, C)`` in [0, 1] (float) or uint8, at the hypernetwork's image size.
      batch_size: images encoded per compiled call (bounds memory; the last group is padded).

    Returns:
      The variables of ``model.inr()`` for every image: a pytree whose leaves have a leading axis N.
    """
    images = as_images(images)
    parts = [jax.tree_util.tree_map(lambda leaf, n=n: leaf[:n], _host(encoded))
             for _, n, encoded in _encoded_groups(model, variables, images, batch_size)]
    if len(parts) > 1:
        parts = [jax.tree_util.tree_map(lambda *leaves: np.concatenate(leaves), *parts)]
    return jax.tree_util.tree_map(jnp.asarray, parts[0])


def evaluate_inr(model: nn.Module, inr_variables: Any, coords: Any, batch_size: int = 16,
                 chunk_points: int = 1 << 14) -> np.ndarray:
    """Every image's INR at query points, vmapped over images, in groups of images and chunks of points.

    Args:
      model: the hypernetwork whose ``inr()`` the variables are for.
      inr_variables: per-image INR variables, leaves ``(N, ...)`` (:func:`encode`).
      coords: ``(P, d)`` points shared by every image, or ``(N, P, d)`` one set per image; [-1, 1] units.
      batch_size: images per compiled call.
      chunk_points: points per image per compiled call (the last chunk is padded).

    Returns:
      float32 numpy ``(N, P, C)``.
    """
    coords = np.asarray(coords, np.float32)
    count = encoded_size(inr_variables)
    per_image = coords.ndim == 3
    if per_image and coords.shape[0] != count:
        raise ValueError(f"coords of shape {coords.shape} are not one set per image of the {count} images")
    points = coords.shape[-2]
    chunk = max(1, min(chunk_points, points))
    evaluate = _evaluator(model, per_image)
    size, groups = _groups(count, batch_size)
    if size < count:  # sliced into groups on the host (one transfer); a single group stays where it is
        inr_variables = _host(inr_variables)
    out = None
    for start, n in groups:
        group = inr_variables if size == count else _pad(
            jax.tree_util.tree_map(lambda leaf, s=start, n=n: leaf[s:s + n], inr_variables), size)
        for first in range(0, points, chunk):
            m = min(chunk, points - first)
            part = coords[..., first:first + m, :]
            if per_image:
                part = _pad(part[start:start + n], size)
            part = _pad(part, chunk, axis=part.ndim - 2)  # the last chunk: no new program compiled
            values = np.asarray(evaluate(group, part))[:n, :m]
            if out is None:
                out = np.empty((count, points, values.shape[-1]), np.float32)
            out[start:start + n, first:first + m] = values
    return out


def render(model: nn.Module, inr_variables: Any, size: int | Sequence[int], bounds: Bounds | None = None,
           batch_size: int = 16, chunk_points: int = 1 << 14) -> np.ndarray:
    """Every encoded image rendered at ``size`` by its INR (any size: 4x the input is 4x super-resolution).

    Args:
      model: the hypernetwork whose ``inr()`` the variables are for.
      inr_variables: per-image INR variables, leaves ``(N, ...)`` (:func:`encode`).
      size: ``(H, W)`` pixels of the output (an int means square).
      bounds: the rectangle of the domain to render, ``((x0, x1), (y0, y1))``; default the whole [-1, 1]^2.
      batch_size, chunk_points: images and points per image of one compiled call (bound memory).

    Returns:
      float32 numpy ``(N, H, W, C)`` (not clipped).
    """
    shape = (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)
    coords = np.asarray(grid(shape, bounds)).reshape(-1, len(shape))
    values = evaluate_inr(model, inr_variables, coords, batch_size, chunk_points)
    return values.reshape(values.shape[0], *shape, values.shape[-1])


def reconstruct(model: nn.Module, variables: Any, images: Any, size: int | Sequence[int] | None = None,
                batch_size: int = 16, chunk_points: int = 1 << 14) -> np.ndarray:
    """Every image through the hypernetwork and back, a group of images at a time.

    When all query points fit in one chunk (``H' W' <= chunk_points``) each group is one call of the
    hypernetwork itself, ``model.apply(variables, images, coords)``; otherwise :func:`encode` then the INRs in
    chunks of points (so the encoder runs once per image, and memory stays bounded at any output size).

    Args:
      model, variables: the hypernetwork and its variables.
      images: ``(N, H, W, C)`` in [0, 1] (float) or uint8.
      size: ``(H', W')`` of the output; default the images' own size (a reconstruction).
      batch_size: images per compiled call (the last group is padded).
      chunk_points: query points per image per compiled call.

    Returns:
      float32 numpy ``(N, H', W', C)`` (not clipped).
    """
    images = as_images(images)
    shape = images.shape[1:3] if size is None else (int(size), int(size)) if np.isscalar(size) else tuple(size)
    coords = np.asarray(grid(shape)).reshape(-1, 2)
    out = None
    group_size, groups = _groups(images.shape[0], batch_size)
    for start, n in groups:
        group = _pad(images[start:start + n], group_size)
        if coords.shape[0] <= chunk_points:
            values = np.asarray(_applier(model)(variables, group, coords))[:n]
        else:
            values = evaluate_inr(model, _encoder(model)(variables, group), coords, batch_size, chunk_points)[:n]
        if out is None:
            out = np.empty((images.shape[0], *shape, values.shape[-1]), np.float32)
        out[start:start + n] = values.reshape(n, *shape, -1)
    return out


def bicubic(images: Any, size: int | Sequence[int]) -> np.ndarray:
    """Bicubic resampling (PIL) of float ``(N, H, W, C)`` images to ``size`` ``(H', W')``; float32 numpy."""
    from PIL import Image

    images = as_images(images)
    height, width = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    out = np.empty((images.shape[0], height, width, images.shape[-1]), np.float32)
    for i, image in enumerate(images):
        for c in range(image.shape[-1]):  # mode "F": one float channel, no 8-bit rounding
            out[i, ..., c] = np.asarray(Image.fromarray(image[..., c]).resize((width, height), Image.BICUBIC))
    return out


# ------------------------------------------------------------------------------------------ metrics


def psnr_per_image(pred: Any, target: Any, cap: float = PSNR_CAP_DB) -> np.ndarray:
    """PSNR in dB of each image pair, ``10 log10(1 / mse)`` over its pixels and channels (values in [0, 1]),
    at most ``cap`` (a perfect reconstruction). ``pred``, ``target``: ``(N, H, W, C)``; returns float64 ``(N,)``."""
    pred, target = np.asarray(pred, np.float32), np.asarray(target, np.float32)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from target shape {target.shape}")
    mse = np.mean(np.square(pred - target), axis=tuple(range(1, pred.ndim)))
    with np.errstate(divide="ignore"):
        return np.minimum(np.asarray(psnr_from_mse(mse), np.float64), cap)


def ssim_per_image(pred: Any, target: Any, batch_size: int = 256) -> np.ndarray:
    """SSIM (Wang et al. 2004; dm-pix, 11x11 Gaussian window, sigma 1.5, as :func:`inr_utils.metrics.ssim`) of
    each ``(H, W, C)`` image pair of ``(N, H, W, C)`` stacks in [0, 1]; float64 ``(N,)``, 1 = identical."""
    pred, target = np.asarray(pred, np.float32), np.asarray(target, np.float32)
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"ssim expects two stacks (N, H, W, C) of one shape, got {pred.shape} and {target.shape}")
    parts = [np.asarray(dm_pix.ssim(jnp.asarray(pred[s:s + batch_size]), jnp.asarray(target[s:s + batch_size]),
                                    max_val=1.0)) for s in range(0, pred.shape[0], batch_size)]
    return np.concatenate(parts).astype(np.float64)


def distribution(values: Any) -> dict[str, float]:
    """Summary of a sample: ``count, mean, std, min, p5, p25, median, p75, p95, max`` (plain floats)."""
    values = np.asarray(values, np.float64).ravel()
    p5, p25, median, p75, p95 = np.percentile(values, [5, 25, 50, 75, 95])
    return {"count": int(values.size), "mean": float(values.mean()), "std": float(values.std()),
            "min": float(values.min()), "p5": float(p5), "p25": float(p25), "median": float(median),
            "p75": float(p75), "p95": float(p95), "max": float(values.max())}


def jitter_psnr(model: nn.Module, variables: Any, images: Any, sigmas: Sequence[float] = JITTER_SIGMAS,
                seed: int = 0, batch_size: int = 16, chunk_points: int = 1 << 14) -> np.ndarray:
    """PSNR of every image's INR queried at jittered pixel centres against the pixels themselves.

    Image b is queried at ``c + sigma * z_b``: ``c`` the pixel centres, ``z_b ~ N(0, I)`` drawn from
    ``fold_in(key(seed), b)`` (deterministic, and the same draws for every sigma, so the curve is smooth in sigma).
    sigma is in [-1, 1] coordinate units. A robust INR changes little between neighbouring points.

    Returns:
      float64 ``(len(sigmas), N)`` PSNR in dB (capped at :data:`PSNR_CAP_DB`).
    """
    images = as_images(images)
    count, height, width, channels = images.shape
    centres = np.asarray(grid((height, width))).reshape(-1, 2)
    key = jax.random.key(seed)
    draw = jax.jit(jax.vmap(lambda b: jax.random.normal(jax.random.fold_in(key, b), centres.shape)))
    noise = np.asarray(draw(jnp.arange(count)))
    targets = images
    out = np.empty((len(sigmas), count), np.float64)
    for start, n, encoded in _encoded_groups(model, variables, images, batch_size):
        for i, sigma in enumerate(sigmas):
            coords = _pad(centres + float(sigma) * noise[start:start + n], encoded_size(encoded))
            values = evaluate_inr(model, encoded, coords, batch_size, chunk_points)[:n]
            out[i, start:start + n] = psnr_per_image(np.clip(values, 0.0, 1.0).reshape(n, height, width, channels),
                                                     targets[start:start + n])
    return out


def encoded_size(inr_variables: Any) -> int:
    """Number of images N of per-image INR variables (the leading axis of their leaves)."""
    return jax.tree_util.tree_leaves(inr_variables)[0].shape[0]


# ------------------------------------------------------------------------------------------ latents


def latent_features(model: nn.Module, variables: Any, images: Any, batch_size: int = 64) -> np.ndarray:
    """One flat feature vector per image: the model's own latent if it has a ``latents`` method
    (``apply(..., method="latents") -> (B, ...)``), else the emitted INR variables that differ between
    images (shared weights, repeated for every image, are left out), flattened and concatenated.

    Returns:
      float32 numpy ``(N, D)``.
    """
    images = as_images(images)
    count = images.shape[0]
    if hasattr(model, "latents"):
        size, groups = _groups(count, batch_size)
        latents = jax.jit(lambda v, x: model.apply(v, x, method="latents"))
        parts = [np.asarray(latents(variables, _pad(images[s:s + n], size)))[:n] for s, n in groups]
        return np.concatenate(parts).reshape(count, -1).astype(np.float32)
    rows, varying = [], None
    for _, n, encoded in _encoded_groups(model, variables, images, batch_size):
        leaves = [leaf[:n].astype(np.float32).reshape(n, -1) for leaf in jax.tree_util.tree_leaves(_host(encoded))]
        if varying is None:  # decided on the first group; with one image every leaf counts
            varying = [n == 1 or bool(np.any(leaf.max(axis=0) != leaf.min(axis=0))) for leaf in leaves]
            if not any(varying):
                varying = [True] * len(leaves)
        rows.append(np.concatenate([leaf for leaf, keep in zip(leaves, varying, strict=True) if keep], axis=1))
    return np.concatenate(rows)


def pca_2d(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """The first two principal components of ``features`` ``(N, D)`` (centred; numpy SVD).

    Returns:
      ``(embedding (N, 2), explained (2,))``: coordinates along the two leading directions (sign fixed so that
      each direction's largest-magnitude weight is positive, hence deterministic) and the fraction of the total
      variance each explains. With fewer than two non-trivial directions the missing column is zero.
    """
    x = np.asarray(features, np.float64)
    x = x.reshape(x.shape[0], -1) - x.reshape(x.shape[0], -1).mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    k = min(2, s.size)
    signs = np.sign(vt[np.arange(k), np.argmax(np.abs(vt[:k]), axis=1)])
    signs[signs == 0] = 1.0
    embedding = np.zeros((x.shape[0], 2))
    embedding[:, :k] = x @ (vt[:k].T * signs)
    total = float(np.sum(s**2))
    explained = np.zeros(2)
    if total > 0:
        explained[:k] = s[:k]**2 / total
    return embedding, explained


# ------------------------------------------------------------------------------------------ speed


def compiled_flops(compiled: Any) -> float | None:
    """Floating-point operations of one call of a compiled program (``jax.jit(f).lower(...).compile()``), from
    XLA's cost analysis; ``None`` where the backend gives none. A ``lax.scan`` body is counted once."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    return float(analysis["flops"]) if analysis and "flops" in analysis else None


def inr_speed(model: nn.Module, inr_variables: Any, size: int | Sequence[int], repeats: int = 3) -> dict[str, float]:
    """Time of evaluating every encoded image's INR on a full pixel grid: one vmapped, jitted call over all N
    images vs a Python loop calling the jitted single-image INR once per image (both compiled first; the best
    of ``repeats``; per-image variables sliced before timing).

    Returns:
      ``{"images": N, "points": P, "vmapped_s": ..., "loop_s": ..., "speedup": loop_s / vmapped_s,
      "flops_per_image": ...}``: seconds of each, and the flops of one image's INR evaluation from XLA's cost
      analysis of the single-image program (``None`` where the backend gives none), so a caller can compare
      both rates with the machine's peak.
    """
    shape = (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)
    coords = grid(shape).reshape(-1, len(shape))
    count = encoded_size(inr_variables)
    vmapped = _evaluator(model, False)
    single = jax.jit(model.inr().apply)
    host = _host(inr_variables)
    inr_variables = jax.device_put(host)
    each = [jax.device_put(jax.tree_util.tree_map(lambda leaf, b=b: leaf[b], host)) for b in range(count)]

    def run_vmapped() -> None:
        vmapped(inr_variables, coords).block_until_ready()

    def run_loop() -> None:
        for variables in each:
            out = single(variables, coords)
        out.block_until_ready()

    timings = {}
    for name, run in (("vmapped_s", run_vmapped), ("loop_s", run_loop)):
        run()  # compile
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t0)
        timings[name] = best
    flops = compiled_flops(single.lower(each[0], coords).compile())
    return {"images": count, "points": int(coords.shape[0]), **timings,
            "speedup": timings["loop_s"] / max(timings["vmapped_s"], 1e-12), "flops_per_image": flops}
