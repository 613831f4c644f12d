"""Spectral bias, measured: the empirical neural tangent kernel of small INRs and how fast each frequency is fitted.

Neural networks trained by gradient descent fit low frequencies first (Rahaman et al. 2019, "On the Spectral Bias
of Neural Networks"). In the linearised (neural tangent kernel) picture (Jacot, Gabriel & Hongler 2018, "Neural
Tangent Kernel: Convergence and Generalization in Neural Networks") the training residual ``r`` on the points
``X`` evolves as

    dr/dt = -eta K r,    K = J J^T,    J_ij = d f_theta(x_i) / d theta_j   (empirical NTK at the current theta),

so the component of ``r`` along an eigenvector of ``K`` with eigenvalue ``lambda`` decays like
``exp(-eta lambda t)``: a kernel whose eigenvalues fall off fast learns only the few top eigenvectors (the
smoothest functions) in reasonable time. Tancik et al. 2020 ("Fourier Features Let Networks Learn High
Frequency Functions in Low Dimensional Domains") show that mapping coordinates through Fourier features
``[cos 2 pi B x, sin 2 pi B x]`` (``B ~ N(0, sigma^2)``) makes the NTK stationary with a bandwidth set by
``sigma``; positional encoding (NeRF) and sine activations (SIREN, Sitzmann et al. 2020) widen the spectrum likewise.

This module measures both sides on the same models:
  * :func:`empirical_ntk` -- ``K = J J^T`` at initialisation on a 1-D or 2-D grid (``jax.jacrev`` of the outputs
    with respect to every parameter), its eigenvalues (:func:`ntk_spectrum`) and, on a 1-D grid, its response to
    each Fourier mode (:func:`frequency_response`: ``e_k^T K e_k`` for the unit cosine/sine of ``k`` cycles).
  * :func:`fit_speed` -- fits a sum of sinusoids with the one engine and records the residual's Fourier magnitude
    at each of its frequencies, relative to the signal's, every few steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from inr_utils.applications.objectives import fit_operator, identity_operator
from inr_utils.config import FitConfig
from inr_utils.errors import InputError
from inr_utils.grids import grid
from inr_utils.initialization import init_state
from inr_utils.training import merge_variables
from model_components.inrs import ModelConfig, build_model, model_config

__all__ = ["MODEL_NAMES", "FitSpeed", "empirical_ntk", "fit_speed", "frequency_response", "ntk_by_products",
           "ntk_spectrum", "sinusoid_signal", "small_inr", "spectral_config", "spectral_figure"]

#: The small INRs compared: name -> (preset, overrides of :func:`model_components.inrs.model_config`).
MODELS_SPEC: dict[str, tuple[str, dict[str, Any]]] = {
    "relu": ("relu_pe", {"encoding": "none"}),
    "relu_pe": ("relu_pe", {"num_frequencies": 6}),
    "ffn_s2": ("ffn", {"scale": 2.0, "num_features": 64}),
    "ffn_s20": ("ffn", {"scale": 20.0, "num_features": 64}),
    "siren": ("siren", {"output_offset": 0.0}),
}
MODEL_NAMES = tuple(MODELS_SPEC)
#: Training learning rate per model (Adam, constant): SIREN's paper setting, 1e-3 for the ReLU networks.
LEARNING_RATES = {"relu": 1e-3, "relu_pe": 1e-3, "ffn_s2": 1e-3, "ffn_s20": 1e-3, "siren": 1e-4}


def small_inr(name: str, in_dim: int, width: int = 64, depth: int = 2) -> ModelConfig:
    """One of :data:`MODEL_NAMES` as a small scalar INR (``width`` wide, ``depth`` hidden layers after the first,
    linear output, float32): ReLU MLP on raw coordinates, ReLU + NeRF positional encoding (6 octaves), Gaussian
    Fourier features (64 features) of scale 2 and 20 + ReLU, SIREN (omega0 = 30)."""
    if name not in MODELS_SPEC:
        raise InputError(f"unknown model {name!r}; choose from: {', '.join(MODEL_NAMES)}")
    preset, overrides = MODELS_SPEC[name]
    return model_config(preset, width=width, depth=depth, in_dim=in_dim, out_dim=1, output_activation="identity",
                        dtype="float32", **overrides)


def spectral_config(name: str, in_dim: int, steps: int = 1000, width: int = 64, depth: int = 2, seed: int = 0,
                    record_every: int = 20) -> FitConfig:
    """The training settings of :func:`fit_speed`: full-batch Adam at :data:`LEARNING_RATES`, constant rate."""
    return FitConfig(model=small_inr(name, in_dim, width, depth), steps=steps, lr=LEARNING_RATES[name],
                     lr_schedule="constant", batch_size=None, seed=seed, steps_per_call=record_every).validate()


def _flat_outputs(model_config_: ModelConfig, constants: Any, coords: jax.Array) -> Callable[[Any], jax.Array]:
    model = build_model(model_config_)
    return lambda params: model.apply(merge_variables(params, constants), coords).reshape(-1)


def empirical_ntk(config: FitConfig, coords: jax.Array | np.ndarray, params: Any = None) -> np.ndarray:
    """The empirical NTK ``K = J J^T`` ``(n, n)`` float64 of ``config``'s INR at its seed's initialisation (or at
    ``params``) on the points ``coords (n, d)``; ``J = d f(coords) / d params`` by ``jax.jacrev``, flattened over
    every parameter array."""
    coords = jnp.asarray(coords, jnp.float32).reshape(-1, config.model.in_dim)
    state, _ = init_state(config)
    params = state.params if params is None else params
    outputs = _flat_outputs(config.model, state.constants, coords)
    jac = jax.jit(jax.jacrev(outputs))(params)
    flat = jnp.concatenate([leaf.reshape(coords.shape[0], -1) for leaf in jax.tree.leaves(jac)], axis=1)
    flat = np.asarray(flat, np.float64)
    return flat @ flat.T


def ntk_by_products(config: FitConfig, coords: jax.Array | np.ndarray) -> np.ndarray:
    """The same kernel without forming ``J``: column ``j`` is ``J (J^T e_j)``, a ``jax.vjp`` then a ``jax.jvp``
    (the check of :func:`empirical_ntk`; O(n) passes, for tiny problems)."""
    coords = jnp.asarray(coords, jnp.float32).reshape(-1, config.model.in_dim)
    state, _ = init_state(config)
    outputs = _flat_outputs(config.model, state.constants, coords)
    _, pullback = jax.vjp(outputs, state.params)

    @jax.jit
    def column(e: jax.Array) -> jax.Array:
        (tangent,) = pullback(e)
        return jax.jvp(outputs, (state.params,), (tangent,))[1]

    eye = jnp.eye(coords.shape[0], dtype=jnp.float32)
    return np.stack([np.asarray(column(eye[j]), np.float64) for j in range(coords.shape[0])], axis=1)


def ntk_spectrum(kernel: np.ndarray) -> np.ndarray:
    """Eigenvalues of a symmetric PSD kernel, descending, divided by the largest (``(n,)``; tiny negative round-off
    clipped to 0)."""
    values = np.linalg.eigvalsh(0.5 * (kernel + kernel.T))[::-1]
    return np.clip(values, 0.0, None) / max(float(values[0]), 1e-300)


def frequency_response(kernel: np.ndarray, frequencies: Sequence[int]) -> np.ndarray:
    """The 1-D kernel's gain on each Fourier mode: the mean of ``e^T K e`` over the unit-norm cosine and sine of
    ``k`` cycles across the grid (for a stationary kernel, its eigenvalue at frequency ``k``), divided by the
    gain at the lowest listed frequency. ``(len(frequencies),)``."""
    n = kernel.shape[0]
    u = (np.arange(n) + 0.5) / n
    gains = []
    for k in frequencies:
        modes = [np.cos(2 * np.pi * k * u), np.sin(2 * np.pi * k * u)]
        gains.append(np.mean([m @ kernel @ m / (m @ m) for m in modes]))
    gains = np.asarray(gains)
    return gains / gains[0]


def sinusoid_signal(n: int, frequencies: Sequence[int], seed: int = 0) -> np.ndarray:
    """``(n, 1)`` float32 samples of ``0.5 + sum_k sin(2 pi k u + phi_k) / (2 K)`` at the grid's points
    (``u = (x + 1) / 2``, ``x`` the pixel centres of [-1, 1]; ``K`` frequencies, random phases of ``seed``):
    each ``k`` is exactly bin ``k`` of the signal's DFT, of equal amplitude, the signal within [0, 1]."""
    frequencies = list(frequencies)
    if not frequencies or min(frequencies) < 1 or max(frequencies) >= n // 2:
        raise InputError(f"frequencies must be whole numbers of cycles in [1, {n // 2 - 1}] for {n} samples, "
                         f"got {frequencies}")
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, len(frequencies))
    u = (np.arange(n) + 0.5) / n
    signal = 0.5 + sum(np.sin(2 * np.pi * k * u + p) for k, p in zip(frequencies, phases, strict=True)) / (
        2 * len(frequencies))
    return signal.astype(np.float32)[:, None]


