"""Training of one model: state, the pure train step, the chunked ``lax.scan``, and :func:`train`.

The pieces, each a pure function:
  * :func:`create_train_state` -- init params (and non-trainable constants) and optimizer state.
  * :func:`make_train_step` -- ``step(state, batch, key) -> (state, metrics)`` from apply fn, loss, optimizer.
  * :func:`make_train_chunk` -- ``run(state, data, key) -> (state, metrics[num_steps])``: ``num_steps`` steps
    in one compiled ``lax.scan``, sampling batches on the device. The key of step ``s`` is
    ``fold_in(key, s)``, so results do not depend on how steps are grouped into calls (resume = no resume).
  * :func:`train` -- one model trained by the engine's loop (:func:`inr_utils.engine.train_many`, N = 1): the
    compiled chunk called repeatedly, divergence checks, callbacks between chunks, and Ctrl-C or SIGTERM turned
    into :class:`TrainingInterrupted` carrying the last complete state.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from inr_utils.losses import Loss
from inr_utils.metrics import psnr_from_mse
from inr_utils.samplers import PixelData, Sampler

__all__ = ["TrainState", "split_variables", "merge_variables", "create_train_state", "make_train_step",
           "make_train_chunk", "DivergenceError", "TrainingInterrupted", "tree_all_finite", "deferred_signals",
           "TrainResult", "divergence_message", "train"]

Metrics = dict[str, jax.Array]


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training; a plain pytree (checkpointable, vmappable).

    Attributes:
      step: int32 scalar, number of optimizer steps taken.
      params: trainable variables (the model's ``"params"`` collection).
      constants: non-trainable variables (other collections, e.g. Fourier-feature matrices).
      opt_state: the optax optimizer state.
    """

    step: jax.Array
    params: Any
    constants: Any
    opt_state: Any


def split_variables(variables: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``model.init`` output -> (params, every other collection)."""
    variables = dict(variables)
    params = variables.pop("params", {})
    return params, variables


def merge_variables(params: Any, constants: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`split_variables`: the ``variables`` argument of ``model.apply``."""
    return {"params": params, **constants}


def create_train_state(model: nn.Module, optimizer: optax.GradientTransformation, key: jax.Array,
                       in_dim: int = 2) -> TrainState:
    """Initialises the model (on a dummy ``(1, in_dim)`` input) and the optimizer; step 0."""
    params, constants = split_variables(model.init(key, jnp.zeros((1, in_dim), jnp.float32)))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, constants=constants,
                      opt_state=optimizer.init(params))


