#!/usr/bin/env python
"""Train a hypernetwork (one network that maps any image to an INR) on a set of images and write a run folder:
config, Orbax checkpoints, history, metrics and a figure of held-out reconstructions.

    python experiments/train_hypernetwork.py --model lainr --data ../shared/data/cifar10         # cpu preset
    python experiments/train_hypernetwork.py --model transinr --data lfw --steps 200 --out runs/faces
    python experiments/train_hypernetwork.py --model weights --data DIR --set rank=8 --epochs 3
    python experiments/train_hypernetwork.py --resume runs/faces --steps 400                    # continue
    python experiments/train_hypernetwork.py --model lainr --data cifar-10-batches-py --preset gpu_paper
    # one process per host (or per GPU set), same flags, process 0's address as coordinator:
    python experiments/train_hypernetwork.py ... --coordinator host0:1234 --num-processes 2 --process-id 0

Precedence: HyperTrainingSettings defaults < --preset < explicit flags. Ctrl-C (or SIGTERM) saves a checkpoint
and exits; --resume continues exactly where the run stopped (batches are a function of the step).
Docs: docs/hypernetworks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from hypernetwork_utils.presets import TRAINING_PRESETS, training_preset
from hypernetwork_utils.training import HyperTrainingSettings
from inr_utils.cli import (
    OneLineArgumentParser,
    add_run_folder_flags,
    check_run_flags,
    finish_training_command,
    option_arg,
    positive_int,
    run_cli,
    run_training_command,
)
from inr_utils.errors import InputError, user_input
from model_components.hypernetworks import HYPERNETWORKS

#: Flags that set HyperTrainingSettings fields (argparse dest names are the field names).
SETTING_FLAGS = ("epochs", "steps", "batch_size", "lr", "warmup_epochs", "jitter", "seed", "steps_per_call",
                 "checkpoint_every", "eval_every", "val_count")


def build_parser() -> OneLineArgumentParser:
    d = training_preset("cpu")
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("model and data")
    g.add_argument("--model", help=f"hypernetwork architecture: {', '.join(HYPERNETWORKS.names()) or 'none'} "
                                   "(default: none; required for a new run)")
    g.add_argument("--set", type=option_arg, action="append", default=[], metavar="OPTION=VALUE",
                   help="an option of the architecture, repeatable, e.g. --set depth=4 (default: its defaults)")
    g.add_argument("--data", help="a CIFAR-10 folder (cifar-10-batches-py) or batch file, a folder of images, or "
                                  "lfw / lfw:N (scikit-image's faces) (default: the resumed run's; required for a new "
                                  "run)")
    g.add_argument("--image-size", type=positive_int, help="image side in pixels (default: the data's own; "
                                                            "folders and lfw: 32)")
    g = p.add_argument_group("training", "unset flags keep the preset's value")
    g.add_argument("--preset", choices=TRAINING_PRESETS.names(), default="cpu",
                   help="training preset: cpu (about an hour on a 2-core CPU) or gpu_paper (the published "
                        "40-epoch schedule) (default: cpu)")
    g.add_argument("--epochs", type=float, help=f"passes over the training images (default: {d.epochs:g})")
    g.add_argument("--steps", type=positive_int, help="training steps instead of --epochs (default: from --epochs)")
    g.add_argument("--batch-size", type=positive_int, help=f"images per step, all devices together (default: "
                                                           f"{d.batch_size})")
    g.add_argument("--lr", type=float, help=f"peak Adam learning rate (default: {d.lr:g})")
    g.add_argument("--warmup-epochs", type=float, help=f"linear warm-up before the cosine decay (default: "
                                                        f"{d.warmup_epochs:g})")
    g.add_argument("--jitter", type=float, help=f"std of the Gaussian query-coordinate jitter, 0 = off (default: "
                                                f"{d.jitter:g})")
    g.add_argument("--seed", type=int, help=f"seed of the init, jitter, split and batch order (default: {d.seed})")
    g.add_argument("--steps-per-call", type=positive_int, help=f"steps per compiled call (default: "
                                                               f"{d.steps_per_call})")
    g.add_argument("--checkpoint-every", type=int, help=f"steps between checkpoints, 0 = only at the end "
                                                        f"(default: {d.checkpoint_every})")
    g.add_argument("--eval-every", type=int, help=f"steps between held-out PSNR evaluations (default: "
                                                  f"{d.eval_every})")
    g.add_argument("--val-count", type=positive_int, help=f"images held out for validation (default: "
                                                          f"{d.val_count})")
    g = p.add_argument_group("run")
    add_run_folder_flags(g, "runs/<time>-hyper-<model>",
                         "continue the run in RUN_DIR from its newest checkpoint; only --epochs/--steps may change "
                         "(default: none)")
    g = p.add_argument_group("several processes (multi-host)", "start one process per host with the same flags")
    g.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0 (default: one process)")
    g.add_argument("--num-processes", type=positive_int, default=1, help="processes in the run (default: 1)")
    g.add_argument("--process-id", type=int, default=0, help="this process's index (default: 0)")
    g.add_argument("--local-devices", type=positive_int,
                   help="CPU devices of this process, for CPU-only runs (default: JAX's)")
    return p


def main() -> int:
    args = build_parser().parse_args()
    check_run_flags(args)
    if args.resume and (args.model or args.set):
        raise InputError("--resume continues the run's own model; drop --model and --set")
    if args.coordinator:
        from hypernetwork_utils.distributed import initialize_distributed

        initialize_distributed(args.coordinator, args.num_processes, args.process_id, args.local_devices)
    elif args.num_processes > 1:
        raise InputError("--num-processes > 1 needs --coordinator HOST:PORT (process 0's address)")
    given = {name: getattr(args, name) for name in SETTING_FLAGS if getattr(args, name) is not None}
    settings = None
    if not args.resume:
        base = training_preset(args.preset)
        if "epochs" in given and "steps" not in given:
            base = dataclasses.replace(base, steps=None)
        with user_input():
            settings = HyperTrainingSettings.from_dict({**base.to_dict(), **given})
    run_dir: list[Path] = []

    def announce(folder: Path) -> None:
        run_dir.append(folder)
        print(f"writing to {folder}", file=sys.stderr, flush=True)

    from hypernetwork_utils.training_run import run_training

    metrics = run_training_command(
        lambda: run_training(args.model, args.data, settings, dict(args.set), args.resume or args.out,
                             resume=bool(args.resume), image_size=args.image_size, progress=not args.no_progress,
                             announce=announce, overrides=given), "experiments/train_hypernetwork.py", run_dir)
    return finish_training_command(metrics, run_dir[0] if run_dir else None)


if __name__ == "__main__":
    run_cli(main)
