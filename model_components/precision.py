"""Choosing the compute dtype of matrix products: ``"auto"`` -> bfloat16 where the hardware multiplies it
natively (GPUs, TPUs, x86 CPUs with AVX512-BF16 or AMX), float32 elsewhere (where bfloat16 is emulated and
slower)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from model_components.registry import Registry

#: Compute dtypes of matrix products by name (parameters stay float32); ``"auto"`` resolves to one of them.
DTYPES: Registry[type] = Registry("dtype", {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16})


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this x86 CPU advertises AVX512-BF16 or AMX-BF16 (Linux ``/proc/cpuinfo``; False elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_dtype(dtype: str) -> str:
    """``"auto"`` -> ``"bfloat16"`` or ``"float32"`` for the default JAX backend; other names unchanged."""
    if dtype != "auto":
        return dtype
    backend = jax.default_backend()
    if backend in ("gpu", "cuda", "rocm", "tpu"):
        return "bfloat16"
    return "bfloat16" if cpu_has_native_bf16() else "float32"
