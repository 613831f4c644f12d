#!/usr/bin/env python
"""Many INRs at once (``inr_utils.sweeps.fit_many``) against a Python loop of ``inr_utils.fitting.fit`` calls.

Three measurements, each the same fits done both ways with the same library, configuration and seeds:

  (a) 16 random 64x64 crops of scikit-image's astronaut, coffee, chelsea and rocket photos (4 each, fixed
      numpy seed), one SIREN per crop. Target: throughput ratio (loop seconds / fit_many seconds) >= 4.
  (b) the first 64 images of CIFAR-10's data_batch_1 (32x32), from ../shared/data/cifar10 (or --cifar);
      skipped with a note when the file is absent. Target: throughput ratio >= 10.
  (c) the fit_many run of (b): SIREN 2 -> 32 -> 32 -> 3 (width 32, depth 1, omega0 = 30, fast sine, float32),
      Adam 1e-3 constant, the full image every step, 500 steps, all 500 steps in one compiled call.
      Targets: wall seconds of the whole fit_many call (checks, init, compilation, training, final
      evaluation) <= 9, and mean PSNR of the 64 reconstructions (clipped to [0, 1]) >= 35 dB.

Both sides use the same model for a part; (a) defaults to the (c) architecture on 64x64 images for 300 steps.
Reported per run: wall and CPU seconds (CPU = this process's user+system time: on a machine shared with
other jobs, wall time grows while CPU time does not), compile seconds, images per second, achieved matmul
GFLOP/s and mean PSNR. FLOPs count matrix products only: a layer with ``in`` inputs and ``out`` outputs costs
2*in*out per pixel forward and twice that backward (3x forward in all), for every pixel of every step; over
the whole wall time and over the training part (wall - init - compile).

The fit_many run of (b)/(c) goes first, so it also pays this process's one-time JAX start-up, as a user's
first call would. ``--loop-count K`` times only the first K loop fits and extrapolates (stated in the output).

    python benchmarks/many_fits.py                          # all three (about a minute on 2 CPU cores)
    python benchmarks/many_fits.py --parts c                # just the 64-CIFAR sweep
    python benchmarks/many_fits.py --loop-count 8           # quicker: extrapolate the loops from 8 fits
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    REPO_ROOT,
    add_json_arg,
    environment,
    make_parser,
    positive_int,
    print_table,
    write_json,
)

from hypernetwork_utils.cifar10 import load_cifar10_batch
from inr_utils.config import FitConfig
from inr_utils.devices import use_cpu_cores
from inr_utils.errors import InputError
from inr_utils.fitting import fit
from inr_utils.images import skimage_image
from inr_utils.metrics import psnr
from inr_utils.rendering import render
from inr_utils.sweeps import fit_many, unstack
from model_components.inrs import model_config

NAME = "many_fits"
DEFAULT_CIFAR = REPO_ROOT.parent / "shared" / "data" / "cifar10" / "cifar-10-batches-py" / "data_batch_1"
CROP_SOURCES = ("astronaut", "coffee", "chelsea", "rocket")
TARGETS = {"a_ratio": 4.0, "b_ratio": 10.0, "c_wall_s": 9.0, "c_psnr_db": 35.0}


def parse_args() -> argparse.Namespace:
    p = make_parser(__doc__)
    p.add_argument("--parts", default="a,b,c", help="which measurements, comma-separated (default: a,b,c)")
    p.add_argument("--cifar", type=Path, default=DEFAULT_CIFAR,
                   help="CIFAR-10 data_batch_1 or its folder; (b) and (c) are skipped with a note when it is absent "
                        "(default: ../shared/data/cifar10/... next to the repository)")
    p.add_argument("--cifar-count", type=positive_int, default=64, help="CIFAR images of (b)/(c) (default: 64)")
    p.add_argument("--steps", type=positive_int, default=500, help="steps of (b)/(c) (default: 500)")
    p.add_argument("--crops", type=positive_int, default=16, help="64x64 crops of (a) (default: 16)")
    p.add_argument("--crop-size", type=positive_int, default=64, help="crop side of (a) in pixels (default: 64)")
    p.add_argument("--a-steps", type=positive_int, default=300, help="steps of (a) (default: 300)")
    p.add_argument("--a-width", type=positive_int, default=32, help="SIREN width of (a) (default: 32)")
    p.add_argument("--a-depth", type=int, default=1, help="SIREN depth of (a) (default: 1)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate, constant (default: 1e-3)")
    p.add_argument("--loop-count", type=positive_int, default=None,
                   help="time only this many loop fits per part and extrapolate (default: all)")
    p.add_argument("--skip-loop", action="store_true", help="run only the fit_many side (no ratios)")
    p.add_argument("--one-device", action="store_true",
                   help="keep JAX's single CPU device (default: one device per core, see use_cpu_cores)")
    add_json_arg(p, NAME)
    return p.parse_args()


# --------------------------------------------------------------------------------------------- data, FLOPs


def random_crops(count: int, size: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """``count`` random ``size x size`` crops, cycling through :data:`CROP_SOURCES`; float32 ``(count, size,
    size, 3)`` in [0, 1] and their names (``astronaut@row,col``)."""
    rng = np.random.default_rng(seed)
    sources = {name: skimage_image(name, None) for name in CROP_SOURCES}
    crops, names = [], []
    for k in range(count):
        name = CROP_SOURCES[k % len(CROP_SOURCES)]
        image = sources[name]
        row = int(rng.integers(0, image.shape[0] - size + 1))
        col = int(rng.integers(0, image.shape[1] - size + 1))
        crops.append(image[row:row + size, col:col + size])
        names.append(f"{name}@{row},{col}")
    return np.stack(crops).astype(np.float32), names


def matmul_flops_per_step(params: Any, pixels: int) -> float:
    """Matrix-product FLOPs of one training step of one model: ``3 * sum(2 * in * out) * pixels`` over the
    kernels ``(in, out)`` of ``params`` (forward 2*in*out a pixel, backward twice that)."""
    import jax

    kernels = [x for path, x in jax.tree_util.tree_leaves_with_path(params)
               if "kernel" in jax.tree_util.keystr(path) and np.ndim(x) == 2]
    return 3.0 * sum(2.0 * k.shape[0] * k.shape[1] for k in kernels) * pixels


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


# --------------------------------------------------------------------------------------------- the two sides


def run_sweep(config: FitConfig, images: np.ndarray, label: str) -> dict[str, Any]:
    """One fit_many call over all images; its timings, PSNRs and achieved GFLOP/s."""
    n = images.shape[0]
    print(f"{label}: fit_many over {n} images ({config.steps} steps) ...", flush=True)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    result = fit_many(config, images, progress=False, eval_every=config.steps)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    recons = render(result.model.apply, result.variables, *images.shape[1:3], stacked=True)
    psnrs = [float(psnr(np.clip(recons[i], 0, 1), images[i])) for i in range(n)]
    flops = matmul_flops_per_step(unstack(result, 0)["params"], images.shape[1] * images.shape[2]) * config.steps * n
    train_s = result.train_s
    return {"variant": "fit_many", "models": n, "psnrs": psnrs, "wall_s": wall, "cpu_s": cpu,
            "compile_s": result.compile_s,
            "init_s": result.init_s, "train_s": train_s, "images_per_s": n / wall, "gflop": flops / 1e9,
            "gflops_wall": flops / 1e9 / wall, "gflops_train": flops / 1e9 / train_s,
            "mean_psnr": float(np.mean(psnrs)), "min_psnr": float(np.min(psnrs)),
            "psnr_vs_evaluator_db": float(np.max(np.abs(np.asarray(psnrs) - result.psnr))),
            "devices": result.num_devices}


def run_loop(config: FitConfig, images: np.ndarray, label: str, count: int | None) -> dict[str, Any]:
    """``fit`` once per image (the first ``count``), timed as a whole; extrapolated to all images."""
    n = images.shape[0]
    count = n if count is None else min(count, n)
    print(f"{label}: Python loop of fit() over {count} of {n} images ...", flush=True)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    psnrs, compile_s, flops = [], 0.0, 0.0
    for i in range(count):
        result = fit(images[i], config, progress=False, eval_every=config.steps)
        compile_s += result.compile_s
        recon = render(result.model.apply, result.variables, *images.shape[1:3])
        psnrs.append(float(psnr(np.clip(recon, 0, 1), images[i])))
        flops += matmul_flops_per_step(result.state.params, images.shape[1] * images.shape[2]) * config.steps
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    scale = n / count
    return {"variant": "loop of fit()" + (f" ({count} timed, x{scale:.2f})" if count < n else ""), "models": n,
            "timed_fits": count, "wall_s": wall * scale, "cpu_s": cpu * scale, "compile_s": compile_s * scale,
            "images_per_s": count / wall, "gflop": flops * scale / 1e9, "gflops_wall": flops / 1e9 / wall,
            "mean_psnr": float(np.mean(psnrs)), "min_psnr": float(np.min(psnrs)), "psnrs": psnrs}


def compare(title: str, config: FitConfig, images: np.ndarray, args: argparse.Namespace,
            sweep: dict[str, Any] | None = None) -> dict[str, Any]:
    """Both sides of one part (reusing ``sweep`` if given); prints the table; returns both and the ratio."""
    sweep = sweep or run_sweep(config, images, title)
    loop = None if args.skip_loop else run_loop(config, images, title, args.loop_count)
    rows = [[r["variant"], r["models"], r["wall_s"], r["cpu_s"], r["compile_s"], r["images_per_s"],
             r["gflops_wall"], r["mean_psnr"]] for r in (sweep, loop) if r is not None]
    print_table(["variant", "models", "wall s", "cpu s", "compile s", "images/s", "GFLOP/s", "PSNR dB"], rows,
                title=title)
    ratio = loop["wall_s"] / sweep["wall_s"] if loop else float("nan")
    cpu_ratio = loop["cpu_s"] / sweep["cpu_s"] if loop else float("nan")
    psnr_diff = float("nan")
    if loop:
        k = loop["timed_fits"]
        psnr_diff = float(np.max(np.abs(np.asarray(loop["psnrs"]) - np.asarray(sweep["psnrs"][:k]))))
        print(f"throughput ratio (loop wall / fit_many wall): {ratio:.2f}x; by CPU seconds: {cpu_ratio:.2f}x; "
              f"largest PSNR difference between fit() and fit_many's model of the same image: {psnr_diff:.4f} dB")
    return {"sweep": sweep, "loop": loop, "ratio": ratio, "cpu_ratio": cpu_ratio, "max_psnr_diff_db": psnr_diff}


def siren_config(width: int, depth: int, steps: int, lr: float) -> FitConfig:
    """SIREN 2 -> width x (depth + 1) -> 3 (omega0 = 30, fast sine, float32), Adam ``lr`` constant, full image,
    all steps in one compiled call."""
    return FitConfig(model=model_config("siren", width=width, depth=depth, dtype="float32"), steps=steps,
                     batch_size=None, lr=lr, lr_schedule="constant", steps_per_call=steps, checkpoint_every=0)


def main() -> int:
    args = parse_args()
    if not args.one_device:
        use_cpu_cores()  # before any JAX computation: one CPU device per core for fit_many (fit uses the first)
    parts = {part.strip() for part in args.parts.split(",") if part.strip()}
    unknown = parts - {"a", "b", "c"}
    if unknown:
        print(f"error: unknown parts {sorted(unknown)}; choose from a, b, c", file=sys.stderr)
        return 2
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results: dict[str, Any] = {"benchmark": NAME, "targets": TARGETS}
    checks: list[str] = []

    if parts & {"b", "c"}:
        try:
            cifar, _ = load_cifar10_batch(args.cifar, args.cifar_count)
        except InputError as err:
            print(f"note: (b) and (c) skipped: {err} (--cifar PATH)")
            cifar = None
        if cifar is not None:
            config = siren_config(32, 1, args.steps, args.lr)
            sweep = run_sweep(config, cifar, "(c)")
            results["c"] = sweep
            print_table(["fit_many", "wall s", "cpu s", "init s", "compile s", "train s", "images/s",
                         "GFLOP/s train", "GFLOP/s wall", "mean PSNR", "min PSNR"],
                        [[f"{args.cifar_count} CIFAR SIRENs", sweep["wall_s"], sweep["cpu_s"], sweep["init_s"],
                          sweep["compile_s"], sweep["train_s"], sweep["images_per_s"], sweep["gflops_train"],
                          sweep["gflops_wall"], sweep["mean_psnr"], sweep["min_psnr"]]],
                        title=f"(c) SIREN 2-32-32-3 on {args.cifar_count} CIFAR images, {args.steps} full-image "
                              f"steps, Adam {args.lr:g} ({sweep['gflop']:.0f} GFLOP of matrix products)")
            if "c" in parts:
                checks.append(f"(c) wall {sweep['wall_s']:.2f} s <= {TARGETS['c_wall_s']:.0f}: "
                              f"{'PASS' if sweep['wall_s'] <= TARGETS['c_wall_s'] else 'FAIL'}; mean PSNR "
                              f"{sweep['mean_psnr']:.2f} dB >= {TARGETS['c_psnr_db']:.0f}: "
                              f"{'PASS' if sweep['mean_psnr'] >= TARGETS['c_psnr_db'] else 'FAIL'}")
            if "b" in parts:
                results["b"] = compare(f"(b) {args.cifar_count} CIFAR-10 images 32x32, fit_many vs loop", config,
                                       cifar, args, sweep)
                if not args.skip_loop:
                    ratio = results["b"]["ratio"]
                    checks.append(f"(b) ratio {ratio:.2f}x >= {TARGETS['b_ratio']:.0f}: "
                                  f"{'PASS' if ratio >= TARGETS['b_ratio'] else 'FAIL'}")

    if "a" in parts:
        crops, names = random_crops(args.crops, args.crop_size)
        config = siren_config(args.a_width, args.a_depth, args.a_steps, args.lr)
        results["a"] = compare(f"(a) {args.crops} crops {args.crop_size}x{args.crop_size} "
                               f"({', '.join(CROP_SOURCES)}), SIREN width {args.a_width} depth {args.a_depth}, "
                               f"{args.a_steps} full-image steps", config, crops, args)
        results["a"]["crops"] = names
        if not args.skip_loop:
            ratio = results["a"]["ratio"]
            checks.append(f"(a) ratio {ratio:.2f}x >= {TARGETS['a_ratio']:.0f}: "
                          f"{'PASS' if ratio >= TARGETS['a_ratio'] else 'FAIL'}")

    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print(f"\nload average (1 min) at start {load_start}, at end {load_end} on {os.cpu_count()} CPUs "
          "(a load above the CPU count means other jobs shared the machine: wall times are then inflated, "
          "CPU seconds are not)")
    for line in checks:
        print(f"target {line}")
    results["config"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "json"}
    results["environment"] = environment()
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
