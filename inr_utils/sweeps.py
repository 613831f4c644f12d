"""Many INRs at once: N fits of equal shapes trained by one compiled program, ``vmap``-ed over a model axis.

A hyperparameter sweep or a collection of images fitted one by one spends most of its time on things that do
not scale with the work: compilation (once per fit), dispatch of small kernels and host round trips. Here the
N train states (identical shapes) are stacked along a leading *model axis*; the library's own pure train step
(:func:`inr_utils.training.make_train_step`) and chunk (:func:`inr_utils.training.make_train_chunk`, a
``lax.scan`` over steps) are ``jax.vmap``-ed over that axis and compiled once. Small per-model matrix products
become batched ones, and every elementwise kernel works on N times more data per launch.

What may differ between the models of one sweep (everything that keeps the parameter shapes and the apply
function):
  * the seed (initialisation and sampling keys, exactly as :func:`inr_utils.fitting.fit` derives them);
  * the peak learning rate: the optimizer keeps it in its state (:func:`scale_by_peak_lr`), so it is an
    array with a model axis rather than a constant of the compiled program;
  * layer hyperparameters stored as variables (SIREN's omega0, ... see
    :func:`model_components.layers.hyperparameter`) and the Gaussian Fourier-feature matrix B (so its scale
    sigma): each model is initialised from its own :class:`ModelConfig` and the variables are stacked;
  * the signal: N images of one size ``(N, H, W, C)``, or one shared ``(H, W, C)`` image.
Everything else (architecture, steps, batch size, schedule shape, loss, ...) is shared; configs that differ in
it are refused with a ``ValueError`` (:class:`InputError`) naming the field.

Each model's run is the run :func:`inr_utils.fitting.fit` makes for its config (same keys, same steps, same
optimizer arithmetic), up to float rounding of the batched products (tests check 1e-4 relative).

Devices: the model axis is sharded over all devices of a one-axis :class:`jax.sharding.Mesh` (axis name
:data:`MODEL_AXIS`; ``NamedSharding(mesh, P("models"))`` for states, keys and per-model data, a shared image
replicated), each device training its own models with no communication (``jax.shard_map``). N need not be
divisible by the device count: the sweep is padded with copies of the last model up to the next multiple,
and the copies are dropped from the result (they cost compute, so prefer multiples). On one device this is
the plain ``vmap`` program. On a CPU, :func:`use_cpu_cores` (called before JAX starts) makes one device per
core, so every core trains its share of the models.

Speed on small INRs (measured on a 2-core CPU, 64 SIRENs of width 32 on 32x32 images, 500 steps: 3.7-4.0 s
in all, from 8.2 s before these measures): one CPU device per core (training 5.7 s -> 2.8 s); the
coordinates get a model axis too, so that activations are model-major and never transposed between steps (a
third less time a step); a device trains its models in small blocks whose activations stay in cache
(:func:`make_sweep_chunk`); the first chunk compiles in a background thread while the models are initialised,
and the initialisation compiles with cheap XLA options (:data:`ONCE_COMPILER_OPTIONS`). All steps of a chunk
are one ``lax.scan``; host work (NaN checks, evaluation, progress) happens between chunks only, so use large
``steps_per_call``.

Not covered: checkpoints (a sweep is one call; ``fit_many(state=...)`` continues from a result's state),
and models differing in shapes (run one sweep per architecture).

Typical use::

    configs, labels = sweep_grid(FitConfig(model=model_config("siren"), batch_size=None), seed=[0, 1],
                                 lr=[1e-4, 1e-3], omega0=[20.0, 30.0])        # 8 models
    result = fit_many(configs, image)                                         # or images (8, H, W, C)
    result.psnr                                                               # (8,) dB
    render(result.model.apply, unstack(result, 3), 512, 512)                  # model 3 at any size
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import os
import pickle
import textwrap
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from inr_utils.callbacks import History
from inr_utils.config import FitConfig
from inr_utils.errors import InputError
from inr_utils.grids import make_grid, pixel_centers
from inr_utils.losses import LOSSES
from inr_utils.samplers import PixelData, make_sampler
from inr_utils.tables import to_csv, to_markdown
from inr_utils.training import (
    ONCE_COMPILER_OPTIONS,
    ProgramCache,
    TrainingInterrupted,
    TrainState,
    create_train_state,
    deferred_sigint,
    make_lr_schedule,
    make_train_chunk,
    make_train_step,
    merge_variables,
    tree_all_finite,
)
from model_components.inrs import MLPINR, ModelConfig, build_model, model_config

#: Name of the mesh axis the model axis is sharded over.
MODEL_AXIS = "models"

#: FitConfig fields every model of a sweep shares (they shape the compiled program or the step count).
SHARED_FIELDS = ("steps", "batch_size", "lr_schedule", "final_lr_fraction", "warmup_steps", "loss", "jitter",
                 "steps_per_call")


# --------------------------------------------------------------------------------------------- optimizer


class PeakLearningRateState(NamedTuple):
    """State of :func:`scale_by_peak_lr`.

    Attributes:
      lr: float32 scalar, the model's peak learning rate (``(N,)`` once a sweep stacks the states).
    """

    lr: jax.Array


def scale_by_peak_lr(lr: float | jax.Array) -> optax.GradientTransformation:
    """Multiplies updates by ``-lr``, with ``lr`` kept in the optimizer state instead of the program.

    ``optax.scale(-lr)`` bakes ``lr`` into the compiled update; here it is a state leaf, so models with
    different learning rates share one update function and their stacked states carry an ``(N,)`` array.

    Args:
      lr: the peak learning rate (a Python float, or a traced scalar inside a vmapped init).
    """

    def init(params: Any) -> PeakLearningRateState:
        del params
        return PeakLearningRateState(jnp.asarray(lr, jnp.float32))

    def update(updates: Any, state: PeakLearningRateState, params: Any = None) -> tuple[Any, PeakLearningRateState]:
        del params
        return jax.tree.map(lambda u: (-state.lr).astype(u.dtype) * u, updates), state

    return optax.GradientTransformation(init, update)


def build_sweep_optimizer(config: FitConfig, lr: float | jax.Array | None = None) -> optax.GradientTransformation:
    """Adam whose peak learning rate lives in the optimizer state; otherwise :func:`fitting.build_optimizer`.

    ``optax.adam(schedule)`` is ``chain(scale_by_adam(), scale_by_schedule(-schedule))``; this is
    ``chain(scale_by_adam(), scale_by_schedule(relative), scale_by_peak_lr(lr))`` with ``relative`` the
    config's schedule for a peak of 1 (warm-up, cosine or exponential decay), so ``lr * relative(step)`` is the
    same learning rate (identical arithmetic for the constant schedule; within float rounding otherwise).
    The chain runs on each model's parameters raveled into one vector (``optax.flatten``, so the moments in
    the state are flat vectors): a few update kernels instead of several per parameter array, which compile
    faster (training program of 16 SIRENs 2-32-32-3: 0.67 -> 0.59 s here) and give the same values.

    Args:
      config: supplies the schedule (``steps``, ``lr_schedule``, ``final_lr_fraction``, ``warmup_steps``).
      lr: peak learning rate; default ``config.lr``.
    """
    relative = make_lr_schedule(1.0, config.steps, config.lr_schedule, config.final_lr_fraction,
                                config.warmup_steps)
    return optax.flatten(optax.chain(optax.scale_by_adam(), optax.scale_by_schedule(relative),
                                     scale_by_peak_lr(config.lr if lr is None else lr)))


# --------------------------------------------------------------------------------------------- configs


def sweep_grid(base: FitConfig, **axes: Sequence[Any]) -> tuple[list[FitConfig], list[dict[str, Any]]]:
    """The cartesian product of hyperparameter values as a list of configs (first axis slowest).

    Args:
      base: the config every model starts from.
      **axes: name -> values. Names are :class:`FitConfig` fields (``seed``, ``lr``) or model settings
        understood by :func:`model_components.inrs.model_config` (``omega0``, ``fourier_scale``, ...).

    Returns:
      ``(configs, labels)``: one validated config per combination and the dict of swept values of each.

    Raises:
      InputError: an empty axis or an unknown name.
    """
    fit_fields = {f.name for f in dataclasses.fields(FitConfig)} - {"model"}
    for name, values in axes.items():
        if len(values) == 0:
            raise InputError(f"sweep axis {name!r} has no values; give at least one")
    configs, labels = [], []
    for combo in itertools.product(*axes.values()):
        label = dict(zip(axes, combo, strict=True))
        fit_values = {k: v for k, v in label.items() if k in fit_fields}
        model_values = {k: v for k, v in label.items() if k not in fit_fields}
        try:
            model = model_config(base=base.model, **model_values) if model_values else base.model
        except ValueError as err:
            raise InputError(str(err)) from None
        configs.append(dataclasses.replace(base, model=model, **fit_values).validate())
        labels.append(label)
    return configs, labels


def _flat_dict(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flat_dict(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


def _differing_fields(a: ModelConfig, b: ModelConfig) -> str:
    """``"model.width 64 vs 32, model.layer_options.activation 'tanh' vs 'relu'"``: the fields where model
    config ``a`` differs from ``b``, with a's value first."""
    fa, fb = _flat_dict(a.to_dict()), _flat_dict(b.to_dict())
    names = sorted(set(fa) | set(fb))
    missing = _Unset()
    diffs = [f"model.{k} {fa.get(k, missing)!r} vs {fb.get(k, missing)!r}" for k in names
             if fa.get(k, missing) != fb.get(k, missing)]
    return ", ".join(diffs) or "no config field (the image channels?)"


