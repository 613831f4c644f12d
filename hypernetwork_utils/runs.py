"""A hypernetwork training run folder, read back: the model and its trained variables (:func:`load_run`), the
held-out images it was validated on (:func:`held_out_images`), and the full evaluation of
``experiments/evaluate_hypernetwork.py`` (:func:`evaluate_run`).

Run-folder layout (written by ``experiments/train_hypernetwork.py``)::

    RUN/config.json    {"hypernetwork": HyperConfig.to_dict(), "training": {...},
                        "data": {"path": str, "val_count": int, "seed": int, "image_size": [H, W], ...}}
    RUN/checkpoints/   Orbax checkpoints of TrainState(step, params, constants, opt_state) plus the same config
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hypernetwork_utils import evaluation as ev
from inr_utils.checkpoints import restore_params
from inr_utils.errors import InputError
from inr_utils.files import write_text
from inr_utils.tables import to_markdown
from model_components.hypernetworks import HyperConfig, build_hypernetwork

__all__ = ["evaluate_run", "held_out_images", "load_run", "summary_table"]


def load_run(run_dir: str | Path, step: int | None = None) -> tuple[Any, HyperConfig, dict[str, Any], dict[str, Any]]:
    """The hypernetwork of a training run with its trained variables.

    Args:
      run_dir: a run folder written by ``train_hypernetwork.py`` (``config.json`` and ``checkpoints/``).
      step: the checkpoint to load (default: the newest intact one).

    Returns:
      ``(model, hyper_config, variables, config)``: the module, its :class:`HyperConfig`, the variables for
      ``model.apply`` (``{"params": ..., **constants}``), and the run's whole config dict (``config.json``).
      Only the model's variables are read from the checkpoint (:func:`inr_utils.checkpoints.restore_params`),
      not the optimizer state, so runs of older optimizer layouts load too.

    Raises:
      InputError: the folder, its config or its checkpoints are missing, unreadable or of another kind.
    """
    model, hyper_config, variables, config, _ = _load_run(run_dir, step)
    return model, hyper_config, variables, config


def _load_run(run_dir: str | Path, step: int | None) -> tuple[Any, HyperConfig, dict[str, Any], dict[str, Any], int]:
    """:func:`load_run` plus the step restored (an older one when the newest checkpoint is damaged)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise InputError(f"run folder '{run}' does not exist; pass a folder written by train_hypernetwork.py")
    path = run / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"'{run}' has no config.json; pass a run folder written by train_hypernetwork.py") from None
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read '{path}' ({type(err).__name__}: {err}); restore it from a copy") from None
    if not isinstance(config, dict) or not isinstance(config.get("hypernetwork"), dict):
        raise InputError(f"'{path}' has no \"hypernetwork\" section; it is not the config of a hypernetwork run "
                         "(written by train_hypernetwork.py)")
    try:
        hyper_config = HyperConfig.from_dict(config["hypernetwork"])
    except (ValueError, TypeError, KeyError) as err:
        raise InputError(f"the hypernetwork config in '{path}' is invalid ({' '.join(str(err).split())})") from None
    if not (run / "checkpoints").is_dir():
        raise InputError(f"'{run}' has no checkpoints/ folder; the run saved no checkpoint yet")
    params, constants, restored = restore_params(run / "checkpoints", step, with_step=True)
    return build_hypernetwork(hyper_config), hyper_config, {"params": params, **constants}, config, restored


