"""Devices: the one-axis mesh the model axis is sharded over, and splitting a CPU into one device per core."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

#: Name of the mesh axis the model axis is sharded over.
MODEL_AXIS = "models"


def _backends_started() -> bool:
    try:
        from jax._src import xla_bridge
        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # a JAX without the probe: assume not started
        return False


def use_cpu_cores(count: int | None = None) -> bool:
    """Splits the host CPU into ``count`` JAX devices (default: one per core) so that
    :func:`inr_utils.sweeps.fit_many`, which shards its model axis over all devices, trains a share of the
    models on every core.

    On a CPU, JAX exposes one device by default and a batched program then runs its ops one after the other,
    each using what parallelism XLA finds inside it; small INRs leave cores idle that way. Single-model work
    is unaffected: it runs on the first device and still uses every core for large ops. Other platforms
    (GPUs) are not touched.

    Must run before JAX initialises its backends (before the first JAX computation), typically right after
    a script's imports. Changes nothing when the count was already chosen (``XLA_FLAGS`` with
    ``--xla_force_host_platform_device_count``, or ``jax_num_cpu_devices``); called too late, it changes
    nothing and warns (``RuntimeWarning``) that JAX has already started.

    Returns:
      whether the setting was applied.
    """
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "") or jax.config.jax_num_cpu_devices > 0:
        return False
    if _backends_started():
        warnings.warn(f"use_cpu_cores() called after JAX started: it still has {len(jax.devices())} device(s); "
                      "call it before the first JAX computation (right after the imports)", RuntimeWarning,
                      stacklevel=2)
        return False
    try:
        jax.config.update("jax_num_cpu_devices", max(1, count or os.cpu_count() or 1))
    except RuntimeError as err:  # backends already initialised
        warnings.warn(f"use_cpu_cores() had no effect ({err}); call it before the first JAX computation",
                      RuntimeWarning, stacklevel=2)
        return False
    return True


def model_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh (:data:`MODEL_AXIS`) over ``devices`` (default: all of ``jax.devices()``)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (MODEL_AXIS,))


def padded_count(num_models: int, mesh: Mesh | None) -> int:
    """The smallest multiple of the mesh's device count that is >= ``num_models`` (``num_models`` without a mesh)."""
    d = 1 if mesh is None else mesh.devices.size
    return -(-num_models // d) * d


def put(tree: Any, mesh: Mesh | None, spec: P) -> Any:
    """``tree`` placed on ``mesh`` with ``spec`` (on the default device without a mesh)."""
    if mesh is None:
        return jax.device_put(tree)
    return jax.device_put(tree, NamedSharding(mesh, spec))
