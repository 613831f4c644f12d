"""Meta-learned initialisation of an INR: shared weights that fit a new image in a few gradient steps.

Two variants of one algorithm, picked by :attr:`MetaConfig.adapt`:

* ``"shifts"`` -- functa / CAVIA: the weights are shared by all images, and only the *shift modulations* (the
  biases of the hidden layers, i.e. per-layer shifts of the hidden pre-activations, FiLM shifts) are adapted per
  image in the inner loop (Dupont et al. 2022, "From data to functa"; Zintgraf et al. 2019, CAVIA). With a SIREN,
  layer l computes ``h_l = sin(omega0 (W_l h_{l-1} + b_l + s_l))``; the shifts ``s_l`` of an image start at 0 and
  ``b_l`` is their meta-learned starting point, so adapting ``b_l`` is adapting the shifts.
* ``"all"`` -- MAML (Finn et al. 2017) applied to INRs (Tancik et al. 2021, "Learned initializations for
  optimizing coordinate-based neural representations"): every parameter is adapted, the initialisation is learned.

Inner loop (one image, coordinates ``x`` (P, 2), pixels ``y`` (P, C)), K steps of SGD on the adapted
parameters ``phi`` only, with per-parameter learning rates ``alpha`` (Meta-SGD, Li et al. 2017) when
``learn_inner_lr``, else the constant ``inner_lr``::

    phi_0 = phi,   phi_{k+1} = phi_k - alpha * grad_phi L(theta, phi_k),   L = mean_{p,c} (f(x_p) - y_pc)^2

Outer loop: Adam on ``(theta, phi, alpha)`` minimising the batch mean of ``L(theta, phi_K)``, differentiating
through the K inner steps: second-order MAML by default; ``first_order`` stops the gradient of the inner
gradients (first-order MAML: ``d phi_K / d phi = I``; ``alpha`` still gets its gradient through ``-alpha * g``).

The meta-parameters are one pytree ``{"inr": the INR's params, "inner_lr": alpha}`` (``alpha`` has the nested
structure of the adapted leaves only), so the outer step is an ordinary ``step(state, images, key)`` that
:func:`hypernetwork_utils.training.train_hypernetwork` runs (the engine's loop, chunks, callbacks, checkpoints).
Images are processed with ``vmap`` (one program for the batch); the INR is any entry of
:data:`model_components.inrs.MODELS` (default: a SIREN).

Evaluation (:func:`adaptation_curves`): PSNR after 0..K inner steps on held-out images, for the meta-learned
initialisation and for a random one (same architecture, same inner SGD).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from hypernetwork_utils.training import image_coords
from inr_utils.metrics import psnr_from_mse
from inr_utils.programs import cached
from inr_utils.training import TrainState, merge_variables, split_variables
from model_components.inrs import ModelConfig, build_model, model_config

__all__ = ["ADAPT_MODES", "MetaConfig", "build_meta_model", "adapted_paths", "split_adapted", "merge_adapted",
           "init_meta_params", "inner_loop", "meta_loss", "make_meta_train_step", "adaptation_curves",
           "constant_inner_lr"]

Metrics = dict[str, jax.Array]
Params = Any

#: What the inner loop adapts: ``shifts`` (biases of every layer but the output head, functa / CAVIA) or ``all``.
ADAPT_MODES = ("shifts", "all")


@dataclass(frozen=True)
class MetaConfig:
    """The meta-learning problem: the INR, what its inner loop adapts and how; plain JSON-ready data.

    Attributes:
      model: flat settings of the INR for :func:`model_components.inrs.model_config` (a preset name under
        ``"model"`` plus overrides, e.g. ``{"model": "siren", "width": 64, "depth": 3}``); ``out_dim`` and
        ``in_dim`` are set from the images.
      adapt: ``"shifts"`` (functa: only the hidden layers' biases per image) or ``"all"`` (MAML).
      inner_steps: K, SGD steps of the inner loop during meta-training.
      inner_lr: initial (``learn_inner_lr``) or fixed inner learning rate, per unit of the mean-squared error.
      learn_inner_lr: learn one inner learning rate per adapted parameter (Meta-SGD).
      first_order: first-order MAML (no second derivatives through the inner loop).
    """

    model: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: {"model": "siren", "width": 64, "depth": 3})
    adapt: str = "all"
    inner_steps: int = 3
    inner_lr: float = 0.1
    learn_inner_lr: bool = True
    first_order: bool = False

    def validate(self) -> MetaConfig:
        """Raises ``ValueError`` naming the bad field and the fix; returns self."""
        if self.adapt not in ADAPT_MODES:
            raise ValueError(f"unknown adapt mode {self.adapt!r}; choose one of: {', '.join(ADAPT_MODES)}")
        if not isinstance(self.inner_steps, int) or self.inner_steps < 1:
            raise ValueError(f"inner_steps must be a positive integer, got {self.inner_steps!r}")
        if not self.inner_lr > 0:
            raise ValueError(f"inner_lr must be positive, got {self.inner_lr}")
        if not isinstance(self.model, Mapping) or "model" not in self.model:
            raise ValueError("model must be a dict of INR settings with a preset name, e.g. {'model': 'siren'}")
        return self

    def model_config(self, channels: int) -> ModelConfig:
        """The INR's :class:`ModelConfig` for images with ``channels`` channels (2-D coordinates)."""
        settings = dict(self.model)
        return model_config(settings.pop("model"), **{**settings, "out_dim": channels, "in_dim": 2})

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "model": dict(self.model)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> MetaConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` listing the valid ones."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"unknown meta-learning setting(s) {unknown}; valid: {', '.join(names)}")
        return cls(**values).validate()


def build_meta_model(meta: MetaConfig, channels: int) -> nn.Module:
    """The INR module of ``meta`` for ``channels``-channel images (``apply(variables, coords (..., 2))``)."""
    return build_model(meta.model_config(channels))


def adapted_paths(params: Params, adapt: str) -> list[tuple[str, ...]]:
    """Paths (tuples of keys) of the leaves of ``params`` that the inner loop adapts, in sorted order.

    ``shifts``: every leaf named ``bias`` outside the top-level ``head`` (the hidden pre-activation shifts);
    ``all``: every leaf. Raises ``ValueError`` when nothing is selected (a model without hidden biases)."""
    flat = traverse_util.flatten_dict(params)
    if adapt == "all":
        paths = sorted(flat)
    elif adapt == "shifts":
        paths = sorted(p for p in flat if p[-1] == "bias" and p[0] != "head")
    else:
        raise ValueError(f"unknown adapt mode {adapt!r}; choose one of: {', '.join(ADAPT_MODES)}")
    if not paths:
        raise ValueError(f"the model has no parameters to adapt in mode {adapt!r} (no hidden-layer biases); "
                         "use adapt='all'")
    return paths


def split_adapted(params: Params, adapt: str) -> Params:
    """The adapted leaves of ``params`` as a nested dict of the same keys (the inner loop's variables)."""
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict({p: flat[p] for p in adapted_paths(params, adapt)})


def merge_adapted(params: Params, adapted: Params) -> Params:
    """``params`` with the leaves present in ``adapted`` replaced by its values (inverse of
    :func:`split_adapted`)."""
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict({**flat, **traverse_util.flatten_dict(adapted)})


def constant_inner_lr(params: Params, adapt: str, lr: float) -> Params:
    """Inner learning rates ``alpha`` all equal to ``lr``: float32 leaves shaped like the adapted parameters."""
    return jax.tree.map(lambda a: jnp.full(jnp.shape(a), lr, jnp.float32), split_adapted(params, adapt))


def init_meta_params(model: nn.Module, meta: MetaConfig, key: jax.Array) -> tuple[Params, dict[str, Any]]:
    """Step-0 meta-parameters ``{"inr": params, "inner_lr": alpha}`` and the INR's constants.

    ``params`` is the INR's own initialisation (``model.init(key, ...)``, the paper init of its layers; the same
    that :func:`adaptation_curves` uses as the random baseline for the same key); ``alpha = inner_lr``
    everywhere."""
    params, constants = split_variables(model.init(key, jnp.zeros((1, 2), jnp.float32)))
    return {"inr": params, "inner_lr": constant_inner_lr(params, meta.adapt, meta.inner_lr)}, constants


def _image_loss(apply_fn: Callable, params: Params, constants: Any, coords: jax.Array, target: jax.Array
                ) -> jax.Array:
    pred = apply_fn(merge_variables(params, constants), coords)
    return jnp.mean(jnp.square(pred.astype(jnp.float32) - target))


def inner_loop(apply_fn: Callable, params: Params, constants: Any, inner_lr: Params, coords: jax.Array,
               target: jax.Array, steps: int, adapt: str, first_order: bool = False,
               ) -> tuple[Params, jax.Array]:
    """Adapts one INR to one image: ``steps`` SGD steps on the adapted leaves (:func:`adapted_paths`) only.

    ``phi_{k+1} = phi_k - alpha * grad_phi MSE(f_{theta, phi_k}(coords), target)`` (elementwise ``alpha``).

    Args:
      apply_fn: the INR's ``apply(variables, coords (P, 2)) -> (P, C)``.
      params: the INR's params (the starting point ``phi_0`` for the adapted leaves, fixed ``theta`` for the rest).
      constants: the INR's other collections.
      inner_lr: ``alpha``, shaped like :func:`split_adapted`'s output.
      coords: float32 ``(P, 2)`` query points; target: float32 ``(P, C)`` pixel values in [0, 1].
      steps: number of inner steps (static); 0 returns ``params`` unchanged.
      adapt: ``shifts`` or ``all``.
      first_order: stop the gradient through the inner gradients (first-order MAML).

    Returns:
      ``(adapted params, losses)``: the full params after ``steps`` steps, and float32 ``(steps + 1,)`` MSEs
      before each step and after the last.
    """
    start = split_adapted(params, adapt)

    def loss_of(adapted: Params) -> jax.Array:
        return _image_loss(apply_fn, merge_adapted(params, adapted), constants, coords, target)

    def body(adapted: Params, _: None) -> tuple[Params, jax.Array]:
        loss, grads = jax.value_and_grad(loss_of)(adapted)
        if first_order:
            grads = jax.lax.stop_gradient(grads)
        return jax.tree.map(lambda p, a, g: p - a * g, adapted, inner_lr, grads), loss

    final, losses = jax.lax.scan(body, start, None, length=steps)
    losses = jnp.concatenate([losses, loss_of(final)[None]])
    return merge_adapted(params, final), losses


def meta_loss(apply_fn: Callable, meta_params: Params, constants: Any, coords: jax.Array, images: jax.Array,
              steps: int, adapt: str, first_order: bool = False, learn_inner_lr: bool = True,
              ) -> tuple[jax.Array, jax.Array]:
    """The outer objective: batch mean of each image's MSE after ``steps`` inner steps from the shared params.

    Args:
      meta_params: ``{"inr": params, "inner_lr": alpha}``; ``alpha`` gets no gradient unless ``learn_inner_lr``.
      images: float32 ``(B, H, W, C)`` in [0, 1]; ``coords`` ``(H * W, 2)`` (:func:`image_coords`).

    Returns:
      ``(loss, losses)``: the scalar outer loss and float32 ``(B, steps + 1)`` per-image inner-loop MSEs.
    """
    b, h, w, c = images.shape
    targets = images.reshape(b, h * w, c)
    lrs = meta_params["inner_lr"] if learn_inner_lr else jax.lax.stop_gradient(meta_params["inner_lr"])

    def one(target: jax.Array) -> jax.Array:
        return inner_loop(apply_fn, meta_params["inr"], constants, lrs, coords, target, steps, adapt,
                          first_order)[1]

    losses = jax.vmap(one)(targets)
    return jnp.mean(losses[:, -1]), losses


def make_meta_train_step(apply_fn: Callable, meta: MetaConfig, optimizer: optax.GradientTransformation,
                         image_size: Sequence[int]) -> Callable[[TrainState, jax.Array, jax.Array],
                                                                tuple[TrainState, Metrics]]:
    """The outer step ``step(state, images (B, H, W, C), key) -> (state, metrics)`` (``state.params`` the
    meta-parameters), the shape :func:`hypernetwork_utils.training.train_hypernetwork` runs.

    Metrics (float32 scalars): ``loss`` (outer MSE after K inner steps), ``psnr`` (its PSNR), ``psnr_start``
    (PSNR of the shared initialisation before adaptation, from the batch MSE) and ``grad_norm``. ``key`` is
    unused (the step is deterministic)."""
    coords = image_coords(*image_size)

    def step(state: TrainState, images: jax.Array, key: jax.Array) -> tuple[TrainState, Metrics]:
        del key

        def loss_of(meta_params: Params) -> tuple[jax.Array, jax.Array]:
            return meta_loss(apply_fn, meta_params, state.constants, coords, images, meta.inner_steps, meta.adapt,
                             meta.first_order, meta.learn_inner_lr)

        (loss, losses), grads = jax.value_and_grad(loss_of, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "psnr": psnr_from_mse(loss), "psnr_start": psnr_from_mse(jnp.mean(losses[:, 0])),
                   "grad_norm": optax.tree.norm(grads)}
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return step


def _curve_program(apply_fn: Callable, steps: int, adapt: str, keep: tuple[int, ...]) -> Callable:
    """Jitted ``(params, constants, alpha, coords, images (B, H, W, C)) -> (mse (B, steps + 1), recon)``:
    every image adapted ``steps`` steps; ``recon`` ``(B, len(keep), P, C)`` the renders after the steps in
    ``keep``."""

    def one(params: Params, constants: Any, lrs: Params, coords: jax.Array, target: jax.Array):
        start = split_adapted(params, adapt)

        def render(adapted: Params) -> jax.Array:
            return apply_fn(merge_variables(merge_adapted(params, adapted), constants), coords).astype(jnp.float32)

        def body(adapted: Params, _: None):
            pred, pullback = jax.vjp(render, adapted)
            err = pred - target
            grads = pullback(2.0 * err / err.size)[0]
            return jax.tree.map(lambda p, a, g: p - a * g, adapted, lrs, grads), (jnp.mean(err ** 2), pred)

        final, (mses, preds) = jax.lax.scan(body, start, None, length=steps)
        last = render(final)
        mses = jnp.concatenate([mses, jnp.mean((last - target) ** 2)[None]])
        preds = jnp.concatenate([preds, last[None]])
        return mses, preds[jnp.asarray(keep)]

    def run(params, constants, lrs, coords, images):
        b, h, w, c = images.shape
        return jax.vmap(one, in_axes=(None, None, None, None, 0))(params, constants, lrs, coords,
                                                                   images.reshape(b, h * w, c))

    return jax.jit(run)


def adaptation_curves(model: nn.Module, params: Params, constants: Any, inner_lr: Params, images: Any,
                      steps: int, adapt: str, keep: Sequence[int] = (), batch_size: int = 32,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """PSNR of every image after 0..``steps`` inner SGD steps from ``params`` (the meta-learned or a random
    initialisation), with learning rates ``inner_lr`` (:func:`constant_inner_lr` for plain SGD).

    Args:
      model: the INR module; params / constants: its variables (``{"params": params, **constants}``).
      images: float ``(N, H, W, C)`` in [0, 1].
      steps: largest number of inner steps.
      keep: step counts whose reconstructions are returned (each in 0..steps).
      batch_size: images per compiled call (the last group is padded, so one program serves every group).

    Returns:
      ``(psnr, recon)``: float64 ``(N, steps + 1)`` PSNR in dB (data range 1, of the unclipped output's MSE; the
      clipped image's PSNR is never lower), and float32 ``(N, len(keep), H, W, C)`` reconstructions clipped to
      [0, 1].
    """
    images = np.asarray(images, np.float32)
    n, h, w, c = images.shape
    keep = tuple(int(k) for k in keep) or (steps,)
    if not all(0 <= k <= steps for k in keep):
        raise ValueError(f"keep steps {keep} must lie in 0..{steps}")
    # Flax modules do not hash (dict attributes); their repr lists every attribute, so it names the program
    program = cached(("meta-curve", repr(model), steps, adapt, keep),
                     lambda: _curve_program(model.apply, steps, adapt, keep))
    coords = image_coords(h, w)
    size = min(batch_size, n)
    mses, recons = [], []
    for start in range(0, n, size):
        group = images[start:start + size]
        pad = size - len(group)
        if pad:
            group = np.concatenate([group, np.repeat(group[-1:], pad, axis=0)])
        mse, recon = program(params, constants, inner_lr, coords, jnp.asarray(group))
        mses.append(np.asarray(mse)[:size - pad])
        recons.append(np.asarray(recon)[:size - pad])
    mse = np.concatenate(mses).astype(np.float64)
    psnr = -10.0 * np.log10(np.maximum(mse, 1e-12))
    recon = np.clip(np.concatenate(recons), 0.0, 1.0).reshape(n, len(keep), h, w, c)
    return psnr, recon
