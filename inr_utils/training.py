"""Training: state, optimizer, the pure jitted train step, and the chunked ``lax.scan`` loop with callbacks.

The pieces, each a pure function:
  * :func:`create_train_state` -- init params (and non-trainable constants) and optimizer state.
  * :func:`make_train_step` -- ``step(state, batch, key) -> (state, metrics)`` from apply fn, loss, optimizer.
  * :func:`make_train_chunk` -- ``run(state, data, key) -> (state, metrics[num_steps])``: ``num_steps`` steps
    in one compiled ``lax.scan``, sampling batches on the device. The key of step ``s`` is
    ``fold_in(key, s)``, so results do not depend on how steps are grouped into calls (resume = no resume).
  * :func:`train` -- calls the compiled chunk repeatedly, checks for divergence, calls callbacks between
    chunks, and turns Ctrl-C into :class:`TrainingInterrupted` carrying the last complete state.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from inr_utils.losses import Loss
from inr_utils.metrics import psnr_from_mse
from inr_utils.samplers import PixelData, Sampler

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


class ProgramCache:
    """Jitted functions by what their programs depend on (a hashable key), the least recently used dropped
    beyond ``size``. A later call with the same key gets the same function back, and JAX's own cache then
    skips tracing and compilation for arguments of the same shapes."""

    def __init__(self, size: int = 32):
        self.size = size
        self._programs: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The function cached under ``key``, made by ``make()`` the first time."""
        if key in self._programs:
            self._programs.move_to_end(key)
            return self._programs[key]
        value = self._programs[key] = make()
        while len(self._programs) > self.size:
            self._programs.popitem(last=False)
        return value

    def clear(self) -> None:
        """Forgets every cached function."""
        self._programs.clear()


#: XLA options of compilations that run once (initialisation): LLVM's full optimisation of the PRNG's hash
#: rounds costs seconds of compile time for microseconds of run time (64 CIFAR SIRENs: 3.1 s of CPU at the
#: default level 3, 1.3 s at level 1), and XLA:CPU's newer fusion emitters add more (init of 64 CIFAR SIRENs
#: compiled in 0.53 s with them, 0.38 s without; training chunks, by contrast, run twice as slow without them).
#: Level 0 would halve the compile time again but drops fused multiply-adds, so its uniform draws differ in the
#: last bit from level 1's and from eager (op-by-op) initialisation, which these options match bit for bit.
ONCE_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False}


def create_train_state(model: nn.Module, optimizer: optax.GradientTransformation, key: jax.Array,
                       in_dim: int = 2) -> TrainState:
    """Initialises the model (on a dummy ``(1, in_dim)`` input) and the optimizer; step 0."""
    params, constants = split_variables(model.init(key, jnp.zeros((1, in_dim), jnp.float32)))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, constants=constants,
                      opt_state=optimizer.init(params))


def make_lr_schedule(lr: float, steps: int, schedule: str = "constant", final_fraction: float = 0.05,
                     warmup_steps: int = 0) -> optax.Schedule:
    """Learning rate per step: optional linear warm-up to ``lr``, then ``constant``, ``cosine`` or
    ``exponential`` decay reaching ``final_fraction * lr`` at ``steps``."""
    decay_steps = max(1, steps - warmup_steps)
    if schedule == "constant":
        main = optax.constant_schedule(lr)
    elif schedule == "cosine":
        main = optax.cosine_decay_schedule(lr, decay_steps, alpha=final_fraction)
    elif schedule == "exponential":
        main = optax.exponential_decay(lr, decay_steps, decay_rate=final_fraction)
    else:
        raise ValueError(f"unknown lr schedule {schedule!r}; choose constant, cosine or exponential")
    if warmup_steps <= 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup_steps), main], [warmup_steps])


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
    """Ctrl-C during :func:`train`; ``state`` is the state after the last complete chunk."""

    def __init__(self, state: TrainState):
        super().__init__(f"training interrupted at step {int(state.step)}")
        self.state = state