def residual_spectrum(pred: np.ndarray, target: np.ndarray, frequencies: Sequence[int]) -> np.ndarray:
    """``|DFT(pred - target)[k]| / |DFT(target)[k]|`` at each frequency ``k`` (1-D ``(n, 1)`` signals)."""
    residual = np.fft.rfft((np.asarray(pred) - np.asarray(target))[:, 0])
    reference = np.fft.rfft(np.asarray(target)[:, 0])
    idx = np.asarray(frequencies)
    return np.abs(residual[idx]) / np.abs(reference[idx])


@dataclass
class FitSpeed:
    """What :func:`fit_speed` returns.

    Attributes:
      steps: ``(R,)`` steps at which the residual was recorded (0 = initialisation).
      relative_residual: ``(R, F)`` residual magnitude at each frequency relative to the signal's.
      frequencies: the ``F`` frequencies (cycles across the domain).
      loss: ``(steps,)`` training MSE.
      wall_s: seconds of training.
    """

    steps: np.ndarray
    relative_residual: np.ndarray
    frequencies: np.ndarray
    loss: np.ndarray
    wall_s: float

    def steps_to(self, threshold: float = 0.1) -> list[int | None]:
        """First recorded step at which each frequency's relative residual is below ``threshold`` (None: never)."""
        out = []
        for f in range(self.relative_residual.shape[1]):
            below = np.flatnonzero(self.relative_residual[:, f] < threshold)
            out.append(int(self.steps[below[0]]) if below.size else None)
        return out


