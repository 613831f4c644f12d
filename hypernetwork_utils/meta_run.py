"""A meta-learning run and its folder: what ``experiments/meta_learn.py`` calls.

:func:`run_meta_training` loads the images, splits off the held-out ones (the hypernetworks' split,
:func:`hypernetwork_utils.batches.train_val_split`), meta-trains (:mod:`hypernetwork_utils.meta_learning`'s outer
step run by :func:`hypernetwork_utils.training.train_hypernetwork`: chunks, callbacks, Ctrl-C / SIGTERM safe) and
evaluates; :func:`evaluate_meta_run` evaluates a run's newest checkpoint on any images. The run folder:

| file | what |
|---|---|
| ``config.json`` | ``{"meta": MetaConfig dict, "training": HyperTrainingSettings dict, "data": {...}}`` |
| ``checkpoints/`` | Orbax checkpoints of the :class:`~inr_utils.training.TrainState` (params ``{"inr", "inner_lr"}``) |
| ``history.csv`` | per step: outer loss, batch PSNR after K inner steps; held-out PSNR after K steps where evaluated |
| ``metrics.json`` | held-out PSNR after 1, 3, 10 steps, meta-learned and random initialisation; steps, images/s |
| ``adaptation.json`` / ``adaptation.png`` | the adaptation curves (PSNR after 0..10 steps) and the figure |
| ``tensorboard/`` | the scalars of ``history.csv``, when ``tensorboardX`` is installed |
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hypernetwork_utils.batches import Batches, train_val_split
from hypernetwork_utils.datasets import load_images
from hypernetwork_utils.meta_learning import (
    MetaConfig,
    adaptation_curves,
    build_meta_model,
    constant_inner_lr,
    init_meta_params,
    make_meta_train_step,
)
from hypernetwork_utils.training import HyperTrainingSettings, build_hyper_optimizer, train_hypernetwork
from hypernetwork_utils.training_run import (
    HeldOutPSNR,
    ImagesProgressBar,
    read_resume_folder,
)
from inr_utils.callbacks import History, PeriodicCheckpoint, TensorBoardLog
from inr_utils.checkpoints import latest_step, restore_checkpoint, restore_params, save_checkpoint
from inr_utils.engine import ChunkInfo
from inr_utils.errors import InputError, user_input
from inr_utils.files import write_text
from inr_utils.fit_runs import prepare_output_dir
from inr_utils.plots import save_figure, show
from inr_utils.training import DivergenceError, TrainingInterrupted, TrainState
from model_components.inrs import count_params

__all__ = ["META_DEFAULTS", "REPORT_STEPS", "BASELINE_LRS", "run_meta_training", "evaluate_meta_run",
           "adaptation_report", "adaptation_figure"]

#: Outer-loop settings of a new run (``experiments/meta_learn.py``'s defaults): Adam 1e-3 cosine-decayed to 1e-4,
#: batch 16, no jitter. 1e-3 is the largest outer rate tried that trains stably here (2e-3 and 3e-3 diverged
#: within 300 steps); 3e-4 learned about 3 dB less in 500 steps.
META_DEFAULTS = HyperTrainingSettings(batch_size=16, lr=1e-3, warmup_epochs=0.0, epochs=1.0, steps=500,
                                      final_lr_fraction=0.1, jitter=0.0, steps_per_call=10, checkpoint_every=100,
                                      eval_every=100, val_count=500)
#: Inner steps whose PSNR the metrics report (the issue's 1, 3, 10); the curves go from 0 to the largest.
REPORT_STEPS = (1, 3, 10)
#: Constant SGD learning rates tried for the random initialisation; the best after 3 steps is reported too.
BASELINE_LRS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
#: Held-out images evaluated during training (the final evaluation uses all of them).
EVAL_DURING_TRAINING = 64
FIGURE_IMAGES = 4


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _meta_reconstruct(model: Any, meta: MetaConfig) -> Callable[[Any, np.ndarray], np.ndarray]:
    """``reconstruct(variables, images)`` for :class:`HeldOutPSNR`: each image after K adapted steps."""

    def reconstruct(variables: Any, images: np.ndarray) -> np.ndarray:
        variables = dict(variables)
        meta_params = variables.pop("params")
        _, recon = adaptation_curves(model, meta_params["inr"], variables, meta_params["inner_lr"], images,
                                     meta.inner_steps, meta.adapt, keep=(meta.inner_steps,))
        return recon[:, 0]

    return reconstruct


def adaptation_report(model: Any, meta: MetaConfig, meta_params: Any, constants: Any, images: np.ndarray,
                      seed: int = 0, steps: int = max(REPORT_STEPS)) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Adaptation curves of ``images`` from the meta-learned and from a random initialisation.

    Three curves (mean PSNR after 0..``steps`` inner steps): ``meta`` (meta-learned params and inner learning
    rates), ``random`` (the INR's own random init, key ``fold_in(key(seed), 7)``, plain SGD at ``meta.inner_lr``:
    the same inner optimiser before meta-learning), ``random_best_lr`` (the same init with the constant SGD rate of
    :data:`BASELINE_LRS` best after 3 steps on these images: a baseline tuned on the test images, so a generous
    one).

    Returns:
      ``(report, arrays)``: JSON-ready report (curves, per-step PSNR at :data:`REPORT_STEPS`, chosen lr), and the
      per-image PSNR ``(N, steps + 1)`` and reconstructions ``(N, len(REPORT_STEPS), H, W, C)`` of ``meta`` and
      ``random_best_lr``.
    """
    keep = tuple(k for k in REPORT_STEPS if k <= steps)
    meta_psnr, meta_recon = adaptation_curves(model, meta_params["inr"], constants, meta_params["inner_lr"], images,
                                              steps, meta.adapt, keep=keep)
    random_params = model.init(jax.random.fold_in(jax.random.key(seed), 7), jnp.zeros((1, 2), jnp.float32))["params"]
    curves = {"meta": meta_psnr}
    recons = {"meta": meta_recon}
    best = None
    for lr in BASELINE_LRS:
        psnr, recon = adaptation_curves(model, random_params, constants, constant_inner_lr(random_params, meta.adapt,
                                                                                           lr), images, steps,
                                        meta.adapt, keep=keep)
        psnr = np.nan_to_num(psnr, nan=0.0)
        if lr == meta.inner_lr:
            curves["random"] = psnr
        if best is None or psnr[:, min(3, steps)].mean() > best[1][:, min(3, steps)].mean():
            best = (lr, psnr, recon)
    if "random" not in curves:
        curves["random"], _ = adaptation_curves(model, random_params, constants,
                                                constant_inner_lr(random_params, meta.adapt, meta.inner_lr), images,
                                                steps, meta.adapt)
    curves["random_best_lr"], recons["random_best_lr"] = best[1], best[2]

    def at(psnr: np.ndarray) -> dict[str, float]:
        return {str(k): round(float(psnr[:, k].mean()), 3) for k in (0, *keep)}

    report = {
        "images": len(images),
        "inner_steps_trained": meta.inner_steps,
        "adapt": meta.adapt,
        "curves_mean_psnr": {name: [round(float(v), 3) for v in psnr.mean(0)] for name, psnr in curves.items()},
        "psnr_at": {name: at(psnr) for name, psnr in curves.items()},
        "random_inner_lr": meta.inner_lr,
        "random_best_lr": best[0],
        "target_25db_after_3_steps_met": bool(steps >= 3 and curves["meta"][:, 3].mean() >= 25.0),
    }
    return report, {"meta_psnr": meta_psnr, "meta_recon": meta_recon, "random_psnr": best[1],
                    "random_recon": best[2]}


