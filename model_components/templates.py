"""Parameter templates: the shapes and dtypes of an INR's variables without initialising it, and the map
between a params pytree and one flat vector (what a hypernetwork emits).

    template = param_template(model_config("siren", width=64))   # shapes only: jax.eval_shape, no init
    template.size                                                 # scalars in "params"
    vector = template.flatten(variables["params"])                # (size,)
    params = template.unflatten(vector)                           # the pytree again
    params = template.unflatten(hyper_out)                        # hyper_out (B, size) -> leaves (B, *shape)

Layout of the vector: the leaves of the pytree in ``jax.tree_util`` order (nested dict keys sorted, so e.g.
``head/bias, head/kernel, layer_0/Linear_0/bias, ...``), each raveled in C order, concatenated. Leading axes
(a batch of models) are kept on both sides, so ``unflatten`` of ``(B, size)`` is the same as ``vmap``-ing it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from model_components.inrs import ModelConfig, build_model


@dataclasses.dataclass(frozen=True)
class TreeTemplate:
    """The shapes and dtypes of a pytree of arrays, and its flat-vector layout.

    Attributes:
      tree: the pytree with :class:`jax.ShapeDtypeStruct` leaves.
    """

    tree: Any

    @property
    def leaves(self) -> list[jax.ShapeDtypeStruct]:
        return jax.tree_util.tree_leaves(self.tree)

    @property
    def sizes(self) -> list[int]:
        """Scalars of each leaf, in vector order."""
        return [math.prod(leaf.shape) for leaf in self.leaves]

    @property
    def size(self) -> int:
        """Total number of scalars (the length of the flat vector)."""
        return sum(self.sizes)

    def _batch_shape(self, tree: Any) -> tuple[int, ...]:
        leaves, ref = jax.tree_util.tree_leaves(tree), self.leaves
        if jax.tree_util.tree_structure(tree) != jax.tree_util.tree_structure(self.tree):
            raise ValueError("the pytree does not have the template's structure (other layers or names?)")
        batch = None
        for leaf, want in zip(leaves, ref, strict=True):
            lead = leaf.ndim - len(want.shape)
            if lead < 0 or tuple(leaf.shape[lead:]) != tuple(want.shape):
                raise ValueError(f"a leaf of shape {tuple(leaf.shape)} does not end in the template's "
                                 f"{tuple(want.shape)}")
            if batch is not None and tuple(leaf.shape[:lead]) != batch:
                raise ValueError(f"leaves have different leading axes: {batch} and {tuple(leaf.shape[:lead])}")
            batch = tuple(leaf.shape[:lead])
        return batch or ()

    def flatten(self, tree: Any, dtype: Any = None) -> jax.Array:
        """``tree`` (leaves ``(*batch, *shape)``) -> ``(*batch, size)`` vector(s).

        Args:
          tree: a pytree of this template's structure; leaves may share extra leading axes (a model axis).
          dtype: dtype of the vector; default the leaves' common type (float32 for an INR's params).
        """
        batch = self._batch_shape(tree)
        leaves = jax.tree_util.tree_leaves(tree)
        if not leaves:
            return jnp.zeros((*batch, 0), dtype or jnp.float32)
        dtype = dtype or jnp.result_type(*leaves)
        return jnp.concatenate([jnp.reshape(leaf, (*batch, -1)).astype(dtype) for leaf in leaves], axis=-1)

    def unflatten(self, vector: jax.Array) -> Any:
        """``(*batch, size)`` vector(s) -> the pytree with leaves ``(*batch, *shape)`` in the template's dtypes."""
        vector = jnp.asarray(vector)
        if vector.ndim == 0 or vector.shape[-1] != self.size:
            raise ValueError(f"expected a vector of length {self.size} (last axis), got shape {tuple(vector.shape)}")
        batch, leaves, start = vector.shape[:-1], [], 0
        for leaf, size in zip(self.leaves, self.sizes, strict=True):
            leaves.append(vector[..., start:start + size].reshape(*batch, *leaf.shape).astype(leaf.dtype))
            start += size
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(self.tree), leaves)


@dataclasses.dataclass(frozen=True)
class ParamTemplate:
    """The variables of an INR as shapes: ``params`` (trained) and ``constants`` (every other collection).

    ``flatten`` / ``unflatten`` / ``size`` act on the params (what a hypernetwork emits); the constants have
    their own :class:`TreeTemplate` for the rare model whose constants are emitted too.

    Attributes:
      params: template of ``variables["params"]``.
      constants: template of the other collections, ``{"constants": ...}`` (empty when the model has none).
    """

    params: TreeTemplate
    constants: TreeTemplate

    @property
    def size(self) -> int:
        """Number of scalars in the params (the length of the flat vector)."""
        return self.params.size

    def flatten(self, params: Any) -> jax.Array:
        """Params pytree (leaves ``(*batch, *shape)``) -> ``(*batch, size)``; see :meth:`TreeTemplate.flatten`."""
        return self.params.flatten(params)

    def unflatten(self, vector: jax.Array) -> Any:
        """``(*batch, size)`` -> params pytree with leaves ``(*batch, *shape)``."""
        return self.params.unflatten(vector)


def param_template(model: nn.Module | ModelConfig, in_dim: int | None = None) -> ParamTemplate:
    """Shapes and dtypes of an INR's variables, traced with :func:`jax.eval_shape` (nothing is initialised).

    Args:
      model: a :class:`~model_components.inrs.ModelConfig` (built with ``build_model``) or a Flax module.
      in_dim: coordinate dimension d; taken from the config when ``model`` is one (required for a module).

    Returns:
      the :class:`ParamTemplate`.
    """
    if isinstance(model, ModelConfig):
        in_dim = model.in_dim if in_dim is None else in_dim
        model = build_model(model)
    if in_dim is None:
        raise ValueError("param_template of a module needs in_dim (the coordinate dimension)")
    shapes = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, in_dim), jnp.float32))
    shapes = dict(shapes)
    params = shapes.pop("params", {})
    return ParamTemplate(params=TreeTemplate(params), constants=TreeTemplate(shapes))