def held_out_images(config: Mapping[str, Any], data: str | None = None, count: int | None = None) -> Any:
    """The validation images of a run: the data of ``config["data"]`` (or ``data``: a folder, CIFAR-10 folder or
    ``lfw``) loaded at the run's image size, split as training split it (same ``val_count`` and ``seed``).

    Returns:
      The validation :class:`hypernetwork_utils.datasets.ImageSet` (its first ``count`` images, if given).

    Raises:
      InputError: the data are missing or unreadable, or the run's config has no ``data`` section.
    """
    from hypernetwork_utils.batches import train_val_split
    from hypernetwork_utils.datasets import load_images

    settings = config.get("data")
    if not isinstance(settings, Mapping) or "val_count" not in settings:
        raise InputError("the run's config.json has no \"data\" section with val_count; it is not a run of "
                         "train_hypernetwork.py")
    spec = data if data is not None else settings.get("path")
    if not spec:
        raise InputError("the run's config names no data; pass --data DIR (or lfw)")
    hyper = config.get("hypernetwork") or {}
    size = tuple(settings.get("image_size") or hyper.get("image_size") or ())
    load = {"size": size or None, "channels": settings.get("channels") or hyper.get("channels")}
    if settings.get("split"):
        load["split"] = settings["split"]
    images = load_images(spec, **load)
    if settings.get("count"):  # training used the first `count` images only
        images = images.subset(np.arange(min(int(settings["count"]), len(images))))
    _, val = train_val_split(images, val_count=int(settings["val_count"]), seed=int(settings.get("seed", 0)))
    if count is not None:
        if count <= 0:
            raise InputError(f"--count must be positive, got {count}")
        val = val.subset(np.arange(min(count, len(val))))
    if len(val) == 0:
        raise InputError(f"the run's validation split of '{spec}' is empty (val_count = {settings['val_count']})")
    return val


