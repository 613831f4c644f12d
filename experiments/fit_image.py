#!/usr/bin/env python
"""Fit an INR to one image and write the reconstruction, 2x/4x renders, a summary figure, metrics,
history, config and checkpoint into a run folder.

    python experiments/fit_image.py                       # bundled astronaut, default model
    python experiments/fit_image.py --image my.jpg --model siren --steps 3000
    python experiments/fit_image.py --config runs/x/config.json     # re-run a saved config
    python experiments/fit_image.py --resume runs/x                  # continue an interrupted run

Precedence: built-in defaults < --model preset < --config file < explicit flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_common import EXIT_DIVERGED, EXIT_INTERRUPTED, OneLineArgumentParser, run_cli  # noqa: E402

from inr_utils.config import LR_SCHEDULES, TRAINING_PRESETS, FitConfig  # noqa: E402
from inr_utils.errors import InputError  # noqa: E402
from inr_utils.fitting import run_fit  # noqa: E402
from inr_utils.training import DivergenceError, TrainingInterrupted  # noqa: E402
from model_components.encodings import ENCODINGS  # noqa: E402
from model_components.inrs import DTYPES, MODEL_PRESETS, model_config  # noqa: E402
from model_components.layers import ACTIVATIONS, LAYERS  # noqa: E402

DEFAULT = FitConfig()
MODEL_FLAGS = ("encoding", "layer", "num_frequencies", "fourier_features", "fourier_scale", "width", "depth",
               "activation", "omega0", "first_omega0", "output_activation", "dtype")
TRAIN_FLAGS = ("image", "max_size", "steps", "batch_size", "lr", "lr_schedule", "final_lr_fraction",
               "warmup_steps", "jitter", "seed", "steps_per_call", "checkpoint_every")


def batch_size_arg(text: str) -> int | str:
    """``--batch-size``: a whole number of pixels, or ``full`` (kept as the string, mapped to None later)."""
    if text == "full":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of pixels or 'full', got {text!r}") from None


def option_arg(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` of ``--layer-option`` / ``--encoding-option``; VALUE is read as JSON when it parses
    (numbers, true/false), else kept as text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def build_parser() -> OneLineArgumentParser:
    d, m = DEFAULT, DEFAULT.model
    presets = ", ".join(sorted(MODEL_PRESETS))
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--image", help="image to fit (PNG/JPEG, RGB, grayscale, RGBA, palette or 16-bit) "
                   "(default: scikit-image's astronaut, 256x256)")
    g.add_argument("--max-size", type=int, help=f"downscale so the longer side is at most this (default: {d.max_size})")
    g = p.add_argument_group(
        "model", f"a preset ({presets}) fills every setting you leave unset; its defaults are listed by "
        "`python -c \"from model_components.inrs import MODEL_PRESETS; print(MODEL_PRESETS)\"`")
    g.add_argument("--model", choices=sorted(MODEL_PRESETS), help=f"architecture preset (default: {m.model})")
    g.add_argument("--encoding", choices=ENCODINGS.names(),
                   help=f"coordinate encoding (default: the preset's; {m.model}: {m.encoding})")
    g.add_argument("--layer", choices=LAYERS.names(),
                   help=f"hidden layer type (default: the preset's; {m.model}: {m.layer})")
    g.add_argument("--num-frequencies", type=int, help="L of the NeRF encoding (default: 10)")
    g.add_argument("--fourier-features", type=int,
                   help=f"m of Gaussian Fourier features (default: {m.encoding_options.get('num_features')})")
    g.add_argument("--fourier-scale", type=float,
                   help=f"sigma of Gaussian Fourier features (default: {m.encoding_options.get('scale')})")
    g.add_argument("--width", type=int, help=f"hidden width (default: {m.width})")
    g.add_argument("--depth", type=int, help=f"hidden layers after the first (default: {m.depth})")
    g.add_argument("--activation", choices=sorted(ACTIVATIONS),
                   help=f"activation of dense layers (default: {m.layer_options.get('activation')})")
    g.add_argument("--omega0", type=float, help="frequency factor omega0 of sine-type layers, all layers (default: 30)")
    g.add_argument("--first-omega0", type=float, help="omega0 of the first layer only (default: --omega0)")
    g.add_argument("--layer-option", type=option_arg, action="append", default=[], metavar="KEY=VALUE",
                   help="any option of the hidden layer type, repeatable, e.g. --layer-option learnable=true "
                        "(default: the preset's)")
    g.add_argument("--encoding-option", type=option_arg, action="append", default=[], metavar="KEY=VALUE",
                   help="any option of the encoding, repeatable, e.g. --encoding-option include_input=false "
                        "(default: the preset's)")
    g.add_argument("--output-activation", choices=sorted(ACTIVATIONS),
                   help=f"output map (default: the preset's; {m.model}: {m.output_activation})")
    g.add_argument("--dtype", choices=["auto", *sorted(DTYPES)],
                   help=f"matrix-product compute dtype (default: {m.dtype})")
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, help=f"optimisation steps (default: {d.steps})")
    g.add_argument("--batch-size", type=batch_size_arg,
                   help=f"random pixels per step, or 'full' for the whole image (default: {d.batch_size})")
    g.add_argument("--lr", type=float,
                   help=f"peak Adam learning rate (default: {d.lr}, or the --model preset's, e.g. siren: 1e-4)")
    g.add_argument("--lr-schedule", choices=LR_SCHEDULES, help=f"learning-rate schedule (default: {d.lr_schedule})")
    g.add_argument("--final-lr-fraction", type=float,
                   help=f"final lr / peak lr of decaying schedules (default: {d.final_lr_fraction})")
    g.add_argument("--warmup-steps", type=int, help=f"linear warm-up steps (default: {d.warmup_steps})")
    g.add_argument("--jitter", action="store_true", default=None,
                   help="jitter coordinates within pixels (default: off)")
    g.add_argument("--seed", type=int, help=f"random seed; same seed, same result (default: {d.seed})")
    g.add_argument("--steps-per-call", type=int,
                   help=f"steps per compiled lax.scan call (default: {d.steps_per_call})")
    g.add_argument("--checkpoint-every", type=int,
                   help=f"steps between checkpoints, 0 = only at the end (default: {d.checkpoint_every})")
    g.add_argument("--eval-every", type=int, default=200,
                   help="steps between full-image PSNR evaluations (default: 200)")
    g = p.add_argument_group("run")
    g.add_argument("--config", help="config to start from: an earlier run's config.json, or a JSON/YAML file of "
                   "any subset of its fields (default: none)")
    g.add_argument("--out", help="output folder, must be new or empty (default: runs/<time>-<model>)")
    g.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its newest checkpoint (default: none)")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar (default: shown)")
    return p


def config_from_args(args) -> FitConfig:
    """Defaults < --model preset < --config / the resumed run's config < explicit flags."""
    if args.resume:
        base = FitConfig.load(Path(args.resume) / "config.json")
    elif args.config:
        base = FitConfig.load(args.config)
    else:
        base = DEFAULT
    model_overrides = {name: getattr(args, name) for name in MODEL_FLAGS if getattr(args, name) is not None}
    train_overrides = {name: getattr(args, name) for name in TRAIN_FLAGS if getattr(args, name) is not None}
    if args.model is not None and args.model != base.model.model:
        model = model_config(args.model, **model_overrides)
        train_overrides = {**TRAINING_PRESETS.get(args.model, {}), **train_overrides}
    else:
        model = model_config(base=base.model, **model_overrides)
    if args.layer_option or args.encoding_option:
        model = model_config(base=model, layer_options={**model.layer_options, **dict(args.layer_option)},
                             encoding_options={**model.encoding_options, **dict(args.encoding_option)})
    if train_overrides.get("batch_size") == "full":
        train_overrides["batch_size"] = None
    return FitConfig.from_dict({**base.to_dict(), **train_overrides, "model": model.to_dict()})