def fit_speed(config: FitConfig, signal: np.ndarray, frequencies: Sequence[int]) -> FitSpeed:
    """Fits ``config``'s 1-D INR to ``signal (n, 1)`` (MSE, every sample every step, the engine's
    ``config.steps_per_call`` steps per chunk) and records the residual's relative Fourier magnitude at each of
    ``frequencies`` at initialisation and after every chunk."""
    signal = np.asarray(signal, np.float32)
    if signal.ndim != 2 or signal.shape[1] != 1:
        raise InputError(f"expected a 1-D signal of shape (n, 1), got {signal.shape}")
    coords = np.asarray(grid((signal.shape[0],)))
    model = build_model(config.model)
    apply = jax.jit(model.apply)
    state, _ = init_state(config)
    steps = [0]
    records = [residual_spectrum(apply(merge_variables(state.params, state.constants), coords), signal, frequencies)]

    def record(info: Any) -> None:
        pred = apply(merge_variables(info.state.params, info.state.constants), coords)
        steps.append(info.step)
        records.append(residual_spectrum(pred, signal, frequencies))

    fit = fit_operator(config, identity_operator, coords, signal, in_dim=1, out_dim=1, callbacks=[record])
    return FitSpeed(np.asarray(steps), np.stack(records), np.asarray(frequencies), fit.history.loss[:, 0],
                    fit.wall_s)


def grid_points(shape: Sequence[int]) -> np.ndarray:
    """The flat ``(prod(shape), d)`` pixel-centre grid of ``shape`` (1-D or 2-D)."""
    return np.asarray(grid(tuple(shape))).reshape(-1, len(shape))


def spectral_figure(path: str | Path, spectra: dict[str, dict[str, np.ndarray]], speeds: dict[str, FitSpeed]) -> None:
    """Left: normalised NTK eigenvalues per model on the 1-D grid (solid) and the 2-D grid (dashed). Right, one
    panel per model: the relative residual at each frequency of the 1-D signal against training step."""
    import matplotlib.pyplot as plt

    from inr_utils.plots import save_figure

    names = list(speeds) or list(spectra)
    fig, axes = plt.subplots(1, 1 + len(speeds), figsize=(4.2 * (1 + len(speeds)), 3.6), squeeze=False)
    ax = axes[0, 0]
    colours = {name: f"C{i}" for i, name in enumerate(dict.fromkeys([*spectra, *names]))}
    for name, by_grid in spectra.items():
        for grid_name, values in by_grid.items():
            ax.semilogy(np.arange(1, values.size + 1), np.maximum(values, 1e-12), color=colours[name],
                        ls="-" if grid_name == "1d" else "--", label=f"{name} ({grid_name})")
    ax.set_ylim(1e-8, 1.5)
    ax.set_xscale("log")
    ax.set_xlabel("eigenvalue index")
    ax.set_ylabel("lambda_i / lambda_1")
    ax.set_title("empirical NTK spectrum at init", fontsize=10)
    ax.legend(fontsize=6, ncol=2)
    for ax, (name, speed) in zip(axes[0, 1:], speeds.items(), strict=True):
        for f, k in enumerate(speed.frequencies):
            ax.semilogy(speed.steps, np.maximum(speed.relative_residual[:, f], 1e-4), label=f"{k} cycles")
        ax.axhline(0.1, color="gray", lw=0.5)
        ax.set_ylim(1e-3, 2)
        ax.set_title(f"{name}: residual per frequency", fontsize=10)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    axes[0, 1].set_ylabel("|residual_k| / |signal_k|") if len(speeds) else None
    fig.tight_layout()
    save_figure(fig, path)