def evaluate_run(run_dir: str | Path, data: str | None = None, out: str | Path | None = None,
                 count: int | None = None, step: int | None = None, batch_size: int = 16,
                 sr_images: int = 4, speed_images: int = 16, seed: int = 0,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Evaluates a training run on its held-out images and writes ``eval.json`` plus figures into ``out``.

    Measures (all on the validation split; reconstructions clipped to [0, 1]):
      * PSNR and SSIM of every image's reconstruction at the training size: per image and their distribution
        (``psnr.png``: histograms);
      * 4x and 8x super-resolution renders of the first ``sr_images`` images beside bicubic upsampling of the
        input (``super_resolution.png``);
      * mean PSNR vs query jitter sigma in :data:`~hypernetwork_utils.evaluation.JITTER_SIGMAS` (``jitter.png``);
      * a 2-D PCA embedding of the latents coloured by class (``embedding.png``);
      * vmapped vs looped per-image INR evaluation on ``speed_images`` images at the training size.

    Args:
      run_dir: the run folder; data: override of the run's data (folder or ``lfw``); out: output folder
      (default ``RUN/eval``; created); count: evaluate the first ``count`` held-out images; step: checkpoint.

    Returns:
      The dict written to ``eval.json``.
    """
    run = Path(run_dir)
    model, hyper_config, variables, config, restored = _load_run(run, step)
    val = held_out_images(config, data, count)
    out = Path(out) if out is not None else run / "eval"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create output folder '{out}' ({err.strerror}); choose another --out") from None
    images = np.asarray(ev.as_images(val.images))
    n, height, width, _ = images.shape
    (log or _stderr)(f"evaluating {run} on {n} held-out images of {height}x{width}")
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    recon = np.clip(ev.reconstruct(model, variables, images, batch_size=batch_size), 0.0, 1.0)
    psnr, ssim = ev.psnr_per_image(recon, images), ev.ssim_per_image(recon, images)
    timings["reconstruct_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    shown = images[:sr_images]
    inr_shown = ev.encode(model, variables, shown, batch_size)
    sr = {factor: (ev.bicubic(shown, (height * factor, width * factor)),
                   np.clip(ev.render(model, inr_shown, (height * factor, width * factor), batch_size=batch_size),
                           0.0, 1.0)) for factor in (4, 8)}
    timings["super_resolution_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    jitter = ev.jitter_psnr(model, variables, images, ev.JITTER_SIGMAS, seed, batch_size)
    timings["jitter_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    embedding, explained = ev.pca_2d(ev.latent_features(model, variables, images, batch_size))
    timings["embedding_s"] = time.perf_counter() - t0

    speed = ev.inr_speed(model, ev.encode(model, variables, images[:speed_images], batch_size), (height, width))

    results = {
        "run": str(run), "step": restored, "data": str(data or config["data"].get("path")),
        "architecture": hyper_config.architecture, "images": n, "image_size": [height, width],
        "psnr": ev.distribution(psnr), "ssim": ev.distribution(ssim),
        "psnr_per_image": [round(float(v), 4) for v in psnr], "ssim_per_image": [round(float(v), 5) for v in ssim],
        "jitter": {"sigma": list(ev.JITTER_SIGMAS), "psnr_mean": [float(v) for v in jitter.mean(axis=1)],
                   "psnr_median": [float(v) for v in np.median(jitter, axis=1)], "seed": seed},
        "super_resolution": {"factors": [4, 8], "images": len(shown), "figure": "super_resolution.png"},
        "embedding": {"method": "latents" if hasattr(model, "latents") else "pca of emitted variables",
                      "explained_variance": [float(v) for v in explained]},
        "speed": speed, "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    _write_figures(out, results, psnr, ssim, shown, sr, jitter, embedding, val)
    write_text(out / "eval.json", json.dumps(results, indent=2) + "\n")
    return results


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _write_figures(out: Path, results: dict[str, Any], psnr: np.ndarray, ssim: np.ndarray, shown: np.ndarray,
                   sr: dict[int, tuple[np.ndarray, np.ndarray]], jitter: np.ndarray, embedding: np.ndarray,
                   val: Any) -> None:
    from hypernetwork_utils import figures

    name = f"{results['architecture']}, step {results['step']}"
    figures.metric_histograms(out / "psnr.png", psnr, ssim, title=f"held-out reconstructions ({name})")
    figures.super_resolution_figure(out / "super_resolution.png", shown, sr, title=name)
    figures.jitter_figure(out / "jitter.png", results["jitter"]["sigma"], jitter, title=name)
    figures.embedding_figure(out / "embedding.png", embedding, np.asarray(val.labels), tuple(val.class_names),
                             results["embedding"]["explained_variance"], title=name)


def summary_table(results: dict[str, Any]) -> str:
    """A short Markdown table of :func:`evaluate_run`'s numbers (PSNR/SSIM distribution, jitter, speed)."""
    rows = [{"measure": f"held-out {name}", "mean": results[key]["mean"], "median": results[key]["median"],
             "std": results[key]["std"], "p5": results[key]["p5"], "p95": results[key]["p95"]}
            for name, key in (("PSNR (dB)", "psnr"), ("SSIM", "ssim"))]
    jitter = results["jitter"]
    jitter_rows = [{"query jitter sigma": sigma, "mean PSNR (dB)": mean, "median PSNR (dB)": median}
                   for sigma, mean, median in zip(jitter["sigma"], jitter["psnr_mean"], jitter["psnr_median"],
                                                  strict=True)]
    speed = results["speed"]
    table = to_markdown(rows, ["measure", "mean", "median", "std", "p5", "p95"],
                        formats={c: "{:.4g}" for c in ("mean", "median", "std", "p5", "p95")})
    table += "\n" + to_markdown(jitter_rows, formats={"query jitter sigma": "{:g}", "mean PSNR (dB)": "{:.4g}",
                                                      "median PSNR (dB)": "{:.4g}"})
    return (f"{results['architecture']} at step {results['step']}, {results['images']} held-out images of "
            f"{results['image_size'][0]}x{results['image_size'][1]}\n{table}"
            f"INR evaluation of {speed['images']} images ({speed['points']} points each): vmapped "
            f"{1e3 * speed['vmapped_s']:.2f} ms, Python loop {1e3 * speed['loop_s']:.2f} ms "
            f"({speed['speedup']:.1f}x)")
