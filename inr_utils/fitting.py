"""One fit in memory: config (+ signal of any dimension) -> trained INR (:func:`fit`, what the README's Python
example calls), the single-model case of :func:`inr_utils.engine.train_many`.

:mod:`inr_utils.fit_runs` adds the run folder around it (``experiments/fit_image.py``): checkpoints, renders,
metrics, history, config and the summary figure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
import optax

from inr_utils.callbacks import History, ProgressBar
from inr_utils.conditioning import with_signal
from inr_utils.config import FitConfig
from inr_utils.engine import (
    Callback,
    SweepInterrupted,
    make_chunk_program,
    plan_batch,
    shared_axes,
    single_model,
    train_many,
)
from inr_utils.errors import InputError, user_input
from inr_utils.evaluation import FullSignalEvaluator, make_evaluator
from inr_utils.images import default_image, load_image
from inr_utils.initialization import init_state
from inr_utils.losses import LOSSES
from inr_utils.optim import build_optimizer
from inr_utils.partitions import layout_for
from inr_utils.programs import cached, model_key, training_key
from inr_utils.samplers import PixelData, make_sampler, signal_to_data
from inr_utils.training import (
    DivergenceError,
    TrainingInterrupted,
    TrainState,
    divergence_message,
    make_train_step,
    merge_variables,
)
from model_components.inrs import build_model
from model_components.mlp import MLPINR

__all__ = ["FitResult", "check_signal", "fit", "initial_state", "load_config_image", "loop_key", "mask_rows",
           "masked_data", "observed_signal", "with_out_dim"]


def load_config_image(config: FitConfig) -> np.ndarray:
    """The image a config fits: its ``image`` file (downscaled to ``max_size``) or the default astronaut."""
    if config.image is None:
        return default_image(config.max_size)
    return load_image(config.image, config.max_size)


def initial_state(config: FitConfig, channels: int, in_dim: int | None = None,
                  ) -> tuple[MLPINR, optax.GradientTransformation, TrainState]:
    """Model, optimizer and step-0 state of a config for a signal with ``channels`` channels (and ``in_dim``
    sample axes; default: the config's): the one-model case of :func:`inr_utils.initialization.init_states` (one
    cached compiled program per model kind). The root key ``key(seed)`` is split into (init, loop) keys; the loop
    key is :func:`loop_key`."""
    config = with_out_dim(config, channels, in_dim)
    return build_model(config.model), build_optimizer(config), init_state(config)[0]


def loop_key(config: FitConfig) -> jax.Array:
    """The key whose ``fold_in(., step)`` drives sampling at every step."""
    return jax.random.split(jax.random.key(config.seed))[1]


def with_out_dim(config: FitConfig, channels: int, in_dim: int | None = None) -> FitConfig:
    """``config`` with its model's ``out_dim`` set to the signal's channels and (when given) ``in_dim`` to its
    number of sample axes d."""
    model = dataclasses.replace(config.model, out_dim=channels)
    if in_dim is not None:
        model = dataclasses.replace(model, in_dim=in_dim)
    return dataclasses.replace(config, model=model)


def check_signal(signal: np.ndarray) -> np.ndarray:
    """``signal`` as a float ``(*shape, C)`` array of d >= 1 sample axes and C >= 1 channels, or
    :class:`InputError`."""
    signal = np.asarray(signal) if not isinstance(signal, (np.ndarray, jax.Array)) else signal
    if signal.ndim < 2 or min(signal.shape) < 1:
        raise InputError(f"expected a signal of shape (*sample_axes, channels), e.g. (N, 1) audio, (H, W, C) image "
                         f"or (T, H, W, C) video, got shape {tuple(signal.shape)}")
    if not np.issubdtype(signal.dtype, np.floating):
        raise InputError(f"expected a float signal with values in [0, 1], got dtype {signal.dtype}")
    return signal


def mask_rows(mask: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The flat row indices (:func:`inr_utils.samplers.signal_to_data` order) where a boolean ``shape`` mask is
    true, ``(K,)`` int, or :class:`InputError` for a mask of another shape, not boolean/0-1, or all false."""
    mask = np.asarray(mask)
    shape = tuple(int(n) for n in shape)
    if mask.shape != shape:
        raise InputError(f"the mask has shape {mask.shape} but the signal's samples have shape {shape}; "
                         "give a mask of the signal's size")
    if mask.dtype != bool:
        if not np.all((mask == 0) | (mask == 1)):
            raise InputError("the mask must be binary (boolean, or only 0 and 1 values); threshold it first")
        mask = mask.astype(bool)
    rows = np.flatnonzero(mask.reshape(-1))
    if rows.size == 0:
        raise InputError("the mask hides every sample, so there is nothing to train on; keep some samples")
    return rows


