"""Data parallelism for hypernetwork training: one mesh over every device of every process, the batch split along
its ``"data"`` axis, parameters and optimizer state replicated.

The same program runs on one device, on N devices of one host (GPUs, or CPU devices forced with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``) and on several hosts: each process starts with
:func:`initialize_distributed`, loads only its own rows of every global batch (``process_index`` /
``process_count`` of :class:`hypernetwork_utils.batches.Batches`), and :func:`global_batch` assembles the
global array from those rows (``jax.make_array_from_process_local_data``). XLA's SPMD partitioner turns the
mean loss over the global batch into per-device partial sums and an all-reduce of the gradients, so the
update every device applies is the one a single device computes on the whole batch (up to the order of the
floating-point sums).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from inr_utils.errors import InputError

__all__ = ["DATA_AXIS", "data_mesh", "initialize_distributed", "replicated", "batch_sharding", "replicate",
           "global_batch", "local_rows", "is_main_process", "SynchronizedStop"]

#: Name of the mesh axis the batch is split along.
DATA_AXIS = "data"


def initialize_distributed(coordinator: str, num_processes: int, process_id: int,
                           local_device_count: int | None = None) -> None:
    """Joins this process to a multi-process JAX run (``jax.distributed.initialize``); call it before any other
    JAX computation, in every process, with the same ``coordinator`` and ``num_processes``.

    On CPU, collectives between processes go through gloo (``jax_cpu_collectives_implementation``), which is
    set here; GPUs use NCCL without any setting.

    Args:
      coordinator: ``host:port`` of process 0 (which listens there), e.g. ``10.0.0.1:1234`` or ``localhost:1234``.
      num_processes: number of processes in the run.
      process_id: this process's index, ``0 <= process_id < num_processes``.
      local_device_count: CPU devices this process exposes (``jax_num_cpu_devices``; default: JAX's, one).

    Raises:
      InputError: a bad process count or index, or a malformed coordinator address.
    """
    host, sep, port = coordinator.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InputError(f"--coordinator must be HOST:PORT of process 0, e.g. localhost:12345, got {coordinator!r}")
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise InputError(f"--process-id must be in [0, {num_processes}) and --num-processes >= 1, got process "
                         f"{process_id} of {num_processes}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if local_device_count is not None:
        jax.config.update("jax_num_cpu_devices", local_device_count)
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh (:data:`DATA_AXIS`) over ``devices`` (default: ``jax.devices()``, every device of every
    process)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding of parameters and optimizer state: a full copy on every device of ``mesh``."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
    """The sharding of image batches: axis ``batch_axis`` (the batch B of ``(B, H, W, C)``, axis 1 of a chunk
    ``(k, B, H, W, C)``) split along :data:`DATA_AXIS`, everything else whole."""
    return NamedSharding(mesh, P(*([None] * batch_axis), DATA_AXIS))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """``tree`` (host or device arrays, identical in every process) as global arrays replicated over ``mesh``."""
    sharding = replicated(mesh)

    def one(x: Any) -> jax.Array:
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            # typed PRNG keys: their raw data travels, and a program on the mesh wraps it back
            data = jax.make_array_from_process_local_data(sharding, np.asarray(jax.random.key_data(x)))
            impl = jax.random.key_impl(x)
            return jax.jit(lambda d: jax.random.wrap_key_data(d, impl=impl), out_shardings=sharding)(data)
        return jax.make_array_from_process_local_data(sharding, np.asarray(x))

    return jax.tree.map(one, tree)


def local_rows(batch_size: int, mesh: Mesh) -> int:
    """Rows of each global batch this process loads: ``batch_size / process_count``.

    Raises:
      InputError: ``batch_size`` is not a multiple of the mesh's device count (every device takes an equal share).
    """
    devices = mesh.devices.size
    if batch_size % devices:
        raise InputError(f"the batch size {batch_size} does not split evenly over the {devices} devices; pass a "
                         f"--batch-size that is a multiple of {devices}")
    return batch_size // jax.process_count()


def global_batch(local: np.ndarray, mesh: Mesh, batch_axis: int = 1) -> jax.Array:
    """The global batch array from this process's rows ``local`` (its consecutive share of axis ``batch_axis``;
    process p holds rows ``[p * b, (p + 1) * b)``), sharded per :func:`batch_sharding`."""
    local = np.asarray(local)
    shape = list(local.shape)
    shape[batch_axis] *= jax.process_count()
    return jax.make_array_from_process_local_data(batch_sharding(mesh, batch_axis), local, tuple(shape))


def is_main_process() -> bool:
    """Whether this is process 0, the one that writes the run's files (checkpoints are written by all, see
    :func:`inr_utils.checkpoints.save_checkpoint`)."""
    return jax.process_index() == 0


class SynchronizedStop:
    """Callback that makes every process stop after the same chunk when any of them got Ctrl-C or SIGTERM.

    :class:`inr_utils.training.deferred_signals` (active in the engine's loop) turns a signal into a flag that
    the loop checks after the callbacks; with several processes, one that stops while the others run the next
    chunk would leave them waiting in its collectives. After every chunk this callback all-gathers the
    processes' flags and, when any is set, sets this process's too, so all of them save the same step and exit
    together. Put it last; with one process it does nothing.
    """

    def __call__(self, info: Any) -> None:
        if jax.process_count() == 1:
            return
        import signal

        from jax.experimental import multihost_utils

        flag = getattr(getattr(signal.getsignal(signal.SIGTERM), "__self__", None), "flag", None)
        local = np.asarray(flag is not None and flag.is_set(), np.int32)
        if multihost_utils.process_allgather(local).any() and flag is not None and not flag.is_set():
            flag.signum = signal.SIGTERM
            flag.set()