def adaptation_figure(path: str | Path, report: Mapping[str, Any], images: np.ndarray,
                      arrays: Mapping[str, np.ndarray], title: str = "") -> None:
    """The adaptation curves (left) and a few images reconstructed after 1/3/10 steps from both
    initialisations (right)."""
    import matplotlib.pyplot as plt

    shown = min(FIGURE_IMAGES, len(images))
    keep = [k for k in REPORT_STEPS if str(k) in report["psnr_at"]["meta"]]
    rows = 1 + 2 * len(keep)
    fig = plt.figure(figsize=(4.6 + 1.25 * shown, 1.2 * rows + 0.7))
    grid = fig.add_gridspec(rows, shown + 2, width_ratios=[3.2, 0.25] + [1.0] * shown)
    ax = fig.add_subplot(grid[:, 0])
    labels = {"meta": "meta-learned init (learned inner lrs)",
              "random": f"random init, SGD lr {report['random_inner_lr']:g}",
              "random_best_lr": f"random init, best SGD lr {report['random_best_lr']:g}"}
    for name, curve in report["curves_mean_psnr"].items():
        ax.plot(range(len(curve)), curve, marker="o", ms=3, label=labels.get(name, name))
    ax.axhline(25.0, color="gray", ls=":", lw=1, label="target 25 dB")
    ax.set_xlabel("inner SGD steps")
    ax.set_ylabel(f"mean PSNR of {report['images']} images (dB)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    for c in range(shown):
        show(fig.add_subplot(grid[0, c + 2]), images[c], "original" if c == 0 else "", fontsize=7)
        for i, k in enumerate(keep):
            for j, (name, tag) in enumerate((("meta", "meta"), ("random", "random"))):
                psnr = arrays[f"{name}_psnr"][c, k]
                show(fig.add_subplot(grid[1 + 2 * i + j, c + 2]), arrays[f"{name}_recon"][c, i],
                     f"{tag} {k} st: {psnr:.1f} dB", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def _write_adaptation(out: Path, report: dict[str, Any], images: np.ndarray, arrays: Mapping[str, np.ndarray],
                      title: str, stem: str = "adaptation") -> None:
    write_text(out / f"{stem}.json", json.dumps(report, indent=2) + "\n")
    adaptation_figure(out / f"{stem}.png", report, images, arrays, title)


def run_meta_training(meta: MetaConfig | None, data: str | None, settings: HyperTrainingSettings | None = None,
                      out: str | Path | None = None, resume: bool = False, progress: bool = True,
                      announce: Callable[[Path], None] | None = None,
                      overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Meta-trains an initialisation on the images ``data`` names, evaluates it, writes the run folder; returns
    the metrics dict.

    Args:
      meta: the problem (new runs; ignored on resume).
      data: what :func:`hypernetwork_utils.datasets.load_images` takes (a CIFAR-10 folder, a folder of images,
        ``lfw``); on resume ``None`` (the run's own) or the same.
      settings: outer-loop settings (new runs; default :data:`META_DEFAULTS`); ``jitter`` must be 0.
      out: the run folder (new or empty; default ``runs/<time>-meta-<adapt>``), or the folder to resume.
      resume: continue the run in ``out`` from its newest checkpoint (only ``steps`` / ``epochs`` may change).
      progress: show the progress bar.
      announce: called with the run folder once every input has been checked.
      overrides: on resume, the settings given again.

    Raises:
      InputError: bad data, setting or folder (before anything is written).
      DivergenceError, TrainingInterrupted: as :func:`hypernetwork_utils.training.train_hypernetwork`; the last
        good state is checkpointed first.
    """
    with user_input():
        if resume:
            out, meta, settings, data_info = read_resume_folder(
                out, "meta", MetaConfig.from_dict, overrides, data, "meta_learn.py")
            data = data_info["path"]
        else:
            meta = (meta or MetaConfig()).validate()
            settings = (settings or META_DEFAULTS).validate()
            if data is None:
                raise InputError("a new run needs --data (or --resume RUN_DIR to continue one)")
            if settings.jitter:
                raise InputError("meta-learning fits the pixel centres; drop the coordinate jitter")
        images = load_images(data, size=None if not resume else tuple(data_info["image_size"]))
        train_set, val_set = train_val_split(images, val_count=settings.val_count, seed=settings.seed)
        if not resume:
            data_info = {"path": str(data), "val_count": settings.val_count, "seed": settings.seed,
                         "image_size": list(train_set.image_size), "channels": train_set.channels,
                         "train_count": len(train_set), "source": train_set.source}
        model = build_meta_model(meta, train_set.channels)
        batches = Batches(train_set, settings.batch_size, settings.seed)
        total = settings.total_steps(batches.steps_per_epoch)
    config = {"meta": meta.to_dict(), "training": settings.to_dict(), "data": data_info}
    optimizer = build_hyper_optimizer(settings, batches.steps_per_epoch)
    root = jax.random.key(settings.seed)
    params, constants = init_meta_params(model, meta, jax.random.fold_in(root, 0))
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, constants=constants,
                       opt_state=optimizer.init(params))

    out = prepare_output_dir(out or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-meta-{meta.adapt}", None,
                             resume)
    ckpt_dir = out / "checkpoints"
    history = History()
    if resume:
        if latest_step(ckpt_dir) is None:
            raise InputError(f"'{out}' has no checkpoint to resume from; start a new run instead")
        state = restore_checkpoint(ckpt_dir, state)
        step = int(state.step)
        if step >= total:
            raise InputError(f"the run in '{out}' already has {step} steps; pass --steps (or --epochs) beyond that")
        if (out / "history.csv").exists():
            history = History.from_csv(out / "history.csv", step)
    if announce is not None:
        announce(out)
    first = int(state.step)
    if resume:
        _log(f"resumed from step {first} of {out}; training to step {total}")
    h, w = train_set.image_size
    _log(f"meta-learning ({meta.adapt}, {meta.inner_steps} inner steps, "
         f"{'first' if meta.first_order else 'second'}-order): {count_params(state.params['inr']):,} INR "
         f"parameters; {len(train_set)} training and {len(val_set)} held-out images of {h}x{w}x{train_set.channels}; "
         f"{total} steps")
    write_text(out / "config.json", json.dumps(config, indent=2) + "\n")

    val_images = val_set.as_float()
    checkpoint = PeriodicCheckpoint(ckpt_dir, config, settings.checkpoint_every)
    bar = ImagesProgressBar(total, first, settings.batch_size, disable=not progress)
    board = TensorBoardLog.create(out / "tensorboard")
    held_out = HeldOutPSNR(_meta_reconstruct(model, meta), val_images[:EVAL_DURING_TRAINING], settings.eval_every)
    callbacks: list[Callable[[ChunkInfo], None]] = [held_out, history, bar, board, checkpoint]
    step_fn = make_meta_train_step(model.apply, meta, optimizer, (h, w))
    try:
        result = train_hypernetwork(state, batches.chunk, jax.random.fold_in(root, 1), step_fn, total,
                                    steps_per_call=settings.steps_per_call, callbacks=callbacks)
    except (DivergenceError, TrainingInterrupted) as err:
        if checkpoint.last_saved != int(err.state.step):
            save_checkpoint(ckpt_dir, err.state, config)
        write_text(out / "history.csv", history.to_csv())
        raise
    finally:
        bar.close()
        board.close()
    final = jax.device_get(result.state)
    if checkpoint.last_saved != int(final.step):
        save_checkpoint(ckpt_dir, final, config)
    write_text(out / "history.csv", history.to_csv())

    report, arrays = adaptation_report(model, meta, final.params, final.constants, val_images, settings.seed)
    _write_adaptation(out, report, val_images, arrays, f"held-out images after {int(final.step)} outer steps")
    train_s = max(result.wall_s - result.compile_s, 1e-9)
    metrics = {
        "adapt": meta.adapt,
        "inner_steps": meta.inner_steps,
        "first_order": meta.first_order,
        "psnr_at": report["psnr_at"],
        "random_best_lr": report["random_best_lr"],
        "target_25db_after_3_steps_met": report["target_25db_after_3_steps_met"],
        "val_count": len(val_images),
        "steps": int(final.step),
        "steps_run": result.steps_run,
        "wall_s": round(result.wall_s, 2),
        "compile_s": round(result.compile_s, 2),
        "images_per_s": round(result.steps_run * settings.batch_size / train_s, 2),
        "inr_params": count_params(final.params["inr"]),
    }
    write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def evaluate_meta_run(run: str | Path, images: str | None = None, steps: int = max(REPORT_STEPS),
                      out: str | Path | None = None) -> dict[str, Any]:
    """Adaptation curves of a run's newest checkpoint on ``images`` (any :func:`load_images` spec, resized to the
    run's image size; default the run's held-out images); writes ``<stem>.json`` / ``.png`` into ``out``
    (default: the run folder, stem ``adaptation_<folder name>``) and returns the report."""
    run = Path(run)
    with user_input():
        if not (run / "config.json").is_file():
            raise InputError(f"'{run}' is not a meta-learning run folder (no config.json); pass the --out of an "
                             "earlier meta_learn.py run")
        saved = json.loads((run / "config.json").read_text())
        if "meta" not in saved:
            raise InputError(f"'{run}/config.json' was not written by meta_learn.py (no 'meta' entry)")
        meta = MetaConfig.from_dict(saved["meta"])
        info = saved["data"]
        size, channels = tuple(info["image_size"]), info["channels"]
        if images is None:
            loaded = load_images(info["path"], size=size, channels=channels)
            evaluated = train_val_split(loaded, val_count=info["val_count"], seed=info["seed"])[1].as_float()
            stem = "adaptation_held_out"
        else:
            evaluated = load_images(images, size=size, channels=channels).as_float()
            stem = f"adaptation_{Path(str(images)).name or 'images'}"
        if steps < 3:
            raise InputError(f"evaluate at least 3 inner steps (the target's), got {steps}")
        params, constants, step = restore_params(run / "checkpoints", with_step=True)
    model = build_meta_model(meta, channels)
    report, arrays = adaptation_report(model, meta, params, constants, evaluated, info["seed"], steps)
    report["source"] = str(images) if images is not None else "held-out"
    report["outer_steps"] = step
    folder = Path(out) if out is not None else run
    folder.mkdir(parents=True, exist_ok=True)
    _write_adaptation(folder, report, evaluated, arrays, f"{report['source']} after {step} outer steps", stem)
    report["written"] = [str(folder / f"{stem}.json"), str(folder / f"{stem}.png")]
    return report
