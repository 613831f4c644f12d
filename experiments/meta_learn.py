#!/usr/bin/env python
"""Meta-learn an INR initialisation on a set of images (functa-style shift modulations, or MAML on every
weight) and report how well it fits held-out images after 1, 3 and 10 SGD steps, against a random initialisation.

    python experiments/meta_learn.py --data ../shared/data/cifar10                    # MAML + Meta-SGD, 500 outer steps
    python experiments/meta_learn.py --data ../shared/data/cifar10 --adapt all --steps 300 --out runs/maml
    python experiments/meta_learn.py --resume runs/maml --steps 600                  # continue a run
    python experiments/meta_learn.py --evaluate runs/maml --images DIR               # adapt to any images

Writes the run folder (config, Orbax checkpoints, history, metrics.json, adaptation.json and adaptation.png:
PSNR after 0..10 inner steps, meta-learned vs random init). Ctrl-C (or SIGTERM) saves a checkpoint and exits;
--resume continues exactly where the run stopped. Docs: docs/applications/meta_learning.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hypernetwork_utils.meta_learning import ADAPT_MODES, MetaConfig
from hypernetwork_utils.meta_run import META_DEFAULTS
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

#: Flags that set HyperTrainingSettings fields of the outer loop (argparse dest names are the field names).
SETTING_FLAGS = ("steps", "batch_size", "lr", "warmup_epochs", "seed", "steps_per_call", "checkpoint_every",
                 "eval_every", "val_count")
DEFAULT_META = MetaConfig()


def build_parser() -> OneLineArgumentParser:
    d = META_DEFAULTS
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("model and inner loop")
    g.add_argument("--model", default="siren", help="INR preset (model_components presets) (default: siren)")
    g.add_argument("--set", type=option_arg, action="append", default=[], metavar="OPTION=VALUE",
                   help="an INR setting, repeatable, e.g. --set width=128 (default: width=64, depth=3)")
    g.add_argument("--adapt", choices=ADAPT_MODES, default=DEFAULT_META.adapt,
                   help="what the inner loop adapts: shifts (hidden biases, functa) or all (MAML) (default: all)")
    g.add_argument("--inner-steps", type=positive_int, default=DEFAULT_META.inner_steps,
                   help=f"inner SGD steps during meta-training (default: {DEFAULT_META.inner_steps})")
    g.add_argument("--inner-lr", type=float, default=DEFAULT_META.inner_lr,
                   help=f"initial (or, with --fixed-inner-lr, constant) inner learning rate (default: "
                        f"{DEFAULT_META.inner_lr:g})")
    g.add_argument("--fixed-inner-lr", action="store_true", help="do not learn per-parameter inner learning rates "
                                                                  "(default: learned, Meta-SGD)")
    g.add_argument("--first-order", action="store_true", help="first-order MAML (default: second order)")
    g = p.add_argument_group("data and outer loop")
    g.add_argument("--data", help="a CIFAR-10 folder (cifar-10-batches-py), a folder of images, or lfw (default: the "
                                  "resumed run's; required for a new run)")
    g.add_argument("--steps", type=positive_int, help=f"outer (Adam) steps (default: {d.steps})")
    g.add_argument("--batch-size", type=positive_int, help=f"images per outer step (default: {d.batch_size})")
    g.add_argument("--lr", type=float, help=f"outer Adam learning rate (default: {d.lr:g})")
    g.add_argument("--warmup-epochs", type=float, help=f"linear warm-up of the outer learning rate, in epochs "
                                                        f"(default: {d.warmup_epochs:g})")
    g.add_argument("--seed", type=int, help=f"seed of the init, split and batch order (default: {d.seed})")
    g.add_argument("--steps-per-call", type=positive_int, help=f"outer steps per compiled call (default: "
                                                               f"{d.steps_per_call})")
    g.add_argument("--checkpoint-every", type=int, help=f"steps between checkpoints (default: {d.checkpoint_every})")
    g.add_argument("--eval-every", type=int, help=f"steps between held-out evaluations (default: {d.eval_every})")
    g.add_argument("--val-count", type=positive_int, help=f"images held out (default: {d.val_count})")
    g = p.add_argument_group("run")
    add_run_folder_flags(g, "runs/<time>-meta-<adapt>", "continue the run in RUN_DIR; only --steps may change")
    g.add_argument("--evaluate", metavar="RUN_DIR", help="evaluate the run in RUN_DIR only (no training): adapt to "
                                                         "--images (default: its held-out images)")
    g.add_argument("--images", metavar="DIR", help="with --evaluate: a folder of images (or CIFAR-10 folder, lfw) "
                                                   "to adapt to, resized to the run's image size")
    return p


def main() -> int:
    args = build_parser().parse_args()
    if args.images and not args.evaluate:
        raise InputError("--images needs --evaluate RUN_DIR (the meta-learned run to adapt from)")
    if args.evaluate:
        from hypernetwork_utils.meta_run import evaluate_meta_run

        report = evaluate_meta_run(args.evaluate, args.images, out=args.out)
        print(f"results in {', '.join(report['written'])}", file=sys.stderr)
        print(json.dumps({"psnr_at": report["psnr_at"], "images": report["images"],
                          "target_25db_after_3_steps_met": report["target_25db_after_3_steps_met"]}))
        return 0
    check_run_flags(args)
    given = {name: getattr(args, name) for name in SETTING_FLAGS if getattr(args, name) is not None}
    settings, meta = None, None
    if not args.resume:
        with user_input():
            settings = type(META_DEFAULTS).from_dict({**META_DEFAULTS.to_dict(), **given})
            meta = MetaConfig(model={**DEFAULT_META.model, "model": args.model, **dict(args.set)}, adapt=args.adapt,
                              inner_steps=args.inner_steps, inner_lr=args.inner_lr,
                              learn_inner_lr=not args.fixed_inner_lr, first_order=args.first_order).validate()
            meta.model_config(3)  # a bad --model / --set fails here, before anything is loaded
    run_dir: list[Path] = []

    def announce(folder: Path) -> None:
        run_dir.append(folder)
        print(f"writing to {folder}", file=sys.stderr, flush=True)

    from hypernetwork_utils.meta_run import run_meta_training

    metrics = run_training_command(
        lambda: run_meta_training(meta, args.data, settings, args.resume or args.out, resume=bool(args.resume),
                                  progress=not args.no_progress, announce=announce, overrides=given),
        "experiments/meta_learn.py", run_dir)
    return finish_training_command(metrics, run_dir[0] if run_dir else None)


if __name__ == "__main__":
    run_cli(main)