def _model_key(config: ModelConfig) -> str:
    return json.dumps(config.to_dict(), sort_keys=True, default=str)


def _resolve_configs(configs: FitConfig | Sequence[FitConfig], seeds: Sequence[int] | None,
                     lrs: Sequence[float] | None, num_images: int | None, num_models: int | None) -> list[FitConfig]:
    """One validated config per model: ``configs`` broadcast to N, with ``seeds``/``lrs`` substituted."""
    counts = {}
    if not isinstance(configs, FitConfig):
        configs = list(configs)
        counts["configs"] = len(configs)
    for name, values in (("seeds", seeds), ("lrs", lrs)):
        if values is not None:
            counts[name] = len(values)
    if num_images is not None:
        counts["images"] = num_images
    if num_models is not None:
        counts["num_models"] = num_models
    if len(set(counts.values())) > 1:
        raise InputError(f"the number of models is ambiguous: {', '.join(f'{k}={v}' for k, v in counts.items())}; "
                         "give the same count everywhere")
    n = next(iter(counts.values())) if counts else 1
    if n <= 0:
        raise InputError("a sweep needs at least one model")
    configs = list(configs) if not isinstance(configs, FitConfig) else [configs] * n
    for i in range(n):
        changes: dict[str, Any] = {}
        if seeds is not None:
            changes["seed"] = int(seeds[i])
        if lrs is not None:
            changes["lr"] = float(lrs[i])
        configs[i] = dataclasses.replace(configs[i], **changes).validate()
    for name in SHARED_FIELDS:
        for i, config in enumerate(configs):
            if getattr(config, name) != getattr(configs[0], name):
                raise InputError(f"all models of a sweep share {name}: model {i} has {getattr(config, name)!r}, "
                                 f"model 0 {getattr(configs[0], name)!r}; make them equal or run separate sweeps")
    return configs


def check_compatible(model_configs: Sequence[ModelConfig]) -> MLPINR:
    """Checks that the models can be stacked along a model axis; returns the module whose ``apply`` all share.

    Two models are compatible when their variables have the same tree and shapes, and their ``apply`` traces
    to the same program given variables of those shapes (so they differ only in the values of variables, as
    omega0 or Fourier scales do). ``out_dim`` must already be set to the signal's channels.

    Raises:
      InputError: shapes or computation differ; the message names the differing config fields.
    """
    first = model_configs[0]
    reference_model = build_model(first)

    def coords_of(config: ModelConfig) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct((1, config.in_dim), jnp.float32)

    def shapes_of(model: MLPINR, coords: jax.ShapeDtypeStruct) -> Any:
        return jax.eval_shape(model.init, jax.random.key(0), coords)

    def program(model: MLPINR, shapes: Any, coords: jax.ShapeDtypeStruct) -> tuple[str, list[np.ndarray]]:
        # the program text (literals included) and its captured constants decide what apply computes
        closed = jax.make_jaxpr(model.apply)(shapes, coords)
        return str(closed.jaxpr), [np.asarray(c) for c in closed.consts]

    @functools.cache
    def reference() -> tuple[Any, tuple[str, list[np.ndarray]]]:
        # traced only if a second, different config comes
        shapes = shapes_of(reference_model, coords_of(first))
        return shapes, program(reference_model, shapes, coords_of(first))

    seen = {_model_key(first)}
    for i, config in enumerate(model_configs):
        key = _model_key(config)
        if key in seen:
            continue
        seen.add(key)
        model = build_model(config)
        shapes = shapes_of(model, coords_of(config))
        ref_shapes, (ref_text, ref_consts) = reference()
        if jax.tree.structure(shapes) != jax.tree.structure(ref_shapes) or any(
                a.shape != b.shape or a.dtype != b.dtype
                for a, b in zip(jax.tree.leaves(shapes), jax.tree.leaves(ref_shapes), strict=True)):
            raise InputError(f"model {i} has parameter shapes different from model 0's "
                             f"({_differing_fields(config, first)} of model 0); the models of one sweep may "
                             "differ only in hyperparameters that keep shapes (seed, lr, omega0, Fourier scale, "
                             "...): run separate sweeps")
        text, consts = program(model, shapes, coords_of(config))
        if text != ref_text or len(consts) != len(ref_consts) or not all(
                a.shape == b.shape and np.array_equal(a, b) for a, b in zip(consts, ref_consts, strict=True)):
            raise InputError(f"model {i} computes differently from model 0, not only through its variables "
                             f"({_differing_fields(config, first)} of model 0); run separate sweeps")
    return reference_model


def check_sweep(configs: FitConfig | Sequence[FitConfig], images: np.ndarray) -> None:
    """Raises :class:`InputError` if :func:`fit_many` would refuse ``configs`` with ``images`` (shared fields,
    parameter shapes, computation); cheap (traces, compiles nothing), so scripts check before writing."""
    images = stack_images(images)
    resolved = _resolve_configs(configs, None, None, images.shape[0] if images.ndim == 4 else None, None)
    check_compatible([dataclasses.replace(c.model, out_dim=images.shape[-1]) for c in resolved])


# --------------------------------------------------------------------------------------------- data


