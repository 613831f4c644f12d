"""Compiled programs: the cache of jitted functions shared by every fit and sweep, and compiler options.

A program depends on the model config, the training settings that shape the step (loss, schedule, sampler),
the data layout and the devices; seeds, learning rates, hyperparameter values and data do not change it. Keyed
by those, a later fit or sweep of the same kind gets the same jitted function back, and JAX's own cache then
skips tracing and compiling it again.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from jax.sharding import Mesh

#: XLA options of compilations that run once (initialisation). LLVM's full optimisation of the PRNG's hash
#: rounds costs seconds of compile time for microseconds of run time, and XLA:CPU's newer fusion emitters add
#: more (training chunks, by contrast, need them). Level 0 would compile faster still but drops fused
#: multiply-adds, so its uniform draws would differ in the last bit from eager (op-by-op) initialisation,
#: which these options match bit for bit.
ONCE_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False}


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


#: The programs of recent fits and sweeps (init, train step, chunks, evaluator).
PROGRAMS = ProgramCache(32)


def cached(key: Hashable, make: Callable[[], Any]) -> Any:
    """``PROGRAMS.get(key, make)``."""
    return PROGRAMS.get(key, make)


def clear_program_cache() -> None:
    """Forgets the jitted functions of earlier fits and sweeps (the next one traces and compiles afresh)."""
    PROGRAMS.clear()


def model_key(model_config: Any) -> str:
    """A model config as a hashable key (its JSON form)."""
    return json.dumps(model_config.to_dict(), sort_keys=True, default=str)


def training_key(config: Any) -> tuple:
    """What a train step depends on besides the model: loss, schedule shape, sampler (a ``FitConfig``)."""
    return (config.loss, config.steps, config.lr_schedule, config.final_lr_fraction, config.warmup_steps,
            config.batch_size, config.jitter, config.sampler)


def mesh_key(mesh: Mesh | None) -> tuple:
    """The devices and axis names of a mesh (``()`` for no mesh: the default device)."""
    if mesh is None:
        return ()
    return tuple(int(d.id) for d in mesh.devices.flat) + tuple(mesh.axis_names)
