"""Local-Global INRs (``"local_global"`` in :data:`model_components.inrs.MODELS`): croppable INRs whose hidden
layers are split into one small block per partition of the signal's domain, plus a global branch.

Paper: Ashkenazi & Treister, "Towards Croppable Implicit Neural Representations", NeurIPS 2024
(reference code: github.com/maorash/Local-Global-INRs, ``modules.py``).

The domain [-1, 1]^d is split into a grid of partitions, ``partitions = (g_0, ..., g_{d-1})`` cells per sample
axis, in the signal's axis order (``(16, 16)`` for an ``(H, W)`` image, ``(32,)`` for audio, ``(5, 8, 8)`` for a
``(T, H, W)`` video; see :mod:`inr_utils.grids` for the axis/coordinate convention: ``coords[..., 0]`` runs along
the last axis). Partition ``p`` (flat row-major index of its cell) owns the coordinates in its cell. Layer ``l``
(``l = 0 .. depth``) of the ``lg`` mode with ``fc_and_add``, for a point x of partition p, is

    g_l = sigma(G_l g_{l-1} + c_l)                      (global trunk, width ``global_width``, g_{-1} = x)
    h_l = sigma(W_l^p h_{l-1} + b_l^p) + sigma(Q_l g_l + e_l)     (local width ``width``, h_{-1} = x)
    y   = V^p h_depth + a^p + output_offset            (per-partition linear head)

where ``sigma`` is the wrapped hidden layer's activation (SIREN's ``sin(omega0 .)`` by default; any layer of
:data:`catalog.LAYERS` by name, e.g. ``finer``), the ``W^p, b^p, V^p, a^p`` are the partition's *local* weights
(a locally connected layer: kernels ``(P, fan_in, width)``, biases ``(P, width)``) and ``G, c, Q, e`` are
*global* (shared). ``concat_and_fc`` replaces the sum by ``h_l = sigma(A [sigma(W_l^p h_{l-1} + b_l^p); g_l] +
a)`` with one shared A for every layer (as the reference code's ``agg_func``). Mode ``lc`` drops the global
branch (one SIREN per partition), mode ``mlp`` is a plain MLP of ``depth + 1`` global layers and a linear head.

Two ways to evaluate one model (same values; tested):

* ``model.apply(variables, coords (..., d)) -> (..., C)``, the INR contract: each point is routed to its
  partition by position (points outside [-1, 1]^d to the nearest border cell) and multiplied by its partition's
  gathered weights. Correct for any coordinates and every JAX transformation, but it gathers a weight matrix
  per point: use it for arbitrary points, not for training.
* ``model.apply(variables, coords (..., K, d), method="partitioned") -> (..., K, C)``: axis -2 indexes the K
  partitions the model holds (in the order of ``kept``), every leading index is one sample of each: all K
  local layers run as one batched product (``dot_general`` with a partition batch dimension, through
  :func:`layers.mixed_precision_matmul` by ``vmap``). :mod:`inr_utils.partitions` arranges a signal in this
  "partition-interleaved" order (row ``r`` of a flat ``(m K, d)`` array belongs to partition slot ``r mod K``)
  and samples a balanced batch, so ``fit`` trains and evaluates through this path.

Cropping keeps a subset of the partitions (:func:`inr_utils.partitions.crop`): ``kept`` lists the flat indices
(of the full grid) whose local weights the model holds, slot s holding partition ``kept[s]``; points of a
partition that was cropped away are decoded by slot 0 (meaningless values; the model no longer knows them).

Where we follow the reference code and where we differ:

* as there: the per-partition blocks, the global projections ``Q_l`` (activated, one per layer), the shared
  aggregation layer of ``concat_and_fc``, the linear local head, SIREN's first-layer init for the first local
  and global layers and its hidden init elsewhere, ``depth`` hidden layers after the first;
* different: partitions are addressed by position (the reference reshapes the signal into blocks and never sees
  coordinates of other shapes); ``width`` is the local width *per partition* (the reference's
  ``hidden_features`` is the total, ``width * P``); any layer type of the registry (not only sine, and each
  layer's own initialisation, e.g. FINER's first bias); an optional coordinate encoding before both branches;
  cropping removes the parameters (the reference zeroes them); an output offset of 0.5 (functa/ours: an
  untrained network starts at mid-grey).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from model_components.catalog import ENCODINGS, LAYERS
from model_components.incode import conditioned_call
from model_components.layers import Linear
from model_components.options import check_component_options, route_flat_overrides
from model_components.precision import DTYPES, resolve_dtype

if TYPE_CHECKING:
    from model_components.inrs import ModelConfig

#: Floats of gathered weights the routed path materialises at once per layer (it runs larger point sets in
#: sequential chunks of this many floats).
ROUTED_CHUNK_FLOATS = 1 << 22
#: The modes: Local-Global, locally connected only (a SIREN per partition), plain MLP.
MODES = ("lg", "lc", "mlp")
#: How the global features join the local ones at every layer.
COMBINES = ("fc_and_add", "concat_and_fc")


def full_grid(partitions: Sequence[int], in_dim: int) -> tuple[int, ...]:
    """The partition grid of ``partitions`` for ``in_dim`` sample axes (``()`` means one cell per axis)."""
    return tuple(int(g) for g in partitions) if partitions else (1,) * in_dim


def partition_index(coords: jax.Array, grid: Sequence[int]) -> jax.Array:
    """Flat row-major index of the grid cell of each point: ``coords (..., d)`` in [-1, 1]^d -> ``(...,)`` int32.

    Sample axis ``a`` (of ``d``) is read from coordinate ``d - 1 - a`` (``coords[..., 0]`` runs along the last
    axis); cell ``i_a = floor((x + 1) / 2 * g_a)``, clipped to ``[0, g_a - 1]`` (points outside the domain go to
    the border cell). For sample centres of a grid whose size is a multiple of ``grid`` this is the block the
    sample lies in (centres are half a sample away from every cell boundary).
    """
    d = len(grid)
    coords = jax.lax.stop_gradient(coords)
    flat = jnp.zeros(coords.shape[:-1], jnp.int32)
    for axis, g in enumerate(grid):
        x = coords[..., d - 1 - axis]
        cell = jnp.clip(jnp.floor((x + 1.0) * (0.5 * g)), 0, g - 1).astype(jnp.int32)
        flat = flat * g + cell
    return flat


def _stacked_init(module: nn.Module, fan_in: int, count: int):
    """Init function ``key -> params`` of ``count`` independent copies of ``module`` (leading axis ``count``)."""

    def init(key: jax.Array) -> Any:
        keys = jax.random.split(key, count)
        return jax.vmap(lambda k: module.init(k, jnp.zeros((1, fan_in), jnp.float32))["params"])(keys)

    return init


class LocalGlobalINR(nn.Module):
    """Local-Global INR (see the module docstring for the formula and the paper).

    Attributes:
      partitions: cells per sample axis, in the signal's axis order; ``()``: one cell per axis.
      kept: flat indices (of the full grid) of the partitions whose local weights the model holds, ascending;
        ``()``: all of them.
      in_dim: coordinate dimension d.
      mode: ``lg``, ``lc`` or ``mlp``.
      combine: ``fc_and_add`` or ``concat_and_fc`` (mode ``lg``).
      layer: hidden layer type, a name in :data:`catalog.LAYERS` (``sine``, ``finer``, ...).
      layer_kwargs: that layer's options; first_layer_kwargs: overrides for the first layer (local and global).
      encoding: coordinate encoding before both branches (name in :data:`catalog.ENCODINGS`), encoding_kwargs
        its options; routing always uses the raw coordinates.
      width: local hidden width of every partition (``mlp`` mode: the MLP's width).
      global_width: width of the global trunk.
      depth: hidden layers after the first.
      out_dim: signal channels C.
      output_offset: constant added to the head (0.5: an untrained network is mid-grey).
      dtype: compute dtype name of the products (parameters are float32).

    Shapes: ``__call__``: ``(..., d) -> (..., C)``; ``partitioned``: ``(..., K, d) -> (..., K, C)`` with
    ``K = len(kept) or prod(partitions)``. Params: ``local_<l>``, ``head`` with a leading axis K; ``global_<l>``,
    ``project_<l>``, ``combine`` without.
    """

    partitions: tuple[int, ...] = ()
    kept: tuple[int, ...] = ()
    in_dim: int = 2
    mode: str = "lg"
    combine: str = "concat_and_fc"
    layer: str = "sine"
    layer_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    first_layer_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    encoding: str = "none"
    encoding_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    width: int = 16
    global_width: int = 32
    depth: int = 3
    out_dim: int = 3
    output_offset: float = 0.5
    dtype: str = "float32"

    @property
    def grid(self) -> tuple[int, ...]:
        """The full partition grid (cells per sample axis)."""
        return full_grid(self.partitions, self.in_dim)

    @property
    def num_slots(self) -> int:
        """K, the number of partitions whose local weights the model holds."""
        return len(self.kept) if self.kept else math.prod(self.grid)

    def partitioned(self, coords: jax.Array) -> jax.Array:
        """Grouped evaluation: ``coords (..., K, d) -> (..., K, C)``, point ``[..., s, :]`` decoded by slot s."""
        return self(coords, grouped=True)

    def _slot_of(self, coords: jax.Array) -> jax.Array:
        flat = partition_index(coords, self.grid)
        if not self.kept:
            return flat
        lookup = np.zeros(math.prod(self.grid), np.int32)  # cropped-away partitions read slot 0
        lookup[np.asarray(self.kept)] = np.arange(len(self.kept), dtype=np.int32)
        return jnp.asarray(lookup)[flat]

    def _local(self, name: str, module: nn.Module, x: jax.Array, slot: jax.Array | None,
               condition: tuple[jax.Array, ...] = ()) -> jax.Array:
        """The locally connected copy of ``module``: params ``(K, ...)``; grouped ``x (K, m, n) -> (K, m, w)``
        (one batched product), or routed ``x (M, n)`` with ``slot (M,)`` (weights gathered per point);
        ``condition``: extra arguments shared by every partition (INCODE's a, b, c, d)."""
        fan_in = x.shape[-1]
        params = self.param(name, _stacked_init(module, fan_in, self.num_slots))
        shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, fan_in), jnp.float32)))
        others = {c: self.variable(c, name, lambda c=c: module.init(jax.random.key(0),
                                                                      jnp.zeros((1, fan_in), jnp.float32))[c]).value
                  for c in shapes if c != "params"}

        def one(p: Any, h: jax.Array) -> jax.Array:
            return module.apply({"params": p, **others}, h, *condition)

        if slot is None:
            return jax.vmap(one)(params, x)

        def routed(index: jax.Array, h: jax.Array) -> jax.Array:
            return jax.vmap(one)(jax.tree.map(lambda a: a[index], params), h)

        # Gathered weights take (points x weights of one partition) floats: bound that by running the points in
        # sequential chunks (lax.map composes with every transformation) when there are many of them.
        rows = max(1, ROUTED_CHUNK_FLOATS // sum(a[0].size for a in jax.tree.leaves(params)))
        count = x.shape[0]
        if count <= rows:
            return routed(slot, x)
        pad = (-count) % rows
        slots = jnp.pad(slot, (0, pad)).reshape(-1, rows)
        h = jnp.pad(x, ((0, pad), (0, 0))).reshape(-1, rows, fan_in)
        out = jax.lax.map(lambda args: routed(*args), (slots, h))
        return out.reshape(-1, *out.shape[2:])[:count]

    @nn.compact
    def __call__(self, coords: jax.Array, grouped: bool = False) -> jax.Array:
        if not jnp.issubdtype(coords.dtype, jnp.floating):
            raise TypeError(f"coords must be a float array (..., in_dim), got dtype {coords.dtype}")
        if coords.shape[-1] != self.in_dim:
            raise ValueError(f"coords have {coords.shape[-1]} components, the model expects in_dim={self.in_dim}")
        if grouped:
            if coords.ndim < 2 or coords.shape[-2] != self.num_slots:
                raise ValueError(f"partitioned coords must be (..., {self.num_slots}, {self.in_dim}), one point per "
                                 f"partition slot along axis -2; got {coords.shape}")
            # partition-major (K, m, d): every layer's batched product then has its batch dimension first
            x, slot = jnp.swapaxes(coords.reshape(-1, self.num_slots, self.in_dim), 0, 1), None
        else:
            x = coords.reshape(-1, self.in_dim)
            slot = self._slot_of(x)
        compute_dtype = None if self.dtype == "float32" else DTYPES[self.dtype]
        layer_cls = LAYERS.get(self.layer)

        def make(features: int, i: int, local: bool, name: str | None = None) -> nn.Module:
            kwargs = {**self.layer_kwargs, **(self.first_layer_kwargs if i == 0 else {})}
            parent = {"parent": None} if local else {"name": name}
            return layer_cls(features, is_first=i == 0, dtype=compute_dtype, **parent, **kwargs)

        h = ENCODINGS.get(self.encoding)(**self.encoding_kwargs, name="encoding")(x)
        # a layer conditioned on the signal (INCODE): one condition for every local and global layer
        condition = conditioned_call(layer_cls, self.layer_kwargs, self.in_dim, self.out_dim)
        head_kernel, head_bias = layer_cls(self.width, parent=None, **self.layer_kwargs).head_initializers()
        head = Linear(self.out_dim, kernel_init=head_kernel, bias_init=head_bias, parent=None)
        if self.mode == "mlp":
            for i in range(self.depth + 1):
                h = make(self.width, i, False, f"global_{i}")(h, *condition)
            out = Linear(self.out_dim, kernel_init=head_kernel, bias_init=head_bias, name="head")(h)
            return self._finish(out + self.output_offset, coords, grouped)
        g = h
        combine = None
        if self.mode == "lg" and self.combine == "concat_and_fc":
            combine = make(self.width, 1, False, "combine")
        for i in range(self.depth + 1):
            h = self._local(f"local_{i}", make(self.width, i, True), h, slot, condition)
            if self.mode != "lg":
                continue
            g = make(self.global_width, i, False, f"global_{i}")(g, *condition)
            if combine is None:
                h = h + make(self.width, 1, False, f"project_{i}")(g, *condition)
            else:
                h = combine(jnp.concatenate([h, g], axis=-1), *condition)
        if jnp.iscomplexobj(h):  # complex layers (WIRE): the head reads real and imaginary parts
            h = jnp.concatenate([h.real, h.imag], axis=-1)
        out = self._local("head", head, h, slot) + self.output_offset
        return self._finish(out, coords, grouped)

    def _finish(self, out: jax.Array, coords: jax.Array, grouped: bool) -> jax.Array:
        """``(K, m, C)`` (grouped) or ``(M, C)`` values back to the coords' leading axes."""
        if grouped:
            out = jnp.swapaxes(out, 0, 1)
        return out.reshape(*coords.shape[:-1], self.out_dim)


#: Flat keyword names accepted by ``model_config`` for options of the wrapped layer (name -> (field, option)).
OPTION_ALIASES: dict[str, tuple[str, str]] = {
    "first_omega0": ("first_layer_options", "omega0"),
    "fast_sine": ("layer_options", "fast"),
}


@dataclasses.dataclass(frozen=True)
class LocalGlobalOptions:
    """Options of the ``local_global`` architecture (:class:`LocalGlobalINR`).

    Attributes:
      partitions: partition cells per sample axis in the signal's axis order (``(16, 16)`` image, ``(32,)``
        audio, ``(5, 8, 8)`` video); ``()`` is one cell per axis. Its length must equal ``in_dim``, and a
        signal fitted by :func:`inr_utils.fitting.fit` must have a multiple of ``partitions[a]`` samples along
        axis a (:func:`inr_utils.partitions.auto_partition` chooses it from a partition size and a budget).
      kept: flat indices of the partitions the model holds (set by cropping and extension); ``()``: all.
      mode: ``lg`` (Local-Global), ``lc`` (a SIREN per partition), ``mlp`` (plain MLP, no partitions).
      combine: ``concat_and_fc`` (concatenated, then one shared layer; the reference code's default) or
        ``fc_and_add`` (global features projected to the local width and added).
      layer / layer_options / first_layer_options: the wrapped hidden layer by name in :data:`catalog.LAYERS`
        and its options (as for the MLP).
      encoding / encoding_options: coordinate encoding (default none: raw coordinates, as SIREN).
      width: local hidden width per partition (``mlp``: the MLP's width).
      global_width: global trunk width (mode ``lg``).
      depth: hidden layers after the first.
      overlaps: samples per sample axis by which each partition's training block extends into its neighbours
        (``()``: none); a training setting read by :mod:`inr_utils.partitions` (it removes seams); every sample
        is still decoded by its own partition.
      output_offset: constant added to the head.
    """

    partitions: tuple[int, ...] = ()
    kept: tuple[int, ...] = ()
    mode: str = "lg"
    combine: str = "concat_and_fc"
    layer: str = "sine"
    layer_options: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"omega0": 30.0})
    first_layer_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    encoding: str = "none"
    encoding_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    width: int = 16
    global_width: int = 32
    depth: int = 3
    overlaps: tuple[int, ...] = ()
    output_offset: float = 0.5

    def grid(self, in_dim: int) -> tuple[int, ...]:
        """The full partition grid for ``in_dim`` sample axes."""
        return full_grid(self.partitions, in_dim)

    def partition_layout(self, config: ModelConfig) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None:
        """``(grid, kept, overlaps)`` (kept: the slots' flat indices, overlaps per axis) for the partition-major
        training of :mod:`inr_utils.partitions`, or ``None`` for mode ``mlp`` (an ordinary INR)."""
        if self.mode == "mlp":
            return None
        self.check_dims(config.in_dim)
        grid = self.grid(config.in_dim)
        kept = tuple(self.kept) if self.kept else tuple(range(math.prod(grid)))
        overlaps = tuple(self.overlaps) if self.overlaps else (0,) * config.in_dim
        return grid, kept, overlaps

    def validate(self, config: ModelConfig) -> None:
        """Raises ``ValueError`` naming the bad option and the fix (field types are already checked)."""
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of: {', '.join(MODES)}")
        if self.combine not in COMBINES:
            raise ValueError(f"unknown combine {self.combine!r}; choose one of: {', '.join(COMBINES)}")
        encoding_cls, layer_cls = ENCODINGS.get(self.encoding), LAYERS.get(self.layer)
        for name in ("width", "global_width"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.depth < 0:
            raise ValueError(f"depth must be >= 0, got {self.depth}")
        if any(g <= 0 for g in self.partitions):
            raise ValueError(f"partition counts must be positive, got {tuple(self.partitions)}")
        if any(o < 0 for o in self.overlaps):
            raise ValueError(f"overlaps must be non-negative sample counts (one per axis), got {tuple(self.overlaps)}")
        total = math.prod(self.grid(len(self.partitions) or config.in_dim))
        if self.kept and (list(self.kept) != sorted(set(self.kept)) or self.kept[0] < 0 or self.kept[-1] >= total):
            raise ValueError(f"kept must list distinct partition indices in [0, {total}) in ascending order, got "
                             f"{tuple(self.kept)}")
        check_component_options(self, layer_cls, encoding_cls)

    def check_dims(self, in_dim: int) -> None:
        """Raises ``ValueError`` unless ``partitions`` and ``overlaps`` have one entry per sample axis (checked
        when the model is built, since ``fit`` sets ``in_dim`` from the signal after the config is made)."""
        if self.partitions and len(self.partitions) != in_dim:
            raise ValueError(f"the partition grid {tuple(self.partitions)} has {len(self.partitions)} axes but the "
                             f"signal has {in_dim} sample axes; give one partition count per sample axis")
        if self.overlaps and len(self.overlaps) != in_dim:
            raise ValueError(f"overlaps {tuple(self.overlaps)} has {len(self.overlaps)} entries but the signal has "
                             f"{in_dim} sample axes; give one overlap per sample axis")

    def build(self, config: ModelConfig) -> LocalGlobalINR:
        """The Flax module of ``config`` (whose options are these).

        Raises:
          ValueError: ``partitions`` or ``overlaps`` of another length than ``config.in_dim``.
        """
        self.check_dims(config.in_dim)
        return LocalGlobalINR(partitions=tuple(self.partitions), kept=tuple(self.kept), in_dim=config.in_dim,
                              mode=self.mode, combine=self.combine, layer=self.layer,
                              layer_kwargs=dict(self.layer_options), first_layer_kwargs=dict(self.first_layer_options),
                              encoding=self.encoding, encoding_kwargs=dict(self.encoding_options), width=self.width,
                              global_width=self.global_width, depth=self.depth, out_dim=config.out_dim,
                              output_offset=self.output_offset, dtype=resolve_dtype(config.dtype))

    @classmethod
    def route_overrides(cls, options: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` updated by flat ``overrides``: option fields by name (switching ``layer`` resets its
        options), options of the wrapped layer or encoding by their own name (``omega0=20``), or an alias of
        :data:`OPTION_ALIASES`; lists become tuples.

        Raises:
          ValueError: a name that is none of these, listing the valid ones.
        """
        layer_name = overrides.get("layer", options.get("layer", cls.layer))
        if "layer_options" not in options:  # a layer's own defaults only for the default layer
            options = {**options, "layer_options": dict(cls().layer_options) if layer_name == cls.layer else {}}
        values = route_flat_overrides(cls, options, overrides, OPTION_ALIASES, LAYERS, ENCODINGS, "local_global")
        return values


_SIREN = {"layer": "sine", "layer_options": {"omega0": 30.0}, "first_layer_options": {"omega0": 30.0}}
_FINER = {"layer": "finer", "layer_options": {"omega0": 30.0}, "first_layer_options": {"omega0": 30.0}}

#: Model presets of this architecture (listed in :data:`model_components.presets.MODEL_PRESETS`). float32 as
#: SIREN's preset (omega0 = 30 amplifies bfloat16 rounding).
PRESETS: dict[str, dict[str, Any]] = {
    "lg_siren": dict(architecture="local_global", mode="lg", combine="concat_and_fc", width=16, global_width=32,
                     depth=3, dtype="float32", **_SIREN),
    "lg_siren_add": dict(architecture="local_global", mode="lg", combine="fc_and_add", width=16, global_width=32,
                         depth=3, dtype="float32", **_SIREN),
    "lc_siren": dict(architecture="local_global", mode="lc", width=16, depth=3, dtype="float32", **_SIREN),
    "lg_finer": dict(architecture="local_global", mode="lg", combine="concat_and_fc", width=16, global_width=32,
                     depth=3, dtype="float32", **_FINER),
    "lc_finer": dict(architecture="local_global", mode="lc", width=16, depth=3, dtype="float32", **_FINER),
}