def stack_images(images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """``(H, W, C)`` (shared by every model) or ``(N, H, W, C)`` / a list of N ``(H, W, C)`` arrays of one size
    -> float32 array of the same rank; raises :class:`InputError` naming mismatched shapes."""
    if isinstance(images, (list, tuple)):
        shapes = [np.shape(image) for image in images]
        for i, shape in enumerate(shapes):
            if shape != shapes[0] or len(shape) != 3:
                raise InputError(f"images of a sweep must all be (H, W, C) of one size: image {i} is {shape}, "
                                 f"image 0 {shapes[0]}; resize or crop them to one size")
        images = np.stack(images)
    images = np.asarray(images, dtype=np.float32)
    if images.ndim not in (3, 4) or images.shape[-1] < 1:
        raise InputError(f"expected an (H, W, C) image or an (N, H, W, C) stack, got shape {images.shape}")
    return images


def images_to_pixel_data(images: np.ndarray, num_models: int | None = None) -> tuple[PixelData, PixelData]:
    """Images -> (``PixelData`` with a model axis, its ``vmap`` axes).

    Args:
      images: ``(H, W, C)`` shared, or ``(N, H, W, C)`` one per model.
      num_models: N (needed for a shared image; default ``images.shape[0]`` for a stack).

    Returns:
      ``data`` with ``coords (N, H*W, 2)``, ``values (H*W, C)`` (shared image) or ``(N, H*W, C)``,
      ``pixel_size (2,)``, and ``axes``, the matching ``in_axes``: ``PixelData(0, 0 or None, None)``.
      The coordinates are the same for every model but get a model axis anyway: then every product of the
      first layer is a batched one, and activations come out model-major (``(N, pixels, width)``), which keeps
      XLA from transposing them in every step (measured: a third less time per step on a CPU).
    """
    height, width, channels = images.shape[-3:]
    n = images.shape[0] if images.ndim == 4 else num_models
    if n is None:
        raise ValueError("num_models is needed with a single shared image")
    # numpy on the host: placing host arrays on a mesh needs no compiled resharding program
    grid = np.asarray(make_grid(height, width), np.float32).reshape(1, -1, 2)
    coords = np.ascontiguousarray(np.broadcast_to(grid, (n, height * width, 2)))
    values = np.asarray(images, np.float32).reshape(*images.shape[:-3], height * width, channels)
    pixel_size = np.asarray([2.0 / width, 2.0 / height], np.float32)
    axes = PixelData(0, 0 if images.ndim == 4 else None, None)
    return PixelData(coords, values, pixel_size), axes


def load_cifar10_batch(path: str | Path, count: int | None = None, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images of one CIFAR-10 training batch (Krizhevsky 2009) in the official python-pickle layout.

    Args:
      path: a batch file (``data_batch_1``), or the ``cifar-10-batches-py`` folder (its ``data_batch_1``
        is read), or the folder holding that folder.
      count: number of images to return (default: all from ``start``).
      start: index of the first image.

    Returns:
      ``(images, labels)``: float32 ``(count, 32, 32, 3)`` in [0, 1] and int64 ``(count,)`` class indices.
      The file stores each image as 3072 bytes, channel-major (1024 red, then green, then blue, rows first).

    Raises:
      InputError: the file is missing, is not a CIFAR-10 batch, or holds fewer than ``start + count`` images.
    """
    path = Path(path)
    for candidate in (path, path / "data_batch_1", path / "cifar-10-batches-py" / "data_batch_1"):
        if candidate.is_file():
            path = candidate
            break
    else:
        raise InputError(f"CIFAR-10 batch '{path}' not found; download CIFAR-10 (python version) from "
                         "https://www.cs.toronto.edu/~kriz/cifar.html and pass its data_batch_1 or folder")
    try:
        with open(path, "rb") as f:
            # the official format is a pickle; load only files you trust
            batch = pickle.load(f, encoding="bytes")
        data, labels = np.asarray(batch[b"data"], np.uint8), np.asarray(batch[b"labels"], np.int64)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as err:
        raise InputError(f"'{path}' is not a CIFAR-10 python batch ({type(err).__name__}: {err})") from None
    if data.ndim != 2 or data.shape[1] != 3072:
        raise InputError(f"'{path}' has data of shape {data.shape}, expected (n, 3072)")
    stop = data.shape[0] if count is None else start + count
    if start < 0 or stop > data.shape[0] or stop <= start:
        raise InputError(f"'{path}' holds {data.shape[0]} images; cannot take {count} from index {start}")
    images = data[start:stop].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32) / 255.0
    return images, labels[start:stop]


# --------------------------------------------------------------------------------------------- devices


def use_cpu_cores(count: int | None = None) -> bool:
    """Splits the host CPU into ``count`` JAX devices (default: one per core) so that :func:`fit_many`, which
    shards its model axis over all devices, trains a share of the models on every core.

    On a CPU, JAX exposes one device by default and a batched program then runs its ops one after the other,
    each using what parallelism XLA finds inside it; small INRs leave cores idle that way (64 CIFAR SIRENs on
    2 cores: 5.7 s of training on one device, 2.9 s on two). Single-model work is unaffected: it runs on the
    first device and still uses every core for large ops. Other platforms (GPUs) are not touched.

    Must run before JAX initialises its backends (before the first JAX computation), typically right after
    a script's imports. Changes nothing when the count was already chosen (``XLA_FLAGS`` with
    ``--xla_force_host_platform_device_count``, or ``jax_num_cpu_devices``) or when it is too late.

    Returns:
      whether the setting was applied.
    """
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "") or jax.config.jax_num_cpu_devices > 0:
        return False
    try:
        jax.config.update("jax_num_cpu_devices", max(1, count or os.cpu_count() or 1))
    except RuntimeError:  # backends already initialised
        return False
    return True


def model_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh (:data:`MODEL_AXIS`) over ``devices`` (default: all of ``jax.devices()``)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (MODEL_AXIS,))


def padded_count(num_models: int, mesh: Mesh) -> int:
    """The smallest multiple of the mesh's device count that is >= ``num_models``."""
    d = mesh.devices.size
    return -(-num_models // d) * d


def _data_specs(axes: PixelData) -> PixelData:
    return PixelData(*(P() if axis is None else P(MODEL_AXIS) for axis in axes))


def _put(tree: Any, mesh: Mesh, spec: P) -> Any:
    return jax.device_put(tree, NamedSharding(mesh, spec))


# --------------------------------------------------------------------------------------------- compiled programs


#: Jitted functions of recent sweeps by what their programs depend on (model config, training settings, chunk
#: length, data layout, devices). A later sweep of the same kind (same shapes; seeds, learning rates,
#: hyperparameter values and data may differ) reuses them: only the first sweep of a kind traces and compiles.
_PROGRAMS = ProgramCache(32)
_cached = _PROGRAMS.get


def clear_program_cache() -> None:
    """Forgets the jitted functions of earlier sweeps (the next sweep traces and compiles afresh)."""
    _PROGRAMS.clear()


def _training_key(config: FitConfig) -> tuple:
    """What a sweep's train step depends on besides the model: loss, schedule shape, sampler."""
    return (config.loss, config.steps, config.lr_schedule, config.final_lr_fraction, config.warmup_steps,
            config.batch_size, config.jitter)


def _mesh_key(mesh: Mesh) -> tuple:
    return tuple(int(d.id) for d in mesh.devices.flat) + tuple(mesh.axis_names)


# --------------------------------------------------------------------------------------------- init


def seed_keys(seeds: Sequence[int]) -> np.ndarray:
    """Raw key data ``(N, ...)`` uint32 of ``jax.random.key(seed)`` for each seed (computed on the host from
    Python ints, so any seed a :class:`FitConfig` accepts gives the key :func:`fitting.fit` uses)."""
    cache: dict[int, np.ndarray] = {}
    for seed in seeds:
        if seed not in cache:
            cache[seed] = np.asarray(jax.random.key_data(jax.random.key(seed)))
    return np.stack([cache[seed] for seed in seeds])


def loop_key_data(seeds: Sequence[int]) -> np.ndarray:
    """Raw data ``(N, ...)`` of the loop keys ``split(key(seed))[1]`` (:func:`fitting.loop_key`)."""
    unique = {seed: np.asarray(jax.random.key_data(jax.random.split(jax.random.key(seed))[1]))
              for seed in dict.fromkeys(seeds)}
    return np.stack([unique[seed] for seed in seeds])


def _make_init(config: FitConfig) -> Callable[[jax.Array, jax.Array], tuple[TrainState, jax.Array]]:
    """Jitted ``init(root_key_data (n, ...), lrs (n,)) -> (states, loop_key_data)`` of config's model, vmapped."""
    model = build_model(config.model)

    def init_one(key_data: jax.Array, lr: jax.Array) -> tuple[TrainState, jax.Array]:
        init_key, loop_key = jax.random.split(jax.random.wrap_key_data(key_data))
        state = create_train_state(model, build_sweep_optimizer(config, lr), init_key, config.model.in_dim)
        return state, jax.random.key_data(loop_key)

    return jax.jit(jax.vmap(init_one), compiler_options=ONCE_COMPILER_OPTIONS)


def _init_program(config: FitConfig) -> Callable[[jax.Array, jax.Array], tuple[TrainState, jax.Array]]:
    """:func:`_make_init` of ``config``, shared by later sweeps of the same model and training settings."""
    return _cached(("init", _model_key(config.model), _training_key(config)), lambda: _make_init(config))


def init_states(configs: Sequence[FitConfig]) -> tuple[TrainState, np.ndarray]:
    """Step-0 train states and loop keys of N configs, stacked along a leading model axis.

    Model i's parameters and constants are those :func:`inr_utils.fitting.initial_state` gives its config
    (init key ``split(key(seed))[0]``), its loop key is :func:`fitting.loop_key`'s (``split(key(seed))[1]``),
    and its optimizer state is :func:`build_sweep_optimizer`'s with its lr. Configs with the same model config
    are initialised by one compiled, ``vmap``-ed function (reused by later sweeps, see :func:`clear_program_cache`).

    Args:
      configs: validated configs with ``model.out_dim`` set to the signal's channels.

    Returns:
      ``(state, key_data)``: a :class:`TrainState` whose every leaf has a leading axis of size N (numpy), and
      the loop keys' raw data ``(N, ...)`` (``jax.random.wrap_key_data`` makes keys of it).
    """
    groups: dict[str, list[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault(_model_key(config.model), []).append(i)
    root_keys = seed_keys([c.seed for c in configs])
    parts, order = [], []
    for indices in groups.values():
        config = configs[indices[0]]
        init = _init_program(config)
        args = (jnp.asarray(root_keys[indices]), jnp.asarray([configs[i].lr for i in indices], jnp.float32))
        parts.append(jax.device_get(init(*args)))
        order.extend(indices)
    inverse = np.argsort(np.asarray(order), kind="stable")
    state, key_data = jax.tree.map(lambda *xs: np.concatenate(xs)[inverse], *parts)
    return state, key_data


# --------------------------------------------------------------------------------------------- compiled pieces


def _largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, max(1, limit)) + 1) if n % d == 0)


def default_models_per_block(pixels_per_step: int, width: int, budget_bytes: int = 1 << 19) -> int:
    """Models per block: as many as keep one hidden activation of a block, ``(block, pixels, width)`` float32,
    within ``budget_bytes`` (512 KiB, half a core's L2 cache here), but at least 2, so that products stay
    batched. Measured on 2 cores, SIREN width 32, models per block -> seconds of 300 steps: 64 CIFAR images
    (128 KiB a model) 1: 2.13, 2: 1.66, 4: 1.62, 8: 1.67, 16: 1.81; 16 crops of 64x64 (512 KiB a model)
    1: 2.23, 2: 1.68, 4: 1.81, 8: 2.15."""
    return max(2, budget_bytes // max(1, pixels_per_step * width * 4))


def _map_blocks(fn: Callable, block: int, batched_args: Any, shared_args: Any = None) -> Any:
    """``fn(batched, shared)`` over blocks of ``block`` models: ``lax.map`` (sequential) of ``fn`` on the
    leading axis of ``batched_args`` split into ``(n // block, block, ...)``; outputs merged back to ``(n, ...)``.
    ``block`` must divide n; ``block >= n`` calls ``fn`` once on everything."""
    n = jax.tree.leaves(batched_args)[0].shape[0]
    if block >= n:
        return fn(batched_args, shared_args)
    split = jax.tree.map(lambda x: x.reshape(n // block, block, *x.shape[1:]), batched_args)
    out = jax.lax.map(lambda b: fn(b, shared_args), split)
    return jax.tree.map(lambda x: x.reshape(n, *x.shape[2:]), out)


def _split_data(data: PixelData, axes: PixelData) -> tuple[PixelData, PixelData]:
    """(per-model fields with the others None, shared fields with the per-model ones None)."""
    batched = PixelData(*(x if a == 0 else None for x, a in zip(data, axes, strict=True)))
    shared = PixelData(*(None if a == 0 else x for x, a in zip(data, axes, strict=True)))
    return batched, shared


def _join_data(batched: PixelData, shared: PixelData) -> PixelData:
    return PixelData(*(b if s is None else s for b, s in zip(batched, shared, strict=True)))


def make_sweep_chunk(train_step: Callable, sampler: Callable, num_steps: int, data_axes: PixelData,
                     mesh: Mesh, models_per_block: int | None = None,
                     ) -> Callable[[TrainState, PixelData, jax.Array], tuple[TrainState, dict]]:
    """``num_steps`` steps of every model in one jitted program.

    The single-model chunk of :func:`inr_utils.training.make_train_chunk` (a ``lax.scan``, same keys) is
    ``vmap``-ed over the model axis and wrapped in ``jax.shard_map``: each device runs its share of the models,
    with no communication. A device's models run in blocks of ``models_per_block`` (the largest divisor of its
    share not above it; ``None``: all at once), one block after the other (``lax.map``), each for all
    ``num_steps`` steps: a block's activations stay in cache, while a block is still wide enough for batched
    matrix products to pay (see :func:`default_models_per_block`).

    Returns:
      ``run(states, data, keys) -> (states, metrics)``: ``states`` stacked ``(N, ...)`` sharded over
      :data:`MODEL_AXIS`, ``keys (N,)``, metrics each ``(num_steps, N)``, plus ``params_finite`` ``(1, N)``:
      whether every parameter of model i is finite after the chunk (checked here rather than by a separate
      program, which would cost a compilation and a pass over the parameters).
    """
    chunk = make_train_chunk(train_step, sampler, num_steps, jit=False)
    batched = jax.vmap(chunk, in_axes=(0, data_axes, 0), out_axes=(0, 1))

    def local(states: TrainState, data: PixelData, keys: jax.Array) -> tuple[TrainState, dict]:
        n = keys.shape[0]
        block = _largest_divisor_at_most(n, models_per_block or n)

        def run_block(per_model: tuple, shared: PixelData) -> tuple[TrainState, dict]:
            block_states, block_data, block_keys = per_model
            new_states, metrics = batched(block_states, _join_data(block_data, shared), block_keys)
            return new_states, jax.tree.map(lambda m: m.T, metrics)  # (block, num_steps) for merging

        per_model_data, shared = _split_data(data, data_axes)
        new_states, metrics = _map_blocks(run_block, block, (states, per_model_data, keys), shared)
        metrics = jax.tree.map(lambda m: m.T, metrics)
        metrics["params_finite"] = jax.vmap(tree_all_finite)(new_states.params)[None]
        return new_states, metrics

    sharded = jax.shard_map(local, mesh=mesh, in_specs=(P(MODEL_AXIS), _data_specs(data_axes), P(MODEL_AXIS)),
                            out_specs=(P(MODEL_AXIS), P(None, MODEL_AXIS)))
    return jax.jit(sharded)


def make_sweep_evaluator(apply_fn: Callable, data: PixelData, data_axes: PixelData, mesh: Mesh,
                         chunk_pixels: int = 1 << 16) -> Callable[[Any, Any, PixelData], tuple[jax.Array, jax.Array]]:
    """Full-signal MSE of every model: jitted ``evaluate(params, constants, data) -> (mse (N,), clipped_mse (N,))``
    for data shaped and placed like ``data``.

    ``clipped_mse`` scores the prediction clipped to [0, 1] (what a saved PNG shows). Each device evaluates
    ``chunk_pixels`` pixels at a time over all its models (split evenly between them; the last chunk padded
    and masked), bounding memory whatever the image size and model count.
    """
    n = data.values.shape[-2]
    channels = data.values.shape[-1]
    local_models = max(1, data.coords.shape[0] // mesh.devices.size)
    size = min(n, max(256, chunk_pixels // local_models))
    pad = (-n) % size
    chunks = (n + pad) // size

    def split(x: jax.Array) -> jax.Array:  # (n, k) -> (chunks, size, k)
        return jnp.pad(x, ((0, pad), (0, 0))).reshape(chunks, size, x.shape[-1])

    def one(params: Any, constants: Any, data: PixelData) -> tuple[jax.Array, jax.Array]:
        def body(_, xs):
            c, v, w = xs
            pred = apply_fn(merge_variables(params, constants), c)
            return None, (jnp.sum(w * jnp.square(pred - v)), jnp.sum(w * jnp.square(jnp.clip(pred, 0, 1) - v)))

        weights = split(jnp.ones((n, 1), jnp.float32))  # 0 on the padding
        _, (sse, sse_clipped) = jax.lax.scan(body, None, (split(data.coords), split(data.values), weights))
        return jnp.sum(sse) / (n * channels), jnp.sum(sse_clipped) / (n * channels)

    batched = jax.vmap(one, in_axes=(0, 0, data_axes))
    sharded = jax.shard_map(batched, mesh=mesh, in_specs=(P(MODEL_AXIS), P(MODEL_AXIS), _data_specs(data_axes)),
                            out_specs=(P(MODEL_AXIS), P(MODEL_AXIS)))
    return jax.jit(sharded)


@jax.jit
def _models_finite(params: Any) -> jax.Array:
    """``(N,)`` bool: every leaf of model i's parameters is finite."""
    return jax.vmap(tree_all_finite)(params)


@jax.jit
def _keep_where(mask: jax.Array, new: TrainState, old: TrainState) -> TrainState:
    """Model i from ``new`` where ``mask[i]``, else from ``old``."""
    return jax.tree.map(lambda a, b: jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), new, old)


# --------------------------------------------------------------------------------------------- the loop


@dataclass
class SweepChunkInfo:
    """What sweep callbacks see after every compiled chunk (the many-model :class:`training.ChunkInfo`).

    Attributes:
      state: the stacked train state after the chunk (leading model axis N, padding models included).
      step: global step after the chunk (Python int; every model is at this step).
      total_steps: the step training ends at.
      metrics: per-step metrics of the chunk, numpy ``(chunk_steps, N)`` each (``loss``, ``psnr``,
        ``grad_norm``).
      elapsed_s: wall seconds since training started (compilation included).
      extra: arrays added by earlier callbacks, e.g. ``full_psnr`` ``(N,)`` from :class:`SweepEvaluator`.
    """

    state: TrainState
    step: int
    total_steps: int
    metrics: dict[str, np.ndarray]
    elapsed_s: float
    extra: dict[str, np.ndarray] = field(default_factory=dict)


class SweepCallback(Protocol):
    """Runs on the host between compiled chunks."""

    def __call__(self, info: SweepChunkInfo) -> None: ...


class SweepInterrupted(TrainingInterrupted):
    """Ctrl-C during :func:`train_many`; ``state`` is the stacked state after the last complete chunk."""

    def __init__(self, state: TrainState, step: int):
        KeyboardInterrupt.__init__(self, f"sweep interrupted at step {step}")
        self.state = state


class SweepEvaluator:
    """Every ``every`` steps (and at the last one) stores each model's full-signal PSNR (dB, unclipped
    prediction) as ``info.extra["full_psnr"]`` ``(N,)`` (the sweep's :class:`callbacks.FullSignalEvaluator`).

    ``last`` keeps the latest evaluation, ``(step, mse (N,), clipped_mse (N,))`` or ``None``, so the final
    scores need no second pass."""

    def __init__(self, evaluate: Callable[[Any, Any], tuple[jax.Array, jax.Array]], every: int = 200):
        self.evaluate, self.every = evaluate, every
        self._last_eval: int | None = None
        self.last: tuple[int, np.ndarray, np.ndarray] | None = None

    def __call__(self, info: SweepChunkInfo) -> None:
        crossed = self._last_eval is None or info.step // self.every > self._last_eval // self.every
        if crossed or info.step >= info.total_steps:
            mse, mse_clipped = jax.device_get(self.evaluate(info.state.params, info.state.constants))
            self.last = (info.step, np.asarray(mse), np.asarray(mse_clipped))
            with np.errstate(divide="ignore", invalid="ignore"):
                info.extra["full_psnr"] = 10.0 * np.log10(1.0 / np.asarray(mse, np.float64))
            self._last_eval = info.step


class SweepHistory:
    """Per-step metrics of every model, and the evaluations.

    Attributes (numpy, filled as training runs):
      steps: ``(S,)`` global step of each recorded step (1-based, as in :class:`callbacks.History`).
      loss, batch_psnr: ``(S, N)``.
      eval_steps: ``(E,)`` steps at which ``full_psnr`` ``(E, N)`` was evaluated.
      chunk_steps, chunk_elapsed_s: ``(K,)`` step and elapsed seconds at the end of each chunk.
    """

    def __init__(self) -> None:
        self._loss: list[np.ndarray] = []
        self._psnr: list[np.ndarray] = []
        self._steps: list[np.ndarray] = []
        self._evals: list[tuple[int, np.ndarray]] = []
        self._chunks: list[tuple[int, float]] = []

    def __call__(self, info: SweepChunkInfo) -> None:
        n = info.metrics["loss"].shape[0]
        self._steps.append(np.arange(info.step - n + 1, info.step + 1))
        self._loss.append(np.asarray(info.metrics["loss"], np.float64))
        self._psnr.append(np.asarray(info.metrics["psnr"], np.float64))
        if "full_psnr" in info.extra:
            self._evals.append((info.step, np.asarray(info.extra["full_psnr"], np.float64)))
        self._chunks.append((info.step, info.elapsed_s))

    @property
    def steps(self) -> np.ndarray:
        return np.concatenate(self._steps) if self._steps else np.zeros(0, np.int64)

    @property
    def loss(self) -> np.ndarray:
        return np.concatenate(self._loss) if self._loss else np.zeros((0, 0))

    @property
    def batch_psnr(self) -> np.ndarray:
        return np.concatenate(self._psnr) if self._psnr else np.zeros((0, 0))

    @property
    def eval_steps(self) -> np.ndarray:
        return np.asarray([s for s, _ in self._evals], np.int64)

    @property
    def full_psnr(self) -> np.ndarray:
        return np.stack([p for _, p in self._evals]) if self._evals else np.zeros((0, 0))

    @property
    def chunk_steps(self) -> np.ndarray:
        return np.asarray([s for s, _ in self._chunks], np.int64)

    @property
    def chunk_elapsed_s(self) -> np.ndarray:
        return np.asarray([t for _, t in self._chunks], np.float64)

    def select(self, keep: Sequence[int]) -> SweepHistory:
        """A copy holding only the models ``keep`` (e.g. to drop padding models)."""
        out = SweepHistory()
        keep = np.asarray(keep)
        out._steps = list(self._steps)
        out._loss = [x[:, keep] for x in self._loss]
        out._psnr = [x[:, keep] for x in self._psnr]
        out._evals = [(s, p[keep]) for s, p in self._evals]
        out._chunks = list(self._chunks)
        return out

    def model(self, i: int) -> History:
        """Model i's history as a single-fit :class:`callbacks.History` (CSV-writable)."""
        rows = [{"step": int(s), "loss": float(l_), "batch_psnr": float(p), "full_psnr": float("nan"),
                 "elapsed_s": float("nan")} for s, l_, p in zip(self.steps, self.loss[:, i], self.batch_psnr[:, i],
                                                                strict=True)]
        index = {row["step"]: row for row in rows}
        for step, psnrs in self._evals:
            index[step]["full_psnr"] = float(psnrs[i])
        for step, elapsed in self._chunks:
            index[step]["elapsed_s"] = elapsed
        return History(rows)


class SweepProgressBar:
    """tqdm over steps showing the mean and best batch PSNR over models (and full PSNR when evaluated)."""

    def __init__(self, total_steps: int, num_models: int, initial_step: int = 0, disable: bool = False):
        self.bar = tqdm(total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True, disable=disable,
                        desc=f"fitting {num_models} models")
        self._full: np.ndarray | None = None

    def __call__(self, info: SweepChunkInfo) -> None:
        psnr = info.metrics["psnr"][-1]
        self._full = info.extra.get("full_psnr", self._full)
        postfix = {"psnr mean": f"{np.nanmean(psnr):.2f}", "best": f"{np.nanmax(psnr):.2f}"}
        if self._full is not None:
            postfix["full mean"] = f"{np.nanmean(self._full):.2f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(info.step - self.bar.n)

    def close(self) -> None:
        self.bar.close()


@dataclass
class SweepTrainResult:
    """Output of :func:`train_many`.

    Attributes:
      state: final stacked state (models that diverged hold their last finite chunk-end parameters).
      diverged_step: ``(N,)`` int, the step at which each model's loss or parameters became NaN/inf (-1: never).
      compile_s: seconds spent compiling chunks inside the loop (not those passed in ``compiled_chunks``).
      wall_s: seconds of the loop, compilation included.
    """

    state: TrainState
    diverged_step: np.ndarray
    compile_s: float
    wall_s: float


def train_many(state: TrainState, data: PixelData, keys: jax.Array, train_step: Callable, sampler: Callable,
               total_steps: int, data_axes: PixelData, mesh: Mesh, steps_per_call: int = 100,
               callbacks: Sequence[SweepCallback] = (), models_per_block: int | None = None,
               make_chunk: Callable[[int], Callable] | None = None,
               compiled_chunks: Mapping[int, Any] | None = None) -> SweepTrainResult:
    """Trains N stacked models from their common step to ``total_steps`` (the sweep's :func:`training.train`).

    Args:
      state: stacked state ``(N, ...)``, already sharded over ``mesh`` (N a multiple of its devices).
      data: the signal(s), placed per ``data_axes`` (per-model values sharded, shared ones replicated).
      keys: ``(N,)`` loop keys; model i's step s uses ``fold_in(keys[i], s)``.
      train_step: the single-model step of :func:`training.make_train_step`.
      sampler: the single-model sampler.
      total_steps: global step to stop at.
      data_axes: ``vmap`` axes of ``data`` (:func:`images_to_pixel_data`).
      mesh: the model mesh.
      steps_per_call: steps per compiled call; a shorter last chunk compiles once more.
      callbacks: called after every chunk with a :class:`SweepChunkInfo`.
      models_per_block: see :func:`make_sweep_chunk`.
      make_chunk: ``num_steps -> jitted chunk`` (default :func:`make_sweep_chunk` of the arguments above);
        :func:`fit_many` passes one that reuses the chunks of earlier sweeps.
      compiled_chunks: chunk length -> executable already compiled for exactly these arguments' shapes,
        dtypes and shardings (``make_chunk(n).lower(...).compile()``; :func:`fit_many` compiles the first one
        while it initialises the models); other lengths are compiled here.

    A model whose loss or parameters become NaN/inf does not stop the others: from then on it keeps the
    parameters and optimizer state it had at the start of that chunk (its lane of the batched program still
    runs, and its results are discarded), and the step is recorded in ``diverged_step``.

    Raises:
      SweepInterrupted: Ctrl-C; carries the stacked state after the last complete chunk.
    """
    start = time.perf_counter()
    compile_s = 0.0
    compiled: dict[int, Any] = dict(compiled_chunks or {})
    num_models = jax.tree.leaves(state.params)[0].shape[0]
    diverged = np.full(num_models, -1, np.int64)
    step = int(np.asarray(jax.device_get(state.step)).reshape(-1)[0])
    with deferred_sigint() as interrupted:
        try:
            while step < total_steps:
                n = min(steps_per_call, total_steps - step)
                if n not in compiled:
                    t0 = time.perf_counter()
                    fn = (make_chunk(n) if make_chunk is not None
                          else make_sweep_chunk(train_step, sampler, n, data_axes, mesh, models_per_block))
                    compiled[n] = fn.lower(state, data, keys).compile()
                    compile_s += time.perf_counter() - t0
                new_state, metrics = compiled[n](state, data, keys)
                metrics = jax.device_get(metrics)
                finite_loss = np.isfinite(metrics["loss"])
                params_finite = metrics.pop("params_finite", None)
                if params_finite is None:  # a chunk that does not report it
                    params_finite = _models_finite(new_state.params)
                ok = finite_loss.all(axis=0) & np.asarray(params_finite).reshape(-1)
                for i in np.flatnonzero(~ok & (diverged < 0)):
                    bad = np.flatnonzero(~finite_loss[:, i])
                    diverged[i] = step + (int(bad[0]) + 1 if bad.size else n)
                if (diverged >= 0).any():  # diverged models stay frozen at their last finite state
                    new_state = _keep_where(jnp.asarray(diverged < 0), new_state, state).replace(step=new_state.step)
                state = new_state
                step += n
                info = SweepChunkInfo(state, step, total_steps, metrics, time.perf_counter() - start)
                for callback in callbacks:
                    callback(info)
                if interrupted.is_set() and step < total_steps:
                    raise SweepInterrupted(state, step)
        except KeyboardInterrupt as err:
            if isinstance(err, TrainingInterrupted):
                raise
            raise SweepInterrupted(state, step) from None
    return SweepTrainResult(state, diverged, compile_s, time.perf_counter() - start)


# --------------------------------------------------------------------------------------------- front door


@dataclass
class SweepResult:
    """What :func:`fit_many` returns (padding models already dropped).

    Attributes:
      model: the Flax module; its ``apply`` serves every model (give it :func:`unstack`'s variables).
      configs: the N resolved configs (seed, lr and ``model.out_dim`` filled in).
      state: final stacked :class:`TrainState`, every leaf ``(N, ...)``; sharded over the devices.
      history: per-step metrics and evaluations (:class:`SweepHistory`).
      psnr: ``(N,)`` final full-image PSNR in dB of the prediction clipped to [0, 1] (as the saved PNG).
      psnr_unclipped: ``(N,)`` the same for the raw prediction (what single fits' history reports).
      diverged_step: ``(N,)`` step at which model i diverged (NaN/inf), -1 if it did not.
      compile_s: seconds compiling the training chunks and the evaluator. The first chunk compiles in a
        background thread while the models are initialised, so this overlaps ``init_s``.
      init_s: seconds from the call to the first training step: checks, initialisation (compilation of the
        init included), data placement, and any wait for the background compilation.
      train_s: seconds of the training loop (callbacks included, compilation inside the loop excluded).
      wall_s: seconds of the whole call (checks, init, training, final evaluation).
      steps_run: steps taken by this call.
      num_devices: devices the model axis was sharded over.
    """

    model: MLPINR
    configs: list[FitConfig]
    state: TrainState
    history: SweepHistory
    psnr: np.ndarray
    psnr_unclipped: np.ndarray
    diverged_step: np.ndarray
    compile_s: float
    init_s: float
    train_s: float
    wall_s: float
    steps_run: int
    num_devices: int

    @property
    def num_models(self) -> int:
        return len(self.configs)

    @property
    def variables(self) -> dict[str, Any]:
        """Stacked ``model.apply`` variables, every leaf ``(N, ...)`` (``jax.vmap(model.apply, (0, None))``)."""
        return merge_variables(self.state.params, self.state.constants)


def unstack(result: SweepResult | TrainState, i: int) -> dict[str, Any]:
    """Model i's variables (``model.apply``'s first argument), e.g. for :func:`inr_utils.rendering.render`."""
    state = result.state if isinstance(result, SweepResult) else result
    return jax.tree.map(lambda x: jnp.asarray(x[i]), merge_variables(state.params, state.constants))


def unstack_state(state: TrainState, i: int) -> TrainState:
    """Model i's :class:`TrainState` (its optimizer state is :func:`build_sweep_optimizer`'s)."""
    return jax.tree.map(lambda x: jnp.asarray(x[i]), state)


def fit_many(configs: FitConfig | Sequence[FitConfig], images: np.ndarray | Sequence[np.ndarray] | None = None, *,
             seeds: Sequence[int] | None = None, lrs: Sequence[float] | None = None,
             num_models: int | None = None, state: TrainState | None = None,
             callbacks: Sequence[SweepCallback] = (), progress: bool = True, eval_every: int = 200,
             devices: Sequence[jax.Device] | None = None, models_per_block: int | None = None) -> SweepResult:
    """Fits N INRs at once; model i is the fit :func:`inr_utils.fitting.fit` would make of its config.

    Args:
      configs: one config for all models, or N configs (equal in :data:`SHARED_FIELDS`; their models may
        differ only in hyperparameters that keep shapes and computation, see :func:`check_compatible`).
      images: ``(H, W, C)`` shared by all models, or ``(N, H, W, C)`` (or a list of N equal-size images)
        one per model, float in [0, 1]. Default: each config's ``image`` (all must load to one size).
      seeds: N seeds replacing the configs' (init and sampling keys).
      lrs: N peak learning rates replacing the configs'.
      num_models: N, when nothing else says it (e.g. one config and one image, N identical copies).
      state: stacked state to continue from: an earlier result's ``(N, ...)`` or a :class:`SweepInterrupted`'s
        (padding included), with the same configs.
      callbacks: extra :class:`SweepCallback` s after the built-in evaluator, history and progress bar.
      progress: show a progress bar.
      eval_every: steps between full-image PSNR evaluations (at chunk ends, as in ``fit``).
      devices: devices to shard the model axis over (default: all). N is padded to a multiple of their
        count with copies of the last model; the copies are dropped from the result.
      models_per_block: models a device trains side by side (see :func:`make_sweep_chunk`); default
        :func:`default_models_per_block` of the pixels per step and the width. Results do not depend on it
        beyond float rounding.

    Returns:
      a :class:`SweepResult`.

    Raises:
      InputError: inconsistent counts, configs that cannot share one program, images of different sizes.
      SweepInterrupted: Ctrl-C (carries the stacked state, padding included).
    """
    t_start = time.perf_counter()
    if eval_every <= 0:
        raise InputError(f"eval_every must be a positive number of steps, got {eval_every}")
    if images is not None:
        images = stack_images(images)
    num_images = images.shape[0] if images is not None and images.ndim == 4 else None
    configs = _resolve_configs(configs, seeds, lrs, num_images, num_models)
    n = len(configs)
    if images is None:
        images = _config_images(configs)
    channels = images.shape[-1]
    configs = [dataclasses.replace(c, model=dataclasses.replace(c.model, out_dim=channels)) for c in configs]
    model = check_compatible([c.model for c in configs])

    mesh = model_mesh(devices)
    total = padded_count(n, mesh)
    order = np.concatenate([np.arange(n), np.full(total - n, n - 1)]).astype(np.int64)
    padded = [configs[i] for i in order]
    if images.ndim == 4:
        images = images[order]
    data, axes = images_to_pixel_data(images, total)
    data = PixelData(*(_put(x, mesh, P() if a is None else P(MODEL_AXIS)) for x, a in zip(data, axes, strict=True)))

    config = configs[0]
    if models_per_block is None:
        pixels = config.batch_size or images.shape[-3] * images.shape[-2]
        models_per_block = default_models_per_block(pixels, config.model.width)
    program_key = (_model_key(config.model), _training_key(config), tuple(axes), _mesh_key(mesh))
    step_fn, sampler = _cached(("step", *program_key), lambda: (
        make_train_step(model.apply, LOSSES.get(config.loss), build_sweep_optimizer(config)),
        make_sampler(config.batch_size, config.jitter)))

    def make_chunk(num_steps: int) -> Callable:
        return _cached(("chunk", *program_key, num_steps, models_per_block),
                       lambda: make_sweep_chunk(step_fn, sampler, num_steps, axes, mesh, models_per_block))

    shapes = tuple((x.shape, str(x.dtype)) for x in data)
    evaluate_fn = _cached(("eval", *program_key, shapes), lambda: make_sweep_evaluator(model.apply, data, axes, mesh))

    # The first chunk (the largest program) compiles in a background thread while the models are initialised.
    # XLA compiles without holding the GIL, but tracing and lowering hold it, so the initialisation waits
    # until the chunk is lowered: then the two compilations run side by side on a multi-core host.
    first_step = 0 if state is None else int(np.asarray(jax.device_get(state.step)).reshape(-1)[0])
    first_chunk = min(config.steps_per_call, config.steps - first_step)
    abstract_state, abstract_keys = _abstract_state_and_keys(padded[0], total, mesh)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fit_many-compile")
    lowered = threading.Event()
    try:
        compiling = executor.submit(_compile_chunk, make_chunk(first_chunk) if first_chunk > 0 else None,
                                    (abstract_state, data, abstract_keys), lowered)
        lowered.wait()
        if state is None:
            state, key_data = init_states(padded)
        else:
            leading = {x.shape[0] for x in jax.tree.leaves(state)}
            if leading not in ({n}, {total}):
                raise InputError(f"the state to continue from has model axes {sorted(leading)}, expected {n}")
            if leading == {n}:  # a result's state; a SweepInterrupted state already holds the padding
                state = jax.tree.map(lambda x: np.asarray(x)[order], jax.device_get(state))
            key_data = loop_key_data([c.seed for c in padded])
        state = _put(state, mesh, P(MODEL_AXIS))
        keys = jax.random.wrap_key_data(_put(np.asarray(key_data), mesh, P(MODEL_AXIS)))
        t0 = time.perf_counter()
        evaluator = evaluate_fn.lower(abstract_state.params, abstract_state.constants, data).compile()
        chunk, chunk_compile_s = compiling.result()
        compile_s = chunk_compile_s + time.perf_counter() - t0
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    if not _same_avals((state, keys), (abstract_state, abstract_keys)):  # e.g. a continued state of other dtypes
        chunk, evaluator = None, evaluate_fn
    init_s = time.perf_counter() - t_start

    def evaluate(params: Any, constants: Any) -> tuple[jax.Array, jax.Array]:
        return evaluator(params, constants, data)

    history = SweepHistory()
    evaluator_callback = SweepEvaluator(evaluate, eval_every)
    bar = SweepProgressBar(config.steps, n, first_step, disable=not progress)
    try:
        result = train_many(state, data, keys, step_fn, sampler, config.steps, axes, mesh, config.steps_per_call,
                            [evaluator_callback, history, bar, *callbacks], models_per_block,
                            make_chunk, {first_chunk: chunk} if chunk is not None else None)
    finally:
        bar.close()
    if evaluator_callback.last is not None and evaluator_callback.last[0] == config.steps:
        _, mse, mse_clipped = evaluator_callback.last  # the last chunk's evaluation is of the final state
    else:
        mse, mse_clipped = jax.device_get(evaluate(result.state.params, result.state.constants))
    keep = np.arange(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        psnr_unclipped = 10.0 * np.log10(1.0 / np.asarray(mse, np.float64)[keep])
        psnr = 10.0 * np.log10(1.0 / np.asarray(mse_clipped, np.float64)[keep])
    final_state = result.state if total == n else jax.tree.map(lambda x: x[:n], result.state)
    return SweepResult(model, configs, final_state, history.select(keep), psnr, psnr_unclipped,
                       result.diverged_step[keep], compile_s + result.compile_s, init_s,
                       result.wall_s - result.compile_s, time.perf_counter() - t_start,
                       config.steps - first_step, mesh.devices.size)


def _abstract_state_and_keys(config: FitConfig, num_models: int, mesh: Mesh,
                             ) -> tuple[TrainState, jax.ShapeDtypeStruct]:
    """Shapes, dtypes and shardings (model axis over ``mesh``) of the stacked state and loop keys of
    ``num_models`` models of ``config``'s architecture, as :func:`init_states` makes them, without initialising
    anything (``jax.eval_shape`` traces the init; the real call then reuses the trace)."""
    init = _init_program(config)
    key_data = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0)))
    state, loop_keys = jax.eval_shape(init, jax.ShapeDtypeStruct((num_models, *key_data.shape), key_data.dtype),
                                      jax.ShapeDtypeStruct((num_models,), jnp.float32))
    keys = jax.eval_shape(jax.random.wrap_key_data, loop_keys)
    sharding = NamedSharding(mesh, P(MODEL_AXIS))
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), (state, keys))


def _compile_chunk(chunk: Callable | None, args: tuple, lowered: threading.Event) -> tuple[Any, float]:
    """``(executable or None, seconds)``: ``chunk`` lowered for the abstract ``args`` (then ``lowered`` is set,
    also on failure) and compiled."""
    t0 = time.perf_counter()
    try:
        lowering = None if chunk is None else chunk.lower(*args)
    finally:
        lowered.set()
    return (None if lowering is None else lowering.compile()), time.perf_counter() - t0


def _same_avals(tree: Any, abstract: Any) -> bool:
    """Whether the arrays of ``tree`` have the shapes and dtypes of the ``ShapeDtypeStruct`` s of ``abstract``."""
    leaves, structure = jax.tree.flatten(tree)
    abstract_leaves, abstract_structure = jax.tree.flatten(abstract)
    return structure == abstract_structure and all(
        a.shape == b.shape and a.dtype == b.dtype for a, b in zip(leaves, abstract_leaves, strict=True))


def _config_images(configs: Sequence[FitConfig]) -> np.ndarray:
    """Each config's image (see :func:`fitting.load_config_image`): ``(H, W, C)`` if all are the same,
    else ``(N, H, W, C)``."""
    from inr_utils.fitting import load_config_image

    sources = [(c.image, c.max_size) for c in configs]
    loaded: dict[tuple, np.ndarray] = {}
    for config, source in zip(configs, sources, strict=True):
        if source not in loaded:
            loaded[source] = load_config_image(config)
    if len(loaded) == 1:
        return next(iter(loaded.values()))
    return stack_images([loaded[s] for s in sources])


# --------------------------------------------------------------------------------------------- rendering


def render_many(apply_fn: Callable, variables: Any, height: int, width: int, chunk_pixels: int = 1 << 16,
                ) -> np.ndarray:
    """Renders every model of stacked ``variables`` on the ``height x width`` pixel grid of [-1, 1]^2.

    The sweep's :func:`inr_utils.rendering.render`: one compiled function evaluates all models on a band of
    rows; ``chunk_pixels`` bounds the pixels per model and band.

    Args:
      apply_fn: ``model.apply`` shared by the models (``SweepResult.model.apply``).
      variables: stacked variables, every leaf ``(N, ...)`` (``SweepResult.variables``).
      height, width: output size in pixels.

    Returns:
      float32 ``(N, height, width, C)`` numpy array (unclipped).
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"render size must be positive, got {height}x{width}")
    rows_per_band = max(1, min(height, chunk_pixels // width))
    xs, ys = pixel_centers(width), pixel_centers(height)

    @jax.jit
    def band(variables: Any, band_ys: jax.Array) -> jax.Array:
        yy, xx = jnp.meshgrid(band_ys, jnp.asarray(xs), indexing="ij")
        coords = jnp.stack([xx, yy], axis=-1).reshape(-1, 2)
        values = jax.vmap(apply_fn, in_axes=(0, None))(variables, coords)
        return values.reshape(values.shape[0], band_ys.shape[0], width, -1)

    bands = []
    for row in range(0, height, rows_per_band):
        rows = min(rows_per_band, height - row)
        band_ys = np.pad(ys[row:row + rows], (0, rows_per_band - rows), mode="edge")
        bands.append(np.asarray(band(variables, jnp.asarray(band_ys, jnp.float32)))[:, :rows])
    return np.concatenate(bands, axis=1).astype(np.float32)


# --------------------------------------------------------------------------------------------- reporting


def label_text(label: Mapping[str, Any]) -> str:
    """``{"lr": 0.001, "omega0": 30.0}`` -> ``"lr=0.001 omega0=30"`` (short, for tables and figures)."""
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in label.items()) or "-"


def score_reconstructions(recons: np.ndarray, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PSNR (dB) and SSIM of N reconstructions clipped to [0, 1] against their targets.

    Args:
      recons: ``(N, H, W, C)``.
      images: ``(N, H, W, C)`` or one ``(H, W, C)`` target for all.

    Returns:
      ``(psnr (N,), ssim (N,))`` float64; SSIM as :func:`inr_utils.metrics.ssim` (dm-pix, paper settings).
    """
    import dm_pix

    recons = np.clip(np.asarray(recons, np.float32), 0.0, 1.0)
    targets = np.broadcast_to(np.asarray(images, np.float32), recons.shape)
    mse = np.mean(np.square(recons.astype(np.float64) - targets), axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(1.0 / mse)
    ssim = jax.jit(jax.vmap(lambda a, b: dm_pix.ssim(a, b, max_val=1.0)))(jnp.asarray(recons), jnp.asarray(targets))
    return psnr, np.asarray(ssim, np.float64)


def sweep_rows(result: SweepResult, labels: Sequence[Mapping[str, Any]], ssim: np.ndarray | None = None,
               ) -> list[dict[str, Any]]:
    """One dict per model: index, swept values, seed, lr, final PSNR (clipped and raw), SSIM, divergence."""
    rows = []
    for i, (config, label) in enumerate(zip(result.configs, labels, strict=True)):
        row: dict[str, Any] = {"model": i, **label}
        row.setdefault("seed", config.seed)
        row.setdefault("lr", config.lr)
        row.update(psnr=round(float(result.psnr[i]), 3), psnr_unclipped=round(float(result.psnr_unclipped[i]), 3))
        if ssim is not None:
            row["ssim"] = round(float(ssim[i]), 4)
        row["diverged_at"] = int(result.diverged_step[i]) if result.diverged_step[i] >= 0 else ""
        rows.append(row)
    return rows


def sweep_figure(path: str | Path, result: SweepResult, labels: Sequence[Mapping[str, Any]], recons: np.ndarray,
                 max_thumbnails: int = 36, title: str = "") -> None:
    """Saves a PNG: PSNR curves of every model (left; per-step batch PSNR, dots at full-image evaluations)
    and a grid of reconstructions titled with their swept values and final PSNR (right; the first
    ``max_thumbnails`` models)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = result.num_models
    shown = min(n, max_thumbnails)
    cols = int(np.ceil(np.sqrt(shown)))
    rows = int(np.ceil(shown / cols))
    fig = plt.figure(figsize=(6 + 1.8 * cols, max(4.5, 2.1 * rows + 0.8)), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[6, 1.8 * cols])
    ax = left.subplots()
    history = result.history
    colors = plt.cm.viridis(np.linspace(0, 0.9, n))
    for i in range(n):
        text = f"{i}: {label_text(labels[i])}"
        ax.plot(history.steps, history.batch_psnr[:, i], lw=0.8, color=colors[i], label=text if n <= 12 else None)
        if history.eval_steps.size:
            ax.plot(history.eval_steps, history.full_psnr[:, i], "o", ms=3, color=colors[i])
    ax.set_xlabel("step")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("batch PSNR per step (dots: full image)", fontsize=10)
    ax.grid(alpha=0.3)
    if n <= 12:
        ax.legend(fontsize=7)
    axes = np.atleast_1d(right.subplots(rows, cols)).ravel()
    for i, axis in enumerate(axes):
        axis.axis("off")
        if i >= shown:
            continue
        image = np.clip(recons[i], 0.0, 1.0)
        axis.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None,
                    vmin=0.0, vmax=1.0, interpolation="nearest")
        text = textwrap.fill(f"{i}: {label_text(labels[i])}", 24)
        axis.set_title(f"{text}\n{result.psnr[i]:.2f} dB", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_sweep(configs: Sequence[FitConfig], labels: Sequence[Mapping[str, Any]], images: np.ndarray,
              out: str | Path, image_names: Sequence[str] | None = None, progress: bool = True,
              eval_every: int = 200) -> list[dict[str, Any]]:
    """Fits every config to every image in one :func:`fit_many` call and writes the results into ``out``.

    Args:
      configs, labels: the grid (:func:`sweep_grid`).
      images: one ``(H, W, C)`` image, or ``(K, H, W, C)``: then every config is fitted to every image
        (N = K * len(configs) models, image-major), and the labels get an ``image`` entry.
      out: an existing, writable folder (see :func:`fitting.prepare_output_dir`).
      image_names: K names for the ``image`` label (default: indices).

    Files: ``results.csv`` and ``results.md`` (one row per model: swept values, seed, lr, PSNR, SSIM),
    ``sweep.png`` (:func:`sweep_figure`), ``curves.csv`` (full-image PSNR of every model at each evaluation)
    and ``sweep.json`` (base config, timings, rows).

    Returns:
      the table rows.
    """
    out = Path(out)
    images = stack_images(images)
    if images.ndim == 4:
        names = list(image_names) if image_names is not None else [str(k) for k in range(images.shape[0])]
        labels = [{"image": name, **label} for name in names for label in labels]
        configs = [config for _ in names for config in configs]
        images = np.repeat(images, len(configs) // len(names), axis=0)
    result = fit_many(configs, images, progress=progress, eval_every=eval_every)
    height, width = images.shape[-3:-1]
    recons = render_many(result.model.apply, result.variables, height, width)
    psnr, ssim = score_reconstructions(recons, images)
    rows = sweep_rows(result, labels, ssim)
    (out / "results.csv").write_text(to_csv(rows))
    (out / "results.md").write_text(to_markdown(rows))
    curve_rows = [{"step": int(s), **{f"model_{i}": round(float(p), 4) for i, p in enumerate(psnrs)}}
                  for s, psnrs in zip(result.history.eval_steps, result.history.full_psnr, strict=True)]
    (out / "curves.csv").write_text(to_csv(curve_rows) if curve_rows else "step\n")
    summary = {
        "num_models": result.num_models, "devices": result.num_devices, "steps": result.steps_run,
        "wall_s": round(result.wall_s, 2), "compile_s": round(result.compile_s, 2), "init_s": round(result.init_s, 2),
        "train_s": round(result.train_s, 2),
        "images_per_s": round(result.num_models / result.wall_s, 3),
        "base_config": result.configs[0].to_dict(), "rows": rows,
    }
    (out / "sweep.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    best = int(np.nanargmax(np.where(np.isfinite(psnr), psnr, -np.inf)))
    sweep_figure(out / "sweep.png", result, labels, recons,
                 title=f"{result.num_models} {result.configs[0].model.model} models, {result.steps_run} steps, "
                       f"{result.wall_s:.1f} s; best {best}: {psnr[best]:.2f} dB")
    return rows
