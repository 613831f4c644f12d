#!/usr/bin/env python
"""Fit many INRs at once (one compiled program, see inr_utils/sweeps.py) over a grid of hyperparameters, and
write a results table (one row per model: swept values, seed, lr, PSNR, SSIM) and a figure (PSNR curves and
a grid of reconstructions) into a run folder.

    python experiments/sweep.py --model siren --seeds 4 --lr 1e-4,3e-4,1e-3 --omega0 20,30     # 24 models
    python experiments/sweep.py --model ffn --fourier-scale 3,10,30 --steps 500
    python experiments/sweep.py --model siren --width 32 --depth 1 --cifar ../shared/data/cifar10 --count 16
    python experiments/sweep.py --sweep first_omega0=10,30,60 --model siren

Every combination of the listed values is one model (with --cifar/--images: one per image and combination).
Only hyperparameters that keep the parameter shapes can be swept (seed, lr, omega0, Fourier scale, ...);
architecture flags (--width, --depth, ...) apply to all models.

Files: results.csv, results.md, sweep.png, curves.csv, sweep.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_common import EXIT_INTERRUPTED, OneLineArgumentParser, run_cli  # noqa: E402

from inr_utils.config import LR_SCHEDULES, TRAINING_PRESETS, FitConfig  # noqa: E402
from inr_utils.errors import InputError  # noqa: E402
from inr_utils.fitting import load_config_image, prepare_output_dir  # noqa: E402
from inr_utils.images import load_image  # noqa: E402
from inr_utils.sweeps import (  # noqa: E402
    SweepInterrupted,
    check_sweep,
    load_cifar10_batch,
    run_sweep,
    stack_images,
    sweep_grid,
    use_cpu_cores,
)
from model_components.inrs import DTYPES, MODEL_PRESETS, model_config  # noqa: E402


def float_list(text: str) -> list[float]:
    """``1e-4,3e-4`` -> [0.0001, 0.0003]."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 1e-4,3e-4, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one number, got {text!r}")
    return values


def sweep_arg(text: str) -> tuple[str, list]:
    """``NAME=v1,v2`` of ``--sweep``; values read as JSON where they parse (numbers, true/false)."""
    name, sep, values = text.partition("=")
    if not sep or not name or not values:
        raise argparse.ArgumentTypeError(f"expected NAME=v1,v2,..., got {text!r}")
    parsed = []
    for part in values.split(","):
        try:
            parsed.append(json.loads(part))
        except json.JSONDecodeError:
            parsed.append(part)
    return name.replace("-", "_"), parsed


def build_parser() -> OneLineArgumentParser:
    d = FitConfig()
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data (default: scikit-image's astronaut, shared by all models)")
    g.add_argument("--image", help="one image fitted by every model (PNG/JPEG)")
    g.add_argument("--images", help="comma-separated images of one size; every combination is fitted to each")
    g.add_argument("--cifar", help="a CIFAR-10 python batch file or folder; with --count, fit that many images")
    g.add_argument("--count", type=int, default=4, help="CIFAR images to fit with --cifar (default: 4)")
    g.add_argument("--max-size", type=int, help=f"downscale images so the longer side is at most this "
                   f"(default: {d.max_size})")
    g = p.add_argument_group("model (shared by all models)")
    g.add_argument("--model", choices=sorted(MODEL_PRESETS), help=f"architecture preset (default: {d.model.model})")
    g.add_argument("--width", type=int, help="hidden width (default: the preset's)")
    g.add_argument("--depth", type=int, help="hidden layers after the first (default: the preset's)")
    g.add_argument("--dtype", choices=["auto", *sorted(DTYPES)], help="matrix-product compute dtype "
                   "(default: the preset's)")
    g = p.add_argument_group("swept hyperparameters (comma-separated lists; every combination is a model)")
    g.add_argument("--seeds", type=int, default=1, help="number of seeds, 0..N-1 (default: 1)")
    g.add_argument("--lr", type=float_list, help="peak learning rates (default: the preset's)")
    g.add_argument("--omega0", type=float_list, help="omega0 of sine layers (all layers)")
    g.add_argument("--fourier-scale", type=float_list, help="sigma of Gaussian Fourier features")
    g.add_argument("--sweep", type=sweep_arg, action="append", default=[], metavar="NAME=v1,v2",
                   help="any other shape-keeping setting, repeatable, e.g. --sweep first_omega0=10,30")
    g = p.add_argument_group("training (shared by all models)")
    g.add_argument("--steps", type=int, help=f"optimisation steps (default: {d.steps})")
    g.add_argument("--batch-size", help=f"random pixels per step, or 'full' (default: {d.batch_size})")
    g.add_argument("--lr-schedule", choices=LR_SCHEDULES, help=f"learning-rate schedule (default: {d.lr_schedule})")
    g.add_argument("--steps-per-call", type=int, help=f"steps per compiled call (default: {d.steps_per_call})")
    g.add_argument("--eval-every", type=int, default=200, help="steps between full-image PSNR evaluations "
                   "(default: 200)")
    g = p.add_argument_group("run")
    g.add_argument("--config", help="base config (JSON/YAML, any subset of FitConfig's fields)")
    g.add_argument("--out", help="output folder, must be new or empty (default: runs/<time>-sweep)")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def base_config(args: argparse.Namespace) -> FitConfig:
    """Defaults < --model preset < --config < explicit flags (as experiments/fit_image.py)."""
    base = FitConfig.load(args.config) if args.config else FitConfig()
    model_overrides = {k: getattr(args, k) for k in ("width", "depth", "dtype") if getattr(args, k) is not None}
    train = {k: getattr(args, k) for k in ("steps", "lr_schedule", "steps_per_call", "max_size")
             if getattr(args, k) is not None}
    if args.batch_size is not None:
        if args.batch_size == "full":
            train["batch_size"] = None
        else:
            try:
                train["batch_size"] = int(args.batch_size)
            except ValueError:
                raise InputError(f"--batch-size must be a whole number of pixels or 'full', "
                                 f"got {args.batch_size!r}") from None
    if args.model is not None and args.model != base.model.model:
        model = model_config(args.model, **model_overrides)
        train = {**TRAINING_PRESETS.get(args.model, {}), **train}
    else:
        model = model_config(base=base.model, **model_overrides)
    return FitConfig.from_dict({**base.to_dict(), **train, "model": model.to_dict()})


def load_images(args: argparse.Namespace, config: FitConfig) -> tuple:
    """(images, names): one shared ``(H, W, C)`` image with ``names=None``, or ``(K, H, W, C)`` with K names."""
    given = [name for name in ("image", "images", "cifar") if getattr(args, name)]
    if len(given) > 1:
        raise InputError(f"give only one of --{', --'.join(given)}")
    if args.cifar:
        if args.count <= 0:
            raise InputError(f"--count must be positive, got {args.count}")
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
    try:
        config = base_config(args)
    except ValueError as err:
        raise InputError(str(err)) from None
    axes: dict[str, list] = {}
    if args.seeds > 1:
        axes["seed"] = list(range(config.seed, config.seed + args.seeds))
    for name, values in (("lr", args.lr), ("omega0", args.omega0), ("fourier_scale", args.fourier_scale),
                         *args.sweep):
        if values is not None:
            axes[name] = values
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