def make_train_step(apply_fn: Callable[..., jax.Array], loss_fn: Loss, optimizer: optax.GradientTransformation,
                    ) -> Callable[[TrainState, tuple[jax.Array, jax.Array], jax.Array], tuple[TrainState, Metrics]]:
    """Builds the pure train step ``step(state, batch, key) -> (state, metrics)``.

    Args:
      apply_fn: ``model.apply``: ``(variables, coords (B, in_dim)) -> values (B, C)``.
      loss_fn: ``loss(pred, target) -> scalar``.
      optimizer: any optax gradient transformation.

    The step is not jitted here: jit it once at the top (:func:`make_train_chunk` scans it). ``key`` is
    unused by deterministic models and kept for stochastic ones.

    Returns:
      ``step`` whose metrics are float32 scalars ``loss``, ``psnr`` (of the batch, assuming MSE-like loss
      on [0, 1] data only for ``loss == mse``) and ``grad_norm`` (global L2 norm).
    """

    def step(state: TrainState, batch: tuple[jax.Array, jax.Array], key: jax.Array) -> tuple[TrainState, Metrics]:
        del key  # no stochastic layers yet
        coords, target = batch

        def loss_of(params):
            pred = apply_fn(merge_variables(params, state.constants), coords)
            return loss_fn(pred, target), pred

        (loss, pred), grads = jax.value_and_grad(loss_of, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        batch_mse = jnp.mean(jnp.square(pred - target))
        metrics = {"loss": loss, "psnr": psnr_from_mse(batch_mse), "grad_norm": optax.tree.norm(grads)}
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return step


def make_train_chunk(train_step: Callable, sampler: Sampler, num_steps: int, jit: bool = True,
                     ) -> Callable[[TrainState, PixelData, jax.Array], tuple[TrainState, Metrics]]:
    """``num_steps`` train steps in one ``lax.scan`` (jitted; compile once, call many times).

    Step ``s`` (the state's global step) uses ``k = fold_in(key, s)``, split into a sampling key and a step
    key, so the same ``key`` gives the same run however the steps are chunked.

    Args:
      train_step: the step of :func:`make_train_step`.
      sampler: ``sampler(data, key) -> batch``.
      num_steps: steps per call.
      jit: return the function jitted (default); ``False`` returns the plain function for a caller that
        transforms it and jits the result (a jitted function inside ``vmap`` is traced twice).

    Returns:
      ``run(state, data, key) -> (state, metrics)`` with each metric of shape ``(num_steps,)``.
    """

    def run(state: TrainState, data: PixelData, key: jax.Array) -> tuple[TrainState, Metrics]:
        def body(state, _):
            sample_key, step_key = jax.random.split(jax.random.fold_in(key, state.step))
            return train_step(state, sampler(data, sample_key), step_key)

        return jax.lax.scan(body, state, None, length=num_steps)

    # The state is not donated: keeping the previous chunk's state alive is what lets training stop on a
    # NaN with the last good parameters (INR states are a few MB, so the copy is cheap).
    return jax.jit(run) if jit else run


class DivergenceError(RuntimeError):
    """Raised when the loss becomes NaN or inf; ``state`` is the last state whose loss was finite."""

    def __init__(self, message: str, state: TrainState):
        super().__init__(message)
        self.state = state


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during :func:`train`; ``state`` is the state after the last complete chunk, ``signum``
    the signal that stopped it (``None`` for a ``KeyboardInterrupt`` raised by a callback)."""

    def __init__(self, state: TrainState, signum: int | None = None):
        super().__init__(f"training interrupted at step {int(state.step)}")
        self.state, self.signum = state, signum


@jax.jit
def tree_all_finite(tree: Any) -> jax.Array:
    """True when every leaf of ``tree`` is free of NaN and inf (a bool scalar)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


class _StopFlag(threading.Event):
    """Set by a deferred signal; ``signum`` is the first signal received."""

    signum: int | None = None


class deferred_signals:
    """Context manager: while active (main thread only), Ctrl-C (SIGINT) and SIGTERM (what ``timeout`` and job
    schedulers send) set a flag instead of ending the process, so the training loop stops between chunks after
    every callback has seen the last chunk (history, checkpoints and state stay consistent), and the caller
    saves and exits. A second signal raises ``KeyboardInterrupt`` at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> _StopFlag:
        self.flag = _StopFlag()
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        return self.flag

    def _handle(self, signum, frame) -> None:
        if self.flag.is_set():
            raise KeyboardInterrupt
        self.flag.signum = signum
        self.flag.set()

    def __exit__(self, *exc) -> None:
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)


@dataclass
class TrainResult:
    """Output of :func:`train`: final state, seconds spent compiling and in total (compilation included)."""

    state: TrainState
    compile_s: float
    wall_s: float


def divergence_message(step: int, in_loss: bool) -> str:
    """The message of :class:`DivergenceError` for a model that diverged at ``step``."""
    where = f"the loss became NaN/inf at step {step}" if in_loss else f"the parameters became NaN/inf by step {step}"
    return f"training diverged: {where}; lower the learning rate (--lr) or use a decaying schedule"


def train(state: TrainState, data: PixelData, key: jax.Array, train_step: Callable, sampler: Sampler,
          total_steps: int, steps_per_call: int = 100, callbacks: Sequence[Callable] = ()) -> TrainResult:
    """Trains one model from ``state.step`` to ``total_steps`` in compiled chunks of ``steps_per_call`` steps:
    the one-model case of :func:`inr_utils.engine.train_many`.

    Args:
      state: initial (or restored) train state.
      data: the signal, already on the device.
      key: the loop key; step s uses ``fold_in(key, s)``.
      train_step: from :func:`make_train_step`.
      sampler: from :mod:`inr_utils.samplers`.
      total_steps: global step to stop at.
      steps_per_call: steps per compiled call; a shorter last chunk compiles once more.
      callbacks: called in order after every chunk with a single-model :class:`inr_utils.engine.ChunkInfo`.

    Raises:
      DivergenceError: the loss became NaN/inf; carries the last good state.
      TrainingInterrupted: Ctrl-C or SIGTERM; carries the state after the last complete chunk.
    """
    from inr_utils.engine import SweepInterrupted, shared_axes, single_model, train_many

    try:
        result = train_many(state, data, key, train_step, sampler, total_steps, shared_axes(), None, steps_per_call,
                            [single_model(c) for c in callbacks], stop_when_all_diverged=True)
    except SweepInterrupted as err:
        raise TrainingInterrupted(err.state, err.signum) from None
    final = result.state
    if result.diverged_step[0] >= 0:
        raise DivergenceError(divergence_message(int(result.diverged_step[0]), bool(result.diverged_loss[0])), final)
    return TrainResult(final, result.compile_s, result.wall_s)
