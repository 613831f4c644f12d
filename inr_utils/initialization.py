"""Step-0 train states of N models, stacked along a model axis, by one cached compiled program per model kind.

Model i's root key is ``key(seed_i)``, split into (init key, loop key): its parameters and constants come from
the init key, its sampling keys from ``fold_in(loop key, step)``. One fit is N = 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from inr_utils.devices import MODEL_AXIS
from inr_utils.optim import build_optimizer
from inr_utils.programs import ONCE_COMPILER_OPTIONS, cached, model_key, training_key
from inr_utils.training import TrainState, create_train_state
from model_components.inrs import build_model


def seed_keys(seeds: Sequence[int]) -> np.ndarray:
    """Raw key data ``(N, ...)`` uint32 of ``jax.random.key(seed)`` for each seed (computed on the host from
    Python ints; placing numpy arrays on a mesh needs no compiled resharding program)."""
    unique = {seed: np.asarray(jax.random.key_data(jax.random.key(seed))) for seed in dict.fromkeys(seeds)}
    return np.stack([unique[seed] for seed in seeds])


def loop_key_data(seeds: Sequence[int]) -> np.ndarray:
    """Raw data ``(N, ...)`` of the loop keys ``split(key(seed))[1]``."""
    unique = {seed: np.asarray(jax.random.key_data(jax.random.split(jax.random.key(seed))[1]))
              for seed in dict.fromkeys(seeds)}
    return np.stack([unique[seed] for seed in seeds])


def _make_init(config: Any, batched: bool = True, flat: bool = True,
               ) -> Callable[[jax.Array, jax.Array], tuple[TrainState, jax.Array]]:
    """Jitted ``init(root_key_data (n, ...), lrs (n,)) -> (states, loop_key_data)`` of config's model, vmapped
    (``batched=False``: one model, no model axis), with the optimizer state of ``build_optimizer(flat=flat)``.
    Compiled with :data:`ONCE_COMPILER_OPTIONS` (it runs once), matching eager initialisation bit for bit."""
    model = build_model(config.model)

    def init_one(key_data: jax.Array, lr: jax.Array) -> tuple[TrainState, jax.Array]:
        init_key, loop_key = jax.random.split(jax.random.wrap_key_data(key_data))
        state = create_train_state(model, build_optimizer(config, lr, flat), init_key, config.model.in_dim)
        return state, jax.random.key_data(loop_key)

    return jax.jit(jax.vmap(init_one) if batched else init_one, compiler_options=ONCE_COMPILER_OPTIONS)


def init_program(config: Any, batched: bool = True) -> Callable[[jax.Array, jax.Array], tuple[TrainState, jax.Array]]:
    """:func:`_make_init` of ``config``, shared by later fits of the same model and training settings. The
    batched program (sweeps) builds the flattened optimizer state, the single one (fits) the plain one
    (see :func:`inr_utils.optim.build_optimizer`)."""
    return cached(("init", model_key(config.model), training_key(config), batched),
                  lambda: _make_init(config, batched, flat=batched))


def init_state(config: Any) -> tuple[TrainState, jax.Array]:
    """One model's step-0 state and loop key (no model axis), on the default device: :func:`init_states` of
    ``[config]`` without the model axis, the same values bit for bit."""
    state, key_data = init_program(config, batched=False)(jnp.asarray(seed_keys([config.seed])[0]),
                                                          jnp.float32(config.lr))
    return state, jax.random.wrap_key_data(key_data)


def init_states(configs: Sequence[Any]) -> tuple[TrainState, np.ndarray]:
    """Step-0 train states and loop keys of N configs, stacked along a leading model axis.

    Model i's parameters and constants come from its init key ``split(key(seed))[0]``, its loop key is
    ``split(key(seed))[1]``, and its optimizer state is :func:`inr_utils.optim.build_optimizer`'s with its lr.
    Configs with the same model config are initialised by one compiled, ``vmap``-ed function (reused by later
    calls, see :func:`inr_utils.programs.clear_program_cache`).

    Args:
      configs: validated ``FitConfig`` s with ``model.out_dim`` set to the signal's channels.

    Returns:
      ``(state, key_data)``: a :class:`TrainState` whose every leaf has a leading axis of size N (numpy), and
      the loop keys' raw data ``(N, ...)`` (``jax.random.wrap_key_data`` makes keys of it).
    """
    groups: dict[str, list[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault(model_key(config.model), []).append(i)
    root_keys = seed_keys([c.seed for c in configs])
    parts, order = [], []
    for indices in groups.values():
        init = init_program(configs[indices[0]])
        args = (jnp.asarray(root_keys[indices]), jnp.asarray([configs[i].lr for i in indices], jnp.float32))
        parts.append(jax.device_get(init(*args)))
        order.extend(indices)
    if len(parts) == 1:
        return parts[0]
    inverse = np.argsort(np.asarray(order), kind="stable")
    state, key_data = jax.tree.map(lambda *xs: np.concatenate(xs)[inverse], *parts)
    return state, key_data


def abstract_state_and_keys(config: Any, num_models: int, mesh: Mesh | None,
                            ) -> tuple[TrainState, jax.ShapeDtypeStruct]:
    """Shapes, dtypes and shardings (model axis over ``mesh``) of the stacked state and loop keys of
    ``num_models`` models of ``config``'s architecture, as :func:`init_states` makes them, without initialising
    anything (``jax.eval_shape`` traces the init; the real call then reuses the trace)."""
    init = init_program(config)
    key_data = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0)))
    state, loop_keys = jax.eval_shape(init, jax.ShapeDtypeStruct((num_models, *key_data.shape), key_data.dtype),
                                      jax.ShapeDtypeStruct((num_models,), jnp.float32))
    keys = jax.eval_shape(jax.random.wrap_key_data, loop_keys)
    if mesh is None:
        return state, keys
    sharding = NamedSharding(mesh, P(MODEL_AXIS))
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), (state, keys))
