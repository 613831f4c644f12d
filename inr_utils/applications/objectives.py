"""Fitting an INR through a forward operator: the loss is ``loss(operator(field, coords), target)``, where the
*field* is the INR as a function of coordinates and the operator any JAX function of it (a Radon transform of
the field sampled on a pixel grid or along rays, the field's spatial gradient or Laplacian by autodiff, or the
identity on a grid). The INR is never compared with the signal itself, only with measurements of it.

The pieces:
  * :func:`make_operator_step` -- the pure train step ``(state, batch, key) -> (state, metrics)`` of such a loss,
    the counterpart of :func:`inr_utils.training.make_train_step` (whose loss compares ``apply(coords)`` with
    ``values`` directly).
  * :func:`field_gradient`, :func:`field_second_derivatives`, :func:`field_laplacian` -- d field / d coords, the
    diagonal of its Hessian and the Laplacian (trace of the Hessian), per point, by ``jax.jvp`` and
    ``jax.hessian`` of the model with respect to its input (the models compose with both).
  * :func:`fit_operator` -- builds the model, optimizer and step-0 state of a :class:`~inr_utils.config.FitConfig`
    with the library's builders and trains it with the one engine, :func:`inr_utils.engine.train_many`, on
    ``PixelData(coords, target)`` read whole every step (the ``full`` sampler).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from inr_utils.callbacks import History
from inr_utils.config import FitConfig
from inr_utils.engine import Callback, shared_axes, single_model, train_many
from inr_utils.errors import InputError
from inr_utils.images import image_files
from inr_utils.initialization import init_state
from inr_utils.losses import LOSSES, Loss
from inr_utils.metrics import psnr_from_mse
from inr_utils.optim import build_optimizer
from inr_utils.samplers import PixelData, make_sampler
from inr_utils.training import DivergenceError, TrainState, divergence_message, merge_variables
from model_components.inrs import build_model

__all__ = ["Field", "Operator", "OperatorFit", "field_gradient", "field_laplacian", "field_second_derivatives",
           "fit_operator", "make_operator_step", "identity_operator", "image_specs", "load_gray", "render_field"]

#: A field: ``coords (..., d) -> values (..., C)`` (an INR with its variables bound).
Field = Callable[[jax.Array], jax.Array]
#: A forward operator: ``(field, coords) -> measurements`` (any shape, compared with the target's).
Operator = Callable[[Field, jax.Array], jax.Array]


def identity_operator(field: Field, coords: jax.Array) -> jax.Array:
    """The field sampled at ``coords``: an ordinary fit (used to check the step against the library's)."""
    return field(coords)


def _axis_tangent(coords: jax.Array, k: int) -> jax.Array:
    return jnp.zeros_like(coords).at[..., k].set(1.0)


def field_gradient(field: Field, coords: jax.Array) -> jax.Array:
    """Spatial gradient of a scalar field at every point, by forward-mode autodiff through the model: one
    ``jax.jvp`` per coordinate axis with the tangent ``e_k`` at every point (the points are independent, so this
    is ``jax.jacfwd`` of each point's value, batched).

    Args:
      field: ``(..., d) -> (..., 1)``.
      coords: ``(..., d)`` points in the field's coordinates.

    Returns:
      ``(..., d)``: ``d field / d coords[..., k]`` in units of value per coordinate unit (the image domain is
      [-1, 1], so a pixel of an ``n``-pixel axis is ``2 / n`` coordinate units wide).
    """
    return jnp.stack([jax.jvp(field, (coords,), (_axis_tangent(coords, k),))[1][..., 0]
                      for k in range(coords.shape[-1])], axis=-1)


def field_second_derivatives(field: Field, coords: jax.Array) -> jax.Array:
    """``d^2 f / d coords[k]^2`` of a scalar field at every point, ``(..., d) -> (..., d)`` (per squared coordinate
    unit): forward over forward (``jax.jvp`` of a ``jax.jvp``) along each axis, the diagonal of the Hessian
    without the off-diagonal terms (about half the cost of :func:`field_laplacian`'s ``jax.hessian``)."""
    out = []
    for k in range(coords.shape[-1]):
        tangent = _axis_tangent(coords, k)

        def first(x, tangent=tangent):
            return jax.jvp(field, (x,), (tangent,))[1]

        out.append(jax.jvp(first, (coords,), (tangent,))[1][..., 0])
    return jnp.stack(out, axis=-1)


def field_laplacian(field: Field, coords: jax.Array) -> jax.Array:
    """Laplacian ``sum_k d^2 field / d coords[..., k]^2`` of a scalar field at every point: the trace of
    ``jax.hessian`` of the model with respect to its input.

    Returns:
      ``(...,)`` in value per squared coordinate unit.
    """
    flat = coords.reshape(-1, coords.shape[-1])
    hessians = jax.vmap(jax.hessian(lambda x: field(x)[..., 0]))(flat)
    return jnp.trace(hessians, axis1=-2, axis2=-1).reshape(coords.shape[:-1])


def make_operator_step(apply_fn: Callable[..., jax.Array], operator: Operator, loss_fn: Loss,
                       optimizer: optax.GradientTransformation,
                       ) -> Callable[[TrainState, tuple[jax.Array, jax.Array], jax.Array], tuple[TrainState, dict]]:
    """The pure train step of an operator loss: ``step(state, (coords, target), key) -> (state, metrics)``.

    The loss is ``loss_fn(operator(field, coords), target)`` with ``field = lambda x: apply_fn(variables, x)``;
    its gradient with respect to the parameters flows through the operator (linear, like a Radon transform, or
    itself a derivative of the field, like a gradient or Laplacian).

    Args:
      apply_fn: ``model.apply``: ``(variables, coords (..., d)) -> (..., C)``.
      operator: ``(field, coords) -> measurements``, a pure JAX function.
      loss_fn: ``loss(pred, target) -> scalar`` (e.g. :data:`inr_utils.losses.LOSSES` ``"mse"``).
      optimizer: any optax transformation (the library's :func:`inr_utils.optim.build_optimizer`).

    Returns:
      ``step`` with float32 scalar metrics ``loss``, ``psnr`` (of the measurements' mean squared error, with a
      data range of 1: only a relative progress measure, since measurements are not images in [0, 1]) and
      ``grad_norm``.
    """

    def step(state: TrainState, batch: tuple[jax.Array, jax.Array], key: jax.Array) -> tuple[TrainState, dict]:
        del key  # deterministic: every step sees the whole measurement
        coords, target = batch

        def loss_of(params):
            variables = merge_variables(params, state.constants)
            pred = operator(lambda x: apply_fn(variables, x), coords)
            return loss_fn(pred, target), pred

        (loss, pred), grads = jax.value_and_grad(loss_of, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "psnr": psnr_from_mse(jnp.mean(jnp.square(pred - target))),
                   "grad_norm": optax.tree.norm(grads)}
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return step


@dataclass
class OperatorFit:
    """What :func:`fit_operator` returns.

    Attributes:
      apply_fn: the model's ``apply``.
      state: the final train state.
      history: per-step loss (``history.loss[:, 0]``) and the evaluations of ``evaluate`` callbacks.
      wall_s: seconds of the training loop, compilation included.
      compile_s: seconds spent compiling.
    """

    apply_fn: Callable[..., jax.Array]
    state: TrainState
    history: History
    wall_s: float
    compile_s: float

    @property
    def variables(self) -> dict[str, Any]:
        """``model.apply``'s ``variables`` of the final state."""
        return merge_variables(self.state.params, self.state.constants)

    def field(self) -> Field:
        """The fitted field ``coords (..., d) -> values (..., C)``, jitted."""
        variables = self.variables
        return jax.jit(lambda x: self.apply_fn(variables, x))


def render_field(field: Field, coords: jax.Array | np.ndarray, chunk: int = 65536) -> np.ndarray:
    """``field`` at ``coords (..., d)`` as float32 numpy ``(..., C)``, in chunks of ``chunk`` points."""
    coords = np.asarray(coords, np.float32)
    flat = coords.reshape(-1, coords.shape[-1])
    parts = [np.asarray(field(jnp.asarray(flat[i:i + chunk]))) for i in range(0, flat.shape[0], chunk)]
    return np.concatenate(parts).reshape(*coords.shape[:-1], -1).astype(np.float32)


def fit_operator(config: FitConfig, operator: Operator, coords: jax.Array | np.ndarray,
                 target: jax.Array | np.ndarray, in_dim: int = 2, out_dim: int = 1,
                 callbacks: Sequence[Callable[[Any], None]] = (), loss: str | None = None) -> OperatorFit:
    """Trains ``config``'s INR so that ``operator(field, coords)`` matches ``target``, with the one engine.

    The model, optimizer (Adam with the config's schedule) and step-0 state come from the library's builders
    (:func:`model_components.inrs.build_model`, :func:`inr_utils.optim.build_optimizer`,
    :func:`inr_utils.initialization.init_state`, so the same seed gives the same initial weights as ``fit``);
    :func:`inr_utils.engine.train_many` runs ``config.steps`` steps of :func:`make_operator_step` in chunks of
    ``config.steps_per_call``. Every step uses the whole ``coords`` and ``target`` (``config.batch_size`` is
    ignored: an operator such as a projection needs the whole field).

    Args:
      config: the model and training settings (``model.in_dim`` / ``out_dim`` are set from ``in_dim`` and
        ``out_dim``).
      operator: ``(field, coords) -> measurements`` of the target's shape.
      coords: the points the operator evaluates the field at (any shape the operator understands).
      target: the measurements.
      callbacks: single-model callbacks (see :class:`inr_utils.engine.ChunkInfo`) run after every chunk,
        after the history.
      loss: a name in :data:`inr_utils.losses.LOSSES` (default: ``config.loss``).

    Raises:
      InputError: the operator's output and the target differ in shape; a non-finite target.
      DivergenceError: the loss became NaN/inf (from :func:`inr_utils.engine.train_many`'s record).
    """
    config = config.validate()
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, in_dim=in_dim, out_dim=out_dim))
    coords = jnp.asarray(coords, jnp.float32)
    target = jnp.asarray(target, jnp.float32)
    if not bool(jnp.all(jnp.isfinite(target))):
        raise InputError("the target measurements contain NaN or inf; pass finite values")
    model = build_model(config.model)
    state, key = init_state(config)
    expected = jax.eval_shape(lambda s: operator(lambda x: model.apply(merge_variables(s.params, s.constants), x),
                                                 coords), state)
    if tuple(expected.shape) != tuple(target.shape):
        raise InputError(f"the operator gives measurements of shape {tuple(expected.shape)} but the target has "
                         f"shape {tuple(target.shape)}; pass a target of the operator's shape")
    step = make_operator_step(model.apply, operator, LOSSES.get(loss or config.loss), build_optimizer(config))
    data = PixelData(coords, target, jnp.zeros((in_dim,), jnp.float32))
    history = History()
    all_callbacks: list[Callback] = [history, *(single_model(c) for c in callbacks)]
    result = train_many(state, data, key, step, make_sampler(None), config.steps, shared_axes(), None,
                        config.steps_per_call, all_callbacks, stop_when_all_diverged=True)
    if result.diverged_step[0] >= 0:
        raise DivergenceError(divergence_message(int(result.diverged_step[0]), bool(result.diverged_loss[0])),
                              result.state)
    return OperatorFit(model.apply, result.state, history, result.wall_s, result.compile_s)


def image_specs(image: str | None, images_dir: str | None, default: str) -> list[str]:
    """The images an application script works on: every image file in ``images_dir`` (sorted by name), else
    ``image`` (a file or a scikit-image name), else ``default``.

    Raises:
      InputError: ``images_dir`` is not a folder or holds no image file; both flags given.
    """
    if image is not None and images_dir is not None:
        raise InputError("pass either --image or --images, not both")
    if images_dir is None:
        return [image or default]
    return [str(p) for p in image_files(images_dir)]


def load_gray(spec: str, size: int) -> tuple[str, np.ndarray]:
    """``(label, image)``: the image of ``spec`` (a file or a scikit-image name) as float32 ``(size, size)`` gray
    in [0, 1] (centre square, resized; colour channels averaged).

    Raises:
      InputError: an unreadable file or an unknown name.
    """
    from inr_utils.images import centre_square, fit_size, load_source

    label, image = load_source(spec)
    image = fit_size(centre_square(image), size)
    image = image[..., :3].mean(axis=-1) if image.shape[-1] >= 3 else image[..., 0]
    return label, np.clip(image, 0.0, 1.0).astype(np.float32)
