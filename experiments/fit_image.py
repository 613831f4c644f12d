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

from inr_utils.cli import (
    OneLineArgumentParser,
    add_model_flags,
    add_run_folder_flags,
    add_training_flags,
    check_run_flags,
    config_from_flags,
    finish_training_command,
    run_cli,
    run_training_command,
)
from inr_utils.errors import InputError
from inr_utils.fit_runs import run_fit
from model_components.presets import MODEL_PRESETS


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data")
    add_training_flags(g, ["image", "max_size"])
    g = p.add_argument_group(
        "model", f"a preset ({', '.join(sorted(MODEL_PRESETS))}) fills every setting you leave unset; its defaults "
        "are listed by `python -c \"from model_components.presets import MODEL_PRESETS; print(MODEL_PRESETS)\"`")
    add_model_flags(g)
    g = p.add_argument_group("training")
    add_training_flags(g, ["steps", "batch_size", "lr", "lr_schedule", "final_lr_fraction", "warmup_steps",
                           "jitter", "seed", "steps_per_call", "checkpoint_every"])
    g.add_argument("--eval-every", type=int, default=200,
                   help="steps between full-image PSNR evaluations (default: 200)")
    g = p.add_argument_group("run")
    g.add_argument("--config", help="config to start from: an earlier run's config.json, or a JSON/YAML file of "
                   "any subset of its fields (default: none)")
    add_run_folder_flags(g, "runs/<time>-<model>",
                         "continue the run in RUN_DIR from its newest intact checkpoint (default: none)")
    return p


def main() -> int:
    args = build_parser().parse_args()
    check_run_flags(args)
    if args.eval_every <= 0:
        raise InputError(f"--eval-every must be positive, got {args.eval_every}")
    config = config_from_flags(args)  # defaults < --model preset < --config / the resumed run < flags
    run_dir: list[Path] = []

    def announce(folder: Path) -> None:  # called once every input has been checked
        run_dir.append(folder)
        print(f"model {config.model.model}: {json.dumps(dataclasses.asdict(config.model))}", file=sys.stderr)
        print(f"writing to {folder}", file=sys.stderr, flush=True)

    metrics = run_training_command(
        lambda: run_fit(config, args.resume or args.out, resume=bool(args.resume), progress=not args.no_progress,
                        eval_every=args.eval_every, announce=announce), "experiments/fit_image.py", run_dir)
    return finish_training_command(metrics, run_dir[0] if run_dir else None)


if __name__ == "__main__":
    run_cli(main)