@dataclass
class ChunkInfo:
    """What callbacks see after every compiled chunk.

    Attributes:
      state: the train state after the chunk.
      step: global step after the chunk (Python int).
      total_steps: the step training ends at.
      metrics: per-step metrics of the chunk as numpy arrays ``(chunk_steps,)``.
      elapsed_s: wall seconds since training started (compilation included).
      extra: scalars added by earlier callbacks (e.g. ``full_psnr`` from an evaluator).
    """

    state: TrainState
    step: int
    total_steps: int
    metrics: dict[str, np.ndarray]
    elapsed_s: float
    extra: dict[str, float] = field(default_factory=dict)


class Callback(Protocol):
    """Runs on the host between compiled chunks (outside jit)."""

    def __call__(self, info: ChunkInfo) -> None: ...


@jax.jit
def tree_all_finite(tree: Any) -> jax.Array:
    """True when every leaf of ``tree`` is free of NaN and inf (a bool scalar)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _check_finite(state: TrainState, new_state: TrainState, metrics: dict[str, np.ndarray]) -> None:
    """Raises :class:`DivergenceError` (carrying ``state``, the chunk's start) when a loss of the chunk or the
    parameters after it are not finite. Both are needed: a step's loss is computed before its update, so
    the last update of a chunk can break the parameters while every loss is finite."""
    finite_loss = np.isfinite(metrics["loss"])
    if finite_loss.all() and bool(tree_all_finite(new_state.params)):
        return
    where = (f"the loss became NaN/inf at step {int(state.step) + int(np.argmin(finite_loss)) + 1}"
             if not finite_loss.all() else f"the parameters became NaN/inf by step {int(new_state.step)}")
    raise DivergenceError(f"training diverged: {where}; lower the learning rate (--lr) or use a decaying schedule",
                          state)


class deferred_sigint:
    """Context manager: while active (main thread only), Ctrl-C sets a flag instead of raising, so
    :func:`train` stops between chunks after every callback has seen the last chunk (history, checkpoints
    and state stay consistent). A second Ctrl-C raises ``KeyboardInterrupt`` at once."""

    def __enter__(self) -> threading.Event:
        self.flag = threading.Event()
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self.flag

    def _handle(self, signum, frame) -> None:
        if self.flag.is_set():
            raise KeyboardInterrupt
        self.flag.set()

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


@dataclass
class TrainResult:
    """Output of :func:`train`: final state, seconds spent compiling and in total (compilation included)."""

    state: TrainState
    compile_s: float
    wall_s: float


def train(state: TrainState, data: PixelData, key: jax.Array, train_step: Callable, sampler: Sampler,
          total_steps: int, steps_per_call: int = 100, callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Trains from ``state.step`` to ``total_steps`` in compiled chunks of ``steps_per_call`` steps.

    Args:
      state: initial (or restored) train state.
      data: the signal, already on the device.
      key: the loop key; step s uses ``fold_in(key, s)``.
      train_step: from :func:`make_train_step`.
      sampler: from :mod:`inr_utils.samplers`.
      total_steps: global step to stop at.
      steps_per_call: steps per compiled call; a shorter last chunk compiles once more.
      callbacks: called in order after every chunk with a :class:`ChunkInfo`.

    Raises:
      DivergenceError: the loss became NaN/inf; carries the last good state.
      TrainingInterrupted: Ctrl-C; carries the state after the last complete chunk.
    """
    start = time.perf_counter()
    compile_s = 0.0
    compiled: dict[int, Any] = {}
    with deferred_sigint() as interrupted:
        try:
            while int(state.step) < total_steps:
                n = min(steps_per_call, total_steps - int(state.step))
                if n not in compiled:
                    t0 = time.perf_counter()
                    compiled[n] = make_train_chunk(train_step, sampler, n).lower(state, data, key).compile()
                    compile_s += time.perf_counter() - t0
                new_state, metrics = compiled[n](state, data, key)
                metrics = jax.device_get(metrics)
                _check_finite(state, new_state, metrics)
                state = new_state
                info = ChunkInfo(state, int(state.step), total_steps, metrics, time.perf_counter() - start)
                for callback in callbacks:
                    callback(info)
                # checked after all callbacks, so they have all seen this chunk; a finished run just finishes
                if interrupted.is_set() and int(state.step) < total_steps:
                    raise TrainingInterrupted(state)
        except KeyboardInterrupt as err:
            if isinstance(err, TrainingInterrupted):
                raise
            raise TrainingInterrupted(state) from None
    return TrainResult(state, compile_s, time.perf_counter() - start)