def main() -> int:
    args = build_parser().parse_args()
    if args.resume and args.out and Path(args.out) != Path(args.resume):
        raise InputError("--resume continues in RUN_DIR itself; drop --out (or pass the same folder)")
    if args.eval_every <= 0:
        raise InputError(f"--eval-every must be positive, got {args.eval_every}")
    try:
        config = config_from_args(args)
    except ValueError as err:
        raise InputError(str(err)) from None
    run_dir: list[Path] = []

    def announce(folder: Path) -> None:  # called once every input has been checked
        run_dir.append(folder)
        print(f"model {config.model.model}: {json.dumps(dataclasses.asdict(config.model))}", file=sys.stderr)
        print(f"writing to {folder}", file=sys.stderr, flush=True)

    try:
        metrics = run_fit(config, args.resume or args.out, resume=bool(args.resume), progress=not args.no_progress,
                          eval_every=args.eval_every, announce=announce)
    except DivergenceError as err:
        sys.stderr.write(f"error: {err}. The last good checkpoint (step {int(err.state.step)}) was kept.\n")
        return EXIT_DIVERGED
    except TrainingInterrupted as err:
        folder = run_dir[0] if run_dir else "RUN_DIR"
        sys.stderr.write(f"\ninterrupted at step {int(err.state.step)}; checkpoint saved. "
                         f"Continue with: python experiments/fit_image.py --resume {folder}\n")
        return EXIT_INTERRUPTED
    print(f"results in {run_dir[0]}", file=sys.stderr)
    print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    run_cli(main)
