"""The optimizer of every fit and sweep: Adam whose peak learning rate and schedule length live in its state.

Learning-rate schedules are registered by name in :data:`LR_SCHEDULES` as *relative* schedules
``relative(count, decay_steps, final_fraction) -> multiplier`` (1 at the start of the decay, ``final_fraction``
at its end); the learning rate of step ``s`` is ``peak_lr * warmup_then(relative)(s)``.

Keeping the peak lr and the schedule length (the *horizon*) as state leaves instead of program constants means
  * models with different learning rates share one compiled update (a sweep stacks them into an ``(N,)`` array);
  * a run resumed with more steps keeps the schedule it was planned with: past its horizon a decaying schedule
    stays at its final rate (``final_fraction * peak_lr``) instead of being stretched over the new length.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import optax

from model_components.registry import Registry


class RelativeSchedule(Protocol):
    """``relative(count, decay_steps, final_fraction) -> multiplier`` for ``0 <= count``; jnp, traceable (the
    arguments may be traced arrays)."""

    def __call__(self, count: jax.Array, decay_steps: jax.Array, final_fraction: float) -> jax.Array: ...


LR_SCHEDULES: Registry[RelativeSchedule] = Registry("lr schedule")


@LR_SCHEDULES.register("constant")
def constant_schedule(count: jax.Array, decay_steps: jax.Array, final_fraction: float) -> jax.Array:
    """1 at every step."""
    del decay_steps, final_fraction
    return jnp.ones_like(jnp.asarray(count, jnp.float32))


@LR_SCHEDULES.register("cosine")
def cosine_schedule(count: jax.Array, decay_steps: jax.Array, final_fraction: float) -> jax.Array:
    """Cosine decay (Loshchilov & Hutter 2017, SGDR, without restarts), then constant:
    ``f + (1 - f) * (1 + cos(pi * min(count, T) / T)) / 2`` with ``T = decay_steps``, ``f = final_fraction``
    (optax's ``cosine_decay_schedule`` arithmetic)."""
    count = jnp.minimum(jnp.asarray(count, jnp.float32), decay_steps)
    # times the reciprocal: what XLA makes of optax's division by a constant, so the values agree bit for bit
    cosine = 0.5 * (1 + jnp.cos(count * (jnp.float32(jnp.pi) * (1.0 / decay_steps))))
    return (1 - final_fraction) * cosine + final_fraction


@LR_SCHEDULES.register("exponential")
def exponential_schedule(count: jax.Array, decay_steps: jax.Array, final_fraction: float) -> jax.Array:
    """``final_fraction ** (min(count, T) / T)``: exponential decay reaching ``final_fraction`` at ``T``, then
    constant."""
    count = jnp.minimum(jnp.asarray(count, jnp.float32), decay_steps)
    return jnp.asarray(final_fraction, jnp.float32) ** (count * (1.0 / decay_steps))


def relative_lr(count: jax.Array, horizon: jax.Array, schedule: str = "constant", final_fraction: float = 0.05,
                warmup_steps: int = 0) -> jax.Array:
    """Learning rate of step ``count`` for a peak of 1: linear warm-up from 0 over ``warmup_steps``, then the
    registered ``schedule`` decaying over the remaining ``horizon - warmup_steps`` steps (at least 1)."""
    main = LR_SCHEDULES.get(schedule)
    count = jnp.asarray(count)
    decay_steps = jnp.maximum(1, jnp.asarray(horizon) - warmup_steps).astype(jnp.float32)
    decayed = main(jnp.maximum(count - warmup_steps, 0), decay_steps, final_fraction)
    if warmup_steps <= 0:
        return decayed
    warm = jnp.clip(count, 0, warmup_steps).astype(jnp.float32) / warmup_steps
    return jnp.where(count < warmup_steps, warm, decayed)


def make_lr_schedule(lr: float, steps: int, schedule: str = "constant", final_fraction: float = 0.05,
                     warmup_steps: int = 0) -> optax.Schedule:
    """Learning rate per step: optional linear warm-up to ``lr``, then ``schedule`` (a :data:`LR_SCHEDULES`
    name) reaching ``final_fraction * lr`` at ``steps`` and staying there.

    Raises:
      UnknownNameError (a ``ValueError``): ``schedule`` is not registered.
    """
    LR_SCHEDULES.get(schedule)  # fail at construction, naming the choices
    return lambda count: lr * relative_lr(count, steps, schedule, final_fraction, warmup_steps)


class ScheduledLearningRateState(NamedTuple):
    """State of :func:`scale_by_scheduled_lr`.

    Attributes:
      count: int32 scalar, updates so far.
      horizon: int32 scalar, the step count the schedule was planned for.
      lr: float32 scalar, the peak learning rate.
    (Each ``(N,)`` once a sweep stacks the states.)
    """

    count: jax.Array
    horizon: jax.Array
    lr: jax.Array


def scale_by_scheduled_lr(lr: float | jax.Array, horizon: int, schedule: str = "constant",
                          final_fraction: float = 0.05, warmup_steps: int = 0) -> optax.GradientTransformation:
    """Multiplies updates by ``-lr * relative_lr(step)`` (:func:`relative_lr`), with the peak ``lr`` and the
    ``horizon`` kept in the state instead of the program: models with different learning rates share one
    compiled update (their stacked states carry an ``(N,)`` array), and a resumed state keeps the schedule it
    started with, whatever the new step count. The step size is computed as optax's
    ``scale_by_learning_rate(schedule)`` computes it, so ``chain(scale_by_adam(), this)`` gives
    ``optax.adam(schedule)``'s values bit for bit (constant, cosine and exponential schedules without warm-up).

    Args:
      lr: the peak learning rate (a Python float, or a traced scalar inside a vmapped init).
      horizon: steps the schedule decays over (including the warm-up).
      schedule, final_fraction, warmup_steps: see :func:`relative_lr`.
    """
    LR_SCHEDULES.get(schedule)  # fail at construction, naming the choices

    def init(params: Any) -> ScheduledLearningRateState:
        del params
        return ScheduledLearningRateState(jnp.zeros((), jnp.int32), jnp.asarray(horizon, jnp.int32),
                                          jnp.asarray(lr, jnp.float32))

    def update(updates: Any, state: ScheduledLearningRateState, params: Any = None,
               ) -> tuple[Any, ScheduledLearningRateState]:
        del params
        step_size = -(state.lr * relative_lr(state.count, state.horizon, schedule, final_fraction, warmup_steps))
        updates = jax.tree.map(lambda g: jnp.array(step_size, dtype=g.dtype) * g, updates)
        return updates, state._replace(count=optax.safe_int32_increment(state.count))

    return optax.GradientTransformation(init, update)


def build_optimizer(config: Any, lr: float | jax.Array | None = None, flat: bool = False,
                    ) -> optax.GradientTransformation:
    """Adam (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization") with the config's schedule; the
    peak lr and the horizon live in the state: ``chain(scale_by_adam(), scale_by_scheduled_lr(...))``, the
    update of step ``s`` being ``-lr * relative_lr(s) * m_hat / (sqrt(v_hat) + eps)``.

    Args:
      config: a ``FitConfig`` (``steps``, ``lr``, ``lr_schedule``, ``final_lr_fraction``, ``warmup_steps``).
      lr: peak learning rate; default ``config.lr``.
      flat: run the chain on the parameters raveled into one vector (``optax.flatten``: the moments are flat
        vectors), so an update is a few kernels instead of several per parameter array. Sweeps use it (their
        vmapped programs compile faster that way); the values equal the unflattened ones up to float rounding.
    """
    chain = optax.chain(optax.scale_by_adam(), scale_by_scheduled_lr(
        config.lr if lr is None else lr, config.steps, config.lr_schedule, config.final_lr_fraction,
        config.warmup_steps))
    return optax.flatten(chain) if flat else chain


def schedule_horizon(opt_state: Any) -> int | None:
    """The horizon stored in an optimizer state of :func:`build_optimizer` (``None`` if it has none)."""
    for leaf in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, ScheduledLearningRateState)):
        if isinstance(leaf, ScheduledLearningRateState):
            return int(jnp.asarray(leaf.horizon).reshape(-1)[0])
    return None
