"""Reconstruction losses ``loss(pred, target) -> scalar``, registered by name in :data:`LOSSES`.

Shapes must be equal: a loss between ``(n, 3)`` and ``(n, 1, 3)`` raises instead of silently broadcasting.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from model_components.registry import Registry

Loss = Callable[[jax.Array, jax.Array], jax.Array]
def check_same_shape(pred: jax.Array, target: jax.Array) -> None:
    """Raises ``ValueError`` naming both shapes unless they are equal (free under jit: shapes are static)."""
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}; "
            "reshape one of them (no broadcasting is done)"
        )


def mse_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Mean squared error over all elements: ``mean((pred - target)^2)``; float32 scalar."""
    check_same_shape(pred, target)
    return jnp.mean(jnp.square(pred.astype(jnp.float32) - target.astype(jnp.float32)))


def l1_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Mean absolute error over all elements; float32 scalar."""
    check_same_shape(pred, target)
    return jnp.mean(jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32)))


#: Loss name -> function: the explicit list of losses (``FitConfig(loss=...)``).
LOSSES: Registry[Loss] = Registry("loss", {"mse": mse_loss, "l1": l1_loss})
