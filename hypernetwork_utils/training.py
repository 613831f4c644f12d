"""Training a hypernetwork: its settings, the pure train step, the compiled chunk and the loop.

Built on the pieces every fit uses: the state is :class:`inr_utils.training.TrainState` (``params`` the
hypernetwork's, ``constants`` its other collections), the loop is :func:`inr_utils.engine.train_many` (one model,
its data a stream of image chunks), the callbacks and checkpoints are :mod:`inr_utils.callbacks` and
:mod:`inr_utils.checkpoints`, the optimizer Adam with :func:`inr_utils.optim.scale_by_scheduled_lr`.

* :func:`make_hyper_train_step` -- ``step(state, images (B, H, W, C), key) -> (state, metrics)``: full-image
  reconstruction, every pixel of every image, MSE; optional Gaussian jitter of the query coordinates.
* :func:`make_hyper_chunk` -- ``run(state, images (k, B, H, W, C), key)``: k steps in one ``lax.scan``; step s
  uses ``fold_in(key, s)``, and its batch is a pure function of s (:class:`hypernetwork_utils.batches.Batches`),
  so how steps are grouped into calls, and a resume, change nothing.
* :func:`make_hyper_program` -- the chunk jitted once per chunk length, data parallel over a mesh
  (:mod:`hypernetwork_utils.distributed`).
* :func:`train_hypernetwork` -- the loop: chunks of ``steps_per_call`` steps, callbacks between them, Ctrl-C /
  SIGTERM turned into :class:`inr_utils.training.TrainingInterrupted`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from hypernetwork_utils.distributed import batch_sharding, global_batch, replicate, replicated
from inr_utils.engine import ChunkInfo, SweepInterrupted, train_many
from inr_utils.grids import grid
from inr_utils.metrics import psnr_from_mse
from inr_utils.optim import scale_by_scheduled_lr
from inr_utils.programs import cached, mesh_key
from inr_utils.training import (
    DivergenceError,
    TrainingInterrupted,
    TrainState,
    divergence_message,
    merge_variables,
    split_variables,
    tree_all_finite,
)

__all__ = ["HyperTrainingSettings", "image_coords", "build_hyper_optimizer", "init_hyper_state",
           "make_hyper_train_step", "make_hyper_chunk", "make_hyper_program", "train_hypernetwork",
           "HyperTrainResult"]

Metrics = dict[str, jax.Array]


@dataclass(frozen=True)
class HyperTrainingSettings:
    """How a hypernetwork is trained; plain JSON-ready data (:meth:`to_dict` / :meth:`from_dict`).

    Attributes:
      batch_size: images per step, all processes together (split over the devices; a multiple of their count).
      lr: peak Adam learning rate.
      warmup_epochs: linear warm-up of the learning rate from 0, in epochs (may be fractional).
      epochs: training length in passes over the training images (the schedule's horizon).
      steps: training length in steps instead of epochs (``None``: ``ceil(epochs * steps_per_epoch)``).
      final_lr_fraction: learning rate at the end of the cosine decay, as a fraction of ``lr``.
      jitter: standard deviation of the Gaussian noise added to the query coordinates at every step, per image
        and pixel, in coordinate units ([-1, 1] spans the image); the targets stay the pixel values. 0 disables.
      seed: seed of the initialisation (``fold_in(key(seed), 0)``), the loop (``fold_in(key(seed), 1)``) and the
        batch order.
      steps_per_call: steps per compiled call (a ``lax.scan``); callbacks run between calls.
      checkpoint_every: steps between checkpoints (0: only at the end or on Ctrl-C).
      eval_every: steps between held-out PSNR evaluations (0: only at the end).
      val_count: images held out of the training data for validation (the figure and the held-out PSNR).
    """

    batch_size: int = 16
    lr: float = 5e-4
    warmup_epochs: float = 5.0
    epochs: float = 40.0
    steps: int | None = None
    final_lr_fraction: float = 0.0
    jitter: float = 0.01
    seed: int = 0
    steps_per_call: int = 25
    checkpoint_every: int = 2000
    eval_every: int = 1000
    val_count: int = 500

    def validate(self) -> HyperTrainingSettings:
        """Raises ``ValueError`` naming the bad setting; returns self."""
        positive = {"batch_size": self.batch_size, "lr": self.lr, "epochs": self.epochs,
                    "steps_per_call": self.steps_per_call}
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"training setting {name} must be positive, got {value}")
        non_negative = {"warmup_epochs": self.warmup_epochs, "jitter": self.jitter, "val_count": self.val_count,
                        "checkpoint_every": self.checkpoint_every, "eval_every": self.eval_every}
        for name, value in non_negative.items():
            if value < 0:
                raise ValueError(f"training setting {name} must be >= 0, got {value}")
        if self.steps is not None and self.steps <= 0:
            raise ValueError(f"training setting steps must be positive, got {self.steps}")
        if not 0 <= self.final_lr_fraction <= 1:
            raise ValueError(f"final_lr_fraction must be in [0, 1], got {self.final_lr_fraction}")
        return self

    def total_steps(self, steps_per_epoch: int) -> int:
        """Steps of the whole run: ``steps``, or ``ceil(epochs * steps_per_epoch)``."""
        return self.steps if self.steps is not None else max(1, math.ceil(self.epochs * steps_per_epoch))

    def warmup_steps(self, steps_per_epoch: int) -> int:
        """Warm-up length in steps, ``round(warmup_epochs * steps_per_epoch)``, at most half the run."""
        return min(round(self.warmup_epochs * steps_per_epoch), self.total_steps(steps_per_epoch) // 2)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> HyperTrainingSettings:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` listing the valid ones."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}; valid: {', '.join(names)}")
        return cls(**values).validate()


def image_coords(height: int, width: int) -> jax.Array:
    """``(H * W, 2)`` float32 pixel-centre coordinates in [-1, 1], row-major (``inr_utils.grids.grid``): the
    queries that reconstruct an ``(H, W, C)`` image reshaped to ``(H * W, C)``."""
    return grid((height, width)).reshape(-1, 2)


def build_hyper_optimizer(settings: HyperTrainingSettings, steps_per_epoch: int) -> optax.GradientTransformation:
    """Adam (Kingma & Ba 2015) with linear warm-up over ``warmup_epochs`` then cosine decay to
    ``final_lr_fraction * lr`` at the end of the run (the LA-INR / Trans-INR recipe):
    ``lr_s = lr * s / W`` for ``s < W``, then ``lr * (f + (1 - f) (1 + cos(pi (s - W) / (T - W))) / 2)``.
    The peak lr and the horizon T live in the optimizer state (:func:`inr_utils.optim.scale_by_scheduled_lr`),
    so a run resumed with more steps keeps the schedule it started with."""
    return optax.chain(optax.scale_by_adam(),
                       scale_by_scheduled_lr(settings.lr, settings.total_steps(steps_per_epoch), "cosine",
                                             settings.final_lr_fraction, settings.warmup_steps(steps_per_epoch)))


def init_hyper_state(model: nn.Module, optimizer: optax.GradientTransformation, key: jax.Array,
                     image_shape: Sequence[int], mesh: Mesh | None = None) -> TrainState:
    """Step-0 :class:`TrainState` of a hypernetwork taking ``(H, W, C)`` images: ``params`` its ``"params"``,
    ``constants`` its other collections; replicated over ``mesh`` when given (every process must pass the same
    ``key``)."""
    h, w, c = image_shape

    @jax.jit
    def init(key: jax.Array) -> TrainState:
        params, constants = split_variables(model.init(key, jnp.zeros((1, h, w, c), jnp.float32),
                                                       image_coords(h, w)))
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, constants=constants,
                          opt_state=optimizer.init(params))

    state = init(key)
    return state if mesh is None else replicate(jax.device_get(state), mesh)


def make_hyper_train_step(apply_fn: Callable[..., jax.Array], optimizer: optax.GradientTransformation,
                          image_size: Sequence[int], jitter: float = 0.0,
                          ) -> Callable[[TrainState, jax.Array, jax.Array], tuple[TrainState, Metrics]]:
    """The pure train step ``step(state, images, key) -> (state, metrics)`` of a hypernetwork.

    Every image is reconstructed at all ``H * W`` pixels: ``loss = mean_{b, p, c} (f_b(x_p + e_bp) - y_bp)^2``
    with ``f_b = apply(variables, images)[b]``, ``x_p`` the pixel centres (:func:`image_coords`) and ``e_bp`` ~
    N(0, ``jitter``^2 I) drawn from ``key`` per image and pixel (``e = 0`` when ``jitter`` is 0; the coordinates
    are then shared by the batch).

    Args:
      apply_fn: the hypernetwork's ``apply``: ``(variables, images (B, H, W, C), coords (P, d) or (B, P, d))
        -> (B, P, C)``.
      optimizer: e.g. :func:`build_hyper_optimizer`.
      image_size: ``(H, W)`` of the images.
      jitter: coordinate noise standard deviation.

    Returns:
      ``step``; ``images`` float32 ``(B, H, W, C)`` in [0, 1]; metrics float32 scalars ``loss`` (the MSE),
      ``psnr`` (of the batch, from the MSE) and ``grad_norm`` (global L2 norm of the gradients).
    """
    coords = image_coords(*image_size)

    def step(state: TrainState, images: jax.Array, key: jax.Array) -> tuple[TrainState, Metrics]:
        b, h, w, c = images.shape
        target = images.reshape(b, h * w, c)
        if jitter > 0:
            queries = coords[None] + jitter * jax.random.normal(key, (b, *coords.shape), coords.dtype)
        else:
            queries = coords

        def loss_of(params):
            pred = apply_fn(merge_variables(params, state.constants), images, queries)
            return jnp.mean(jnp.square(pred.astype(jnp.float32) - target))

        loss, grads = jax.value_and_grad(loss_of)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "psnr": psnr_from_mse(loss), "grad_norm": optax.tree.norm(grads)}
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return step


def make_hyper_chunk(train_step: Callable) -> Callable[[TrainState, jax.Array, jax.Array], tuple[TrainState, Metrics]]:
    """``run(state, images (k, B, H, W, C), key) -> (state, metrics)``: k steps in one ``lax.scan`` (not jitted),
    step s with key ``fold_in(key, s)`` and batch ``images[s - state.step]``.

    The metrics have the engine's layout (:func:`inr_utils.engine.make_chunk_program`, one model): ``loss``,
    ``psnr``, ``grad_norm`` each ``(k, 1)``, and ``params_finite`` ``(1, 1)``.
    """

    def run(state: TrainState, images: jax.Array, key: jax.Array) -> tuple[TrainState, Metrics]:
        def body(state: TrainState, batch: jax.Array) -> tuple[TrainState, Metrics]:
            return train_step(state, batch, jax.random.fold_in(key, state.step))

        new_state, metrics = jax.lax.scan(body, state, images)
        metrics = {name: value[:, None] for name, value in metrics.items()}
        metrics["params_finite"] = tree_all_finite(new_state.params).reshape(1, 1)
        return new_state, metrics

    return run


def make_hyper_program(train_step: Callable, mesh: Mesh | None = None) -> Callable:
    """:func:`make_hyper_chunk` jitted: on the default device, or data parallel over ``mesh`` (state and key
    replicated, the chunk's batch axis split along the data axis, metrics replicated). One compilation per
    chunk length k."""
    chunk = make_hyper_chunk(train_step)
    if mesh is None:
        return jax.jit(chunk)
    same = replicated(mesh)
    return jax.jit(chunk, in_shardings=(same, batch_sharding(mesh, 1), same), out_shardings=(same, same))


@dataclass
class HyperTrainResult:
    """Output of :func:`train_hypernetwork`: the final state, seconds compiling and in total, steps run."""

    state: TrainState
    compile_s: float
    wall_s: float
    steps_run: int


def train_hypernetwork(state: TrainState, chunks: Callable[[int, int], np.ndarray], key: jax.Array,
                       train_step: Callable, total_steps: int, mesh: Mesh | None = None, steps_per_call: int = 25,
                       callbacks: Sequence[Callable[[ChunkInfo], None]] = ()) -> HyperTrainResult:
    """Trains from ``state.step`` to ``total_steps``: the engine's loop (:func:`inr_utils.engine.train_many`, one
    model) over a stream of image chunks.

    Args:
      state: initial (or restored) state, replicated over ``mesh`` when there is one.
      chunks: ``chunks(step, k)`` -> this process's rows of the batches of steps ``step .. step + k - 1``,
        float32 ``(k, B / process_count, H, W, C)`` (e.g. :meth:`hypernetwork_utils.batches.Batches.chunk`).
      key: the loop key (the same in every process).
      train_step: from :func:`make_hyper_train_step`.
      total_steps: global step to stop at.
      mesh: the data mesh (:func:`hypernetwork_utils.distributed.data_mesh`), or ``None`` for the default device.
      steps_per_call: steps per compiled call; a shorter last chunk compiles once more.
      callbacks: single-model callbacks (:mod:`inr_utils.callbacks`), called in order after every chunk with a
        :class:`inr_utils.engine.ChunkInfo` (metrics ``(k, 1)``).

    Raises:
      DivergenceError: the loss or the parameters became NaN/inf; carries the last good state.
      TrainingInterrupted: Ctrl-C or SIGTERM; carries the state after the last complete chunk.
    """
    program = cached(("hyper-chunk", train_step, mesh_key(mesh)), lambda: make_hyper_program(train_step, mesh))
    if mesh is None:
        def data(step: int, k: int) -> jax.Array:
            return jnp.asarray(chunks(step, k))
    else:
        key = replicate(key, mesh)  # the same key in every process

        def data(step: int, k: int) -> jax.Array:
            return global_batch(chunks(step, k), mesh)

    first = int(np.asarray(jax.device_get(state.step)))
    try:
        result = train_many(state, data, key, None, None, total_steps, None, mesh, steps_per_call, callbacks,
                            make_chunk=lambda _: program, stop_when_all_diverged=True)
    except SweepInterrupted as err:
        raise TrainingInterrupted(err.state, err.signum) from None
    if result.diverged_step[0] >= 0:
        message = divergence_message(int(result.diverged_step[0]), bool(result.diverged_loss[0]))
        raise DivergenceError(message, result.state)
    final = result.state
    return HyperTrainResult(final, result.compile_s, result.wall_s, int(np.asarray(jax.device_get(final.step))) - first)
