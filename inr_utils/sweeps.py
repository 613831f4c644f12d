"""Many INRs at once: ``fit_many``, N fits of equal shapes trained by the engine as one compiled program.

A hyperparameter sweep or a collection of images fitted one by one spends most of its time on things that do
not scale with the work: compilation (once per fit), dispatch of small kernels and host round trips. Here the
N train states (identical shapes) are stacked along a leading *model axis* and trained by the engine
(:func:`inr_utils.engine.train_many`, whose one-model case is :func:`inr_utils.fitting.fit`): the single-model
step and chunk are ``jax.vmap``-ed over that axis and compiled once. Small per-model matrix products become
batched ones, and every elementwise kernel works on N times more data per launch.

What may differ between the models of one sweep (everything that keeps the parameter shapes and the apply
function):
  * the seed (initialisation and sampling keys, exactly as :func:`inr_utils.fitting.fit` derives them);
  * the peak learning rate: the optimizer keeps it in its state (:func:`inr_utils.optim.scale_by_scheduled_lr`);
  * layer hyperparameters stored as variables (SIREN's omega0, ... see
    :func:`model_components.layers.hyperparameter`) and the Gaussian Fourier-feature matrix B (so its scale
    sigma): each model is initialised from its own :class:`ModelConfig` and the variables are stacked;
  * the signal: N images of one size ``(N, H, W, C)``, or one shared ``(H, W, C)`` image (or signals of any
    dimension d, ``(N, *shape, C)`` or ``(*shape, C)``; the models' ``in_dim`` says which, see :func:`fit_many`).
Everything else (architecture, steps, batch size, schedule shape, loss, ...) is shared; configs that differ in
it are refused with an :class:`InputError` naming the field.

Each model's run is the run :func:`inr_utils.fitting.fit` makes for its config (same keys, same steps, same
optimizer arithmetic), up to float rounding of the batched products (tests check 1e-4 relative).

Devices: the model axis is sharded over all devices of a one-axis mesh (:mod:`inr_utils.devices`), each device
training its own models with no communication. N need not be divisible by the device count: the sweep is
padded with copies of the last model up to the next multiple, and the copies are dropped from the result (they
cost compute, so prefer multiples). On a CPU, :func:`inr_utils.devices.use_cpu_cores` (called before JAX
starts) makes one device per core, so every core trains its share of the models. The coordinates get a model
axis too, so that activations are model-major and never transposed between steps; a device trains its models
in small blocks whose activations stay in cache; the first chunk compiles in a background thread while the
models are initialised. Host work happens between chunks only, so use large ``steps_per_call``.

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
import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from inr_utils.callbacks import History, ProgressBar
from inr_utils.conditioning import with_signal
from inr_utils.config import FitConfig
from inr_utils.devices import MODEL_AXIS, model_mesh, padded_count, put
from inr_utils.engine import (
    Callback,
    make_chunk_program,
    plan_batch,
    train_many,
)
from inr_utils.errors import InputError, user_input
from inr_utils.evaluation import FullSignalEvaluator, make_evaluator, psnr_of_mse
from inr_utils.initialization import abstract_state_and_keys, init_states, loop_key_data
from inr_utils.losses import LOSSES
from inr_utils.model_axis import (
    check_compatible,
    signals_to_data,
    stack_images,
    stack_signals,
)
from inr_utils.optim import build_optimizer
from inr_utils.partitions import layout_for
from inr_utils.programs import cached, mesh_key, model_key, training_key
from inr_utils.samplers import PixelData, make_sampler
from inr_utils.training import TrainState, make_train_step, merge_variables
from model_components.inrs import model_config
from model_components.mlp import MLPINR

#: FitConfig fields every model of a sweep shares (they shape the compiled program or the step count).
SHARED_FIELDS = ("steps", "batch_size", "lr_schedule", "final_lr_fraction", "warmup_steps", "loss", "jitter",
                 "sampler", "steps_per_call")


__all__ = ["SHARED_FIELDS", "SweepResult", "check_sweep", "default_models_per_block", "fit_many", "sweep_grid",
           "unstack"]


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


def check_sweep(configs: FitConfig | Sequence[FitConfig], images: np.ndarray) -> None:
    """Raises :class:`InputError` if :func:`fit_many` would refuse ``configs`` with ``images`` (shared fields,
    parameter shapes, computation); cheap (traces, compiles nothing), so scripts check before writing."""
    configs = configs if isinstance(configs, FitConfig) else list(configs)
    images, stacked = stack_signals(images, _in_dim(configs))
    resolved = _resolve_configs(configs, None, None, images.shape[0] if stacked else None, None)
    in_dim = images.ndim - 1 - stacked
    check_compatible([dataclasses.replace(c.model, out_dim=images.shape[-1], in_dim=in_dim) for c in resolved])


def _in_dim(configs: FitConfig | list[FitConfig]) -> int | None:
    """The coordinate dimension the (first) config's model is set for, which tells a shared signal array from
    a stack (see :func:`stack_signals`); ``None`` without configs."""
    first = configs if isinstance(configs, FitConfig) else next(iter(configs), None)
    return None if first is None else first.model.in_dim


# --------------------------------------------------------------------------------------------- data


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


# --------------------------------------------------------------------------------------------- the front door


def default_models_per_block(pixels_per_step: int, width: int, budget_bytes: int = 1 << 19) -> int:
    """Models per block: as many as keep one hidden activation of a block, ``(block, pixels, width)`` float32,
    within ``budget_bytes`` (512 KiB, half a core's L2 cache on the CPUs it was tuned on), but at least 2, so
    that products stay batched (one model a block loses the batched products, large blocks the cache)."""
    return max(2, budget_bytes // max(1, pixels_per_step * width * 4))


@dataclass
class SweepResult:
    """What :func:`fit_many` returns (padding models already dropped).

    Attributes:
      model: the Flax module; its ``apply`` serves every model (give it :func:`unstack`'s variables).
      configs: the N resolved configs (seed, lr and ``model.out_dim`` filled in).
      state: final stacked :class:`TrainState`, every leaf ``(N, ...)``; sharded over the devices.
      history: per-step metrics and evaluations (:class:`inr_utils.callbacks.History`).
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
    history: History
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


def fit_many(configs: FitConfig | Sequence[FitConfig], images: np.ndarray | Sequence[np.ndarray] | None = None, *,
             seeds: Sequence[int] | None = None, lrs: Sequence[float] | None = None,
             num_models: int | None = None, state: TrainState | None = None,
             callbacks: Sequence[Callback] = (), progress: bool = True, eval_every: int = 200,
             devices: Sequence[jax.Device] | None = None, models_per_block: int | None = None,
             mask: np.ndarray | None = None) -> SweepResult:
    """Fits N INRs at once; model i is the fit :func:`inr_utils.fitting.fit` would make of its config.

    Args:
      configs: one config for all models, or N configs (equal in :data:`SHARED_FIELDS`; their models may
        differ only in hyperparameters that keep shapes and computation, see :func:`check_compatible`).
      images: ``(H, W, C)`` shared by all models, or ``(N, H, W, C)`` (or a list of N equal-size images)
        one per model, float in [0, 1]. Default: each config's ``image`` (all must load to one size). Signals
        of any dimension d work the same way: ``(*shape, C)`` shared or ``(N, *shape, C)`` (a list of N
        ``(*shape, C)``) one per model; an array is read by the configs' ``model.in_dim`` (``ndim == d + 1``:
        shared, ``d + 2``: a stack; default 2, images), a list is always a stack. The models' ``in_dim`` is
        set to the signals' d (as ``out_dim`` to their channels).
      seeds: N seeds replacing the configs' (init and sampling keys).
      lrs: N peak learning rates replacing the configs'.
      num_models: N, when nothing else says it (e.g. one config and one image, N identical copies).
      state: stacked state to continue from: an earlier result's ``(N, ...)`` or an
        :class:`inr_utils.engine.SweepInterrupted`'s (padding included), with the same configs.
      callbacks: extra :class:`inr_utils.engine.Callback` s after the built-in evaluator, history and
        progress bar.
      progress: show a progress bar.
      eval_every: steps between full-image PSNR evaluations (at chunk ends, as in ``fit``).
      devices: devices to shard the model axis over (default: all). N is padded to a multiple of their
        count with copies of the last model; the copies are dropped from the result.
      models_per_block: models a device trains side by side (see :func:`inr_utils.engine.make_chunk_program`); default
        :func:`default_models_per_block` of the pixels per step and the width. Results do not depend on it
        beyond float rounding.
      mask: optional boolean ``shape`` array shared by every model: train only on the samples where it is true,
        as :func:`inr_utils.fitting.fit`'s ``mask`` (the PSNRs are then over those samples only).

    Returns:
      a :class:`SweepResult`.

    Raises:
      InputError: inconsistent counts, configs that cannot share one program, images of different sizes, a bad
        mask.
      SweepInterrupted: Ctrl-C (carries the stacked state, padding included).
    """
    t_start = time.perf_counter()
    if eval_every <= 0:
        raise InputError(f"eval_every must be a positive number of steps, got {eval_every}")
    configs = configs if isinstance(configs, FitConfig) else list(configs)
    stacked = False
    if images is not None:
        images, stacked = stack_signals(images, _in_dim(configs))
    num_images = images.shape[0] if stacked else None
    configs = _resolve_configs(configs, seeds, lrs, num_images, num_models)
    n = len(configs)
    if images is None:
        images = _config_images(configs)
        stacked = images.ndim == 4
    channels, shape = images.shape[-1], images.shape[1 if stacked else 0:-1]
    configs = [dataclasses.replace(c, model=dataclasses.replace(c.model, out_dim=channels, in_dim=len(shape)))
               for c in configs]
    model = check_compatible([c.model for c in configs])

    mesh = model_mesh(devices)
    total = padded_count(n, mesh)
    # fitting imports this module's neighbours; import late
    from inr_utils.fitting import mask_rows, masked_data, observed_signal

    points = math.prod(shape) if mask is None else int(mask_rows(mask, shape).size)
    planned = plan_batch(configs[0], points, total)  # a too-large batch -> the full signal
    configs = [dataclasses.replace(c, batch_size=planned.batch_size) for c in configs]
    order = np.concatenate([np.arange(n), np.full(total - n, n - 1)]).astype(np.int64)
    padded = [configs[i] for i in order]
    if stacked:
        images = images[order]
    data, axes = signals_to_data(images, stacked, total)
    with user_input():  # a partitioned model (Local-Global INR) trains partition-major (inr_utils.partitions)
        layout = layout_for(configs[0].model, shape)
    if mask is not None:
        if layout is not None:
            raise InputError("a training mask does not work with a partitioned model (its layout needs every "
                             "sample); drop the mask or pick an unpartitioned model")
        data = masked_data(data, mask, shape)
    apply_fn, train_data, align = model.apply, data, 1
    if layout is not None:
        apply_fn, (train_data, data), align = layout.apply(model), layout.arrange(data), layout.slots
    data, train_data = (PixelData(*(put(x, mesh, P() if a is None else P(MODEL_AXIS)) for x, a in
                                    zip(d, axes, strict=True))) for d in (data, train_data))

    config = configs[0]
    if models_per_block is None:
        pixels = config.batch_size or math.prod(shape)
        models_per_block = default_models_per_block(pixels, config.model.width)
    program_key = (model_key(config.model), training_key(config), tuple(axes), mesh_key(mesh), layout is not None)
    step_fn, sampler = cached(("step", *program_key), lambda: (
        make_train_step(apply_fn, LOSSES.get(config.loss), build_optimizer(config, flat=True)),
        make_sampler(config.batch_size, config.jitter, config.sampler) if layout is None else
        layout.sampler(config.batch_size, config.jitter)))

    def make_chunk(num_steps: int) -> Callable:
        return cached(("chunk", *program_key, num_steps, models_per_block),
                      lambda: make_chunk_program(step_fn, sampler, num_steps, axes, mesh, models_per_block))

    shapes = tuple((x.shape, str(x.dtype)) for x in data)
    evaluate_fn = cached(("eval", *program_key, shapes),
                         lambda: make_evaluator(apply_fn, data, axes, mesh, align=align))

    # The first chunk (the largest program) compiles in a background thread while the models are initialised.
    # XLA compiles without holding the GIL, but tracing and lowering hold it, so the initialisation waits
    # until the chunk is lowered: then the two compilations run side by side on a multi-core host.
    first_step = 0 if state is None else int(np.asarray(jax.device_get(state.step)).reshape(-1)[0])
    first_chunk = min(config.steps_per_call, config.steps - first_step)
    abstract_state, abstract_keys = abstract_state_and_keys(padded[0], total, mesh)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fit_many-compile")
    lowered = threading.Event()
    try:
        compiling = executor.submit(_compile_chunk, make_chunk(first_chunk) if first_chunk > 0 else None,
                                    (abstract_state, train_data, abstract_keys), lowered)
        lowered.wait()
        if state is None:
            state, key_data = init_states(padded)
            # a model conditioned on its signal (INCODE) sees only the samples it trains on
            state = with_signal(state, images if mask is None else observed_signal(images, mask), stacked)
        else:
            leading = {x.shape[0] for x in jax.tree.leaves(state)}
            if leading not in ({n}, {total}):
                raise InputError(f"the state to continue from has model axes {sorted(leading)}, expected {n}")
            if leading == {n}:  # a result's state; a SweepInterrupted state already holds the padding
                state = jax.tree.map(lambda x: np.asarray(x)[order], jax.device_get(state))
            key_data = loop_key_data([c.seed for c in padded])
        state = put(state, mesh, P(MODEL_AXIS))
        keys = jax.random.wrap_key_data(put(np.asarray(key_data), mesh, P(MODEL_AXIS)))
        t0 = time.perf_counter()
        evaluator = evaluate_fn.lower(abstract_state.params, abstract_state.constants, data).compile()
        chunk, chunk_compile_s = compiling.result()
        compile_s = chunk_compile_s + time.perf_counter() - t0
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    if not _same_avals((state, keys), (abstract_state, abstract_keys)):  # e.g. a continued state of other dtypes
        chunk, evaluator = None, evaluate_fn
    init_s = time.perf_counter() - t_start

    history = History()
    evaluator_callback = FullSignalEvaluator(apply_fn, data, eval_every, data_axes=axes, mesh=mesh,
                                             evaluate=evaluator)
    bar = ProgressBar(config.steps, first_step, disable=not progress, num_models=n)
    try:
        result = train_many(state, train_data, keys, step_fn, sampler, config.steps, axes, mesh,
                            config.steps_per_call, [evaluator_callback, history, bar, *callbacks], models_per_block,
                            make_chunk, {first_chunk: chunk} if chunk is not None else None)
    finally:
        bar.close()
    if evaluator_callback.last is not None and evaluator_callback.last[0] == config.steps:
        _, mse, mse_clipped = evaluator_callback.last  # the last chunk's evaluation is of the final state
    else:
        mse, mse_clipped = evaluator_callback.evaluate(result.state.params, result.state.constants)
    keep = np.arange(n)
    final_state = result.state if total == n else jax.tree.map(lambda x: x[:n], result.state)
    return SweepResult(model, configs, final_state, history.select(keep), psnr_of_mse(mse_clipped[keep]),
                       psnr_of_mse(mse[keep]), result.diverged_step[keep], compile_s + result.compile_s, init_s,
                       result.wall_s - result.compile_s, time.perf_counter() - t_start,
                       config.steps - first_step, mesh.devices.size)


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