def observed_signal(signal: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``signal (..., *shape, C)`` with the samples hidden by the boolean ``shape`` mask replaced by the mean of
    the visible ones (per leading index and channel): what a model conditioned on its signal may see."""
    signal, keep = np.asarray(signal, np.float32), np.asarray(mask, bool)[..., None]
    axes = tuple(range(signal.ndim - keep.ndim, signal.ndim - 1))
    mean = np.sum(signal * keep, axis=axes, keepdims=True) / max(1, int(keep.sum()))
    return np.where(keep, signal, mean).astype(np.float32)


def masked_data(data: PixelData, mask: np.ndarray, shape: Sequence[int]) -> PixelData:
    """The rows of flat ``data`` (of a signal with sample axes ``shape``) where ``mask`` is true (see
    :func:`mask_rows`); rows are indexed on the last-but-one axis, so a model axis in front is kept."""
    rows = mask_rows(mask, shape)
    return PixelData(data.coords[..., rows, :], data.values[..., rows, :], data.pixel_size)


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
      model: the Flax module.
      state: final train state (``state.params`` are the INR's weights).
      history: per-step metrics.
      compile_s: seconds spent compiling the training chunks.
      wall_s: seconds of the training loop, compilation included.
      steps_run: steps taken by this call (fewer than ``state.step`` when resumed).
    """

    model: MLPINR
    state: TrainState
    history: History
    compile_s: float
    wall_s: float
    steps_run: int

    @property
    def variables(self) -> dict[str, Any]:
        """``model.apply``'s first argument."""
        return merge_variables(self.state.params, self.state.constants)


def fit(image: np.ndarray, config: FitConfig, state: TrainState | None = None, history: History | None = None,
        callbacks: Sequence[Callback] = (), progress: bool = True, eval_every: int = 200,
        mask: np.ndarray | None = None) -> FitResult:
    """Fits an INR to a signal in [0, 1]: the one-model case of the engine (:func:`inr_utils.engine.train_many`).

    Args:
      image: the signal, a float ``(*shape, C)`` array of any dimension d = ``len(shape)``: ``(H, W, C)`` image,
        ``(N, C)`` audio, ``(T, H, W, C)`` video or volume. Sample ``[i_0, ..., i_{d-1}]`` sits at the grid
        coordinates of :func:`inr_utils.grids.grid` (the last axis is x). The model's ``in_dim`` is set to d
        and its ``out_dim`` to C (a model whose encoding supports no such d, e.g. the hash grid in 1-D, raises
        ``ValueError``).
      config: the fit's config (validated here). A ``batch_size`` above the sample count is clamped to the full
        signal (with a warning).
      state: state to resume from (default: fresh state from ``config.seed``). Its optimizer state keeps the
        learning-rate schedule it was started with (see :mod:`inr_utils.optim`).
      history: history of the steps before ``state.step`` (for resumed runs).
      callbacks: extra single-model callbacks (``info.state`` one model's) after the built-in evaluator,
        history and progress bar.
      progress: show a progress bar.
      eval_every: steps between full-signal PSNR evaluations.
      mask: optional boolean ``shape`` array (the signal's sample axes): train only on the samples where it is
        true (inpainting). The other samples' values are never read, and the history's ``full_psnr`` is over
        the training samples only (score the hidden ones on a render).

    Raises:
      InputError: a step that cannot fit in memory, a bad ``eval_every``, signal shape or mask.
      DivergenceError: the loss became NaN/inf; carries the last good state.
      TrainingInterrupted: Ctrl-C or SIGTERM; carries the state after the last complete chunk.
    """
    if eval_every <= 0:
        raise InputError(f"eval_every must be a positive number of steps, got {eval_every}")
    image = check_signal(image)
    config = with_out_dim(config.validate(), image.shape[-1], image.ndim - 1)
    data = signal_to_data(image)
    with user_input():  # the model's options against the signal (e.g. a partition grid that does not match it)
        model = build_model(config.model)
        # a partitioned model (Local-Global INR) trains and evaluates partition-major (inr_utils.partitions)
        layout = layout_for(config.model, image.shape[:-1])
    if mask is not None:
        if layout is not None:
            raise InputError("a training mask does not work with a partitioned model (its layout needs every "
                             "sample); drop the mask or pick an unpartitioned model")
        data = masked_data(data, mask, image.shape[:-1])
    apply_fn, train_data, align = model.apply, data, 1
    if layout is not None:
        apply_fn, (train_data, data), align = layout.apply(model), layout.arrange(data), layout.slots
    config = plan_batch(config, data.values.shape[0])
    fresh, key = init_state(config)
    if state is None:  # a model conditioned on its signal (INCODE) sees only the samples it trains on
        state = with_signal(fresh, image if mask is None else observed_signal(image, mask))
    first_step = int(state.step)
    axes = shared_axes()
    program_key = (model_key(config.model), training_key(config), tuple(axes), (), layout is not None)
    step_fn, sampler = cached(("step", *program_key), lambda: (
        make_train_step(apply_fn, LOSSES.get(config.loss), build_optimizer(config)),
        make_sampler(config.batch_size, config.jitter, config.sampler) if layout is None else
        layout.sampler(config.batch_size, config.jitter)))

    def make_chunk(num_steps: int):
        return cached(("chunk", *program_key, num_steps, None),
                      lambda: make_chunk_program(step_fn, sampler, num_steps, axes, None, single=True))

    shapes = tuple((x.shape, str(x.dtype)) for x in data)
    evaluate = cached(("eval", *program_key, shapes),
                      lambda: make_evaluator(apply_fn, data, axes, None, single=True, align=align))
    history = history if history is not None else History()
    bar = ProgressBar(config.steps, first_step, disable=not progress)
    all_callbacks = [FullSignalEvaluator(apply_fn, data, eval_every, evaluate=evaluate), history, bar,
                     *(single_model(c) for c in callbacks)]
    try:
        result = train_many(state, train_data, key, step_fn, sampler, config.steps, axes, None, config.steps_per_call,
                            all_callbacks, make_chunk=make_chunk, stop_when_all_diverged=True)
    except SweepInterrupted as err:
        raise TrainingInterrupted(err.state, err.signum) from None
    finally:
        bar.close()
    final = result.state
    if result.diverged_step[0] >= 0:
        raise DivergenceError(divergence_message(int(result.diverged_step[0]), bool(result.diverged_loss[0])), final)
    return FitResult(model, final, history, result.compile_s, result.wall_s, int(final.step) - first_step)
