#!/usr/bin/env python
"""Fit many INRs at once (one compiled program, see inr_utils/sweeps.py) over a grid of hyperparameters, and
write a results table (one row per model: swept values, seed, lr, PSNR, SSIM) and a figure (PSNR curves and
a grid of reconstructions) into a run folder.

    python experiments/sweep.py --model siren --seeds 4 --lr 1e-4,3e-4,1e-3 --omega0 20,30     # 24 models
    python experiments/sweep.py --model ffn --fourier-scale 3,10,30 --steps 500
    python experiments/sweep.py --model siren --width 32 --depth 1 --cifar PATH/cifar-10-batches-py --count 16
    python experiments/sweep.py --sweep first_omega0=10,30,60 --model siren

Every combination of the listed values is one model (with --cifar/--images: one per image and combination).
Only hyperparameters that keep the parameter shapes can be swept (seed, lr, omega0, Fourier scale, ...);
architecture flags (--width, --depth, ...) apply to all models.

Files: results.csv, results.md, sweep.png, curves.csv, sweep.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hypernetwork_utils.cifar10 import load_cifar10_batch
from inr_utils.cli import (
    EXIT_INTERRUPTED,
    OneLineArgumentParser,
    add_model_flags,
    add_training_flags,
    config_from_flags,
    float_list,
    run_cli,
    sweep_arg,
)
from inr_utils.config import FitConfig
from inr_utils.devices import use_cpu_cores
from inr_utils.engine import SweepInterrupted
from inr_utils.errors import InputError, user_input
from inr_utils.fit_runs import prepare_output_dir
from inr_utils.fitting import load_config_image
from inr_utils.images import load_image
from inr_utils.model_axis import stack_images
from inr_utils.reports import run_sweep
from inr_utils.sweeps import check_sweep, sweep_grid

#: Flags holding lists of swept values (not one value of the base config).
SWEPT_FLAGS = ("seeds", "lr", "omega0", "fourier_scale", "sweep")
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data (default: scikit-image's astronaut, shared by all models)")
    g.add_argument("--image", help="one image fitted by every model (PNG/JPEG) (default: astronaut)")
    g.add_argument("--images", help="comma-separated images of one size; every combination is fitted to each "
                   "(default: none)")
    g.add_argument("--cifar", metavar="PATH", help="a CIFAR-10 python batch file (data_batch_1) or its folder "
                   f"(download the python version from {CIFAR_URL}); with --count, fit that many images "
                   "(default: none)")
    g.add_argument("--count", type=int, default=4, help="CIFAR images to fit with --cifar (default: 4)")
    add_training_flags(g, ["max_size"])
    g = p.add_argument_group("model (shared by all models)")
    add_model_flags(g, ["model", "width", "depth", "dtype"])
    g = p.add_argument_group("swept hyperparameters (comma-separated lists; every combination is a model)")
    g.add_argument("--seeds", type=int, default=1, help="number of seeds, 0..N-1 (default: 1)")
    g.add_argument("--lr", type=float_list, help="peak learning rates (default: the preset's)")
    g.add_argument("--omega0", type=float_list, help="omega0 of sine layers (all layers) (default: the preset's)")
    g.add_argument("--fourier-scale", type=float_list, help="sigma of Gaussian Fourier features (default: the "
                   "preset's)")
    g.add_argument("--sweep", type=sweep_arg, action="append", default=[], metavar="NAME=v1,v2",
                   help="any other shape-keeping setting, repeatable, e.g. --sweep first_omega0=10,30 (default: none)")
    g = p.add_argument_group("training (shared by all models)")
    add_training_flags(g, ["steps", "batch_size", "lr_schedule", "steps_per_call"])
    g.add_argument("--eval-every", type=int, default=200, help="steps between full-image PSNR evaluations "
                   "(default: 200)")
    g = p.add_argument_group("run")
    g.add_argument("--config", help="base config (JSON/YAML, any subset of FitConfig's fields) (default: none)")
    g.add_argument("--out", help="output folder, must be new or empty (default: runs/<time>-sweep)")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar (default: shown)")
    return p


def base_config(args: argparse.Namespace) -> FitConfig:
    """The config every model shares: defaults < --model preset < --config < explicit flags."""
    return config_from_flags({k: v for k, v in vars(args).items() if k not in SWEPT_FLAGS})


def load_images(args: argparse.Namespace, config: FitConfig) -> tuple:
    """(images, names): one shared ``(H, W, C)`` image with ``names=None``, or ``(K, H, W, C)`` with K names."""
    given = [name for name in ("image", "images", "cifar") if getattr(args, name)]
    if len(given) > 1:
        raise InputError(f"give only one of --{', --'.join(given)}")
    if args.cifar:
        if args.count <= 0:
            raise InputError(f"--count must be positive, got {args.count}")
        if not Path(args.cifar).exists():
            raise InputError(f"--cifar '{args.cifar}' does not exist; download CIFAR-10 (python version) from "
                             f"{CIFAR_URL} and pass its cifar-10-batches-py folder or data_batch_1")
        images, _ = load_cifar10_batch(args.cifar, args.count)
        return images, [f"cifar{k}" for k in range(args.count)]
    if args.images:
        paths = [part for part in args.images.split(",") if part]
        return stack_images([load_image(path, config.max_size) for path in paths]), [Path(p).stem for p in paths]
    if args.image:
        return load_image(args.image, config.max_size), None
    return load_config_image(config), None


def main() -> int:
    args = build_parser().parse_args()
    use_cpu_cores()  # before any JAX computation: on a CPU, fit_many then trains models on every core
    if args.eval_every <= 0:
        raise InputError(f"--eval-every must be positive, got {args.eval_every}")
    if args.seeds <= 0:
        raise InputError(f"--seeds must be a positive number of seeds, got {args.seeds}")
    config = base_config(args)
    axes: dict[str, list] = {}
    if args.seeds > 1:
        axes["seed"] = list(range(config.seed, config.seed + args.seeds))
    for name, values in (("lr", args.lr), ("omega0", args.omega0), ("fourier_scale", args.fourier_scale),
                         *args.sweep):
        if values is not None:
            axes[name] = values
    with user_input():  # bad sweep values and mismatched images are the user's to fix
        configs, labels = sweep_grid(config, **axes)
        images, names = load_images(args, config)
        check_sweep(configs, images if names is None else images[:1])  # refuse before anything is written
    out = prepare_output_dir(args.out or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-sweep", config)
    count = len(configs) * (len(names) if names else 1)
    print(f"{count} models ({' x '.join(f'{len(v)} {k}' for k, v in axes.items()) or 'one configuration'}"
          f"{f' x {len(names)} images' if names else ''}); writing to {out}", file=sys.stderr, flush=True)
    try:
        rows = run_sweep(configs, labels, images, out, names, progress=not args.no_progress,
                         eval_every=args.eval_every)
    except SweepInterrupted as err:
        sys.stderr.write(f"\n{err}; nothing was written (sweeps are not checkpointed)\n")
        return EXIT_INTERRUPTED
    print((out / "results.md").read_text())
    best = max(rows, key=lambda r: r["psnr"] if r["psnr"] == r["psnr"] else float("-inf"))
    print(f"best: model {best['model']} ({best['psnr']:.2f} dB); results in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
