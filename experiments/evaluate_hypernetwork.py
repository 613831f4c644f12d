#!/usr/bin/env python
"""Evaluate a trained hypernetwork on its held-out images: PSNR/SSIM per image and their distribution, 4x and 8x
super-resolution beside bicubic, PSNR vs query jitter, a 2-D embedding of the latents by class, and vmapped vs
looped INR evaluation. Writes eval.json and figures (psnr.png, super_resolution.png, jitter.png, embedding.png).

    python experiments/evaluate_hypernetwork.py runs/x                      # the run's own data and split
    python experiments/evaluate_hypernetwork.py runs/x --data ../shared/data/cifar10 --count 500

The validation images are those of training: the run's data (or --data) at the run's image size, split with the
run's val_count and seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from inr_utils.cli import OneLineArgumentParser, positive_int, run_cli
from inr_utils.errors import InputError


def main() -> int:
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run folder written by train_hypernetwork.py")
    p.add_argument("--data", help="the images: a CIFAR-10 folder, a folder of images, or lfw (default: the run's)")
    p.add_argument("--count", type=int, help="evaluate the first COUNT held-out images (default: all)")
    p.add_argument("--out", help="output folder (default: RUN/eval)")
    p.add_argument("--step", type=int, help="checkpoint step to evaluate (default: the newest intact one)")
    p.add_argument("--batch-size", type=positive_int, default=16,
                   help="images per compiled call; bounds memory (default: 16)")
    args = p.parse_args()
    if args.count is not None and args.count <= 0:
        raise InputError(f"--count must be positive, got {args.count}")
    if not Path(args.run).is_dir():
        raise InputError(f"run folder '{args.run}' does not exist; pass a folder written by train_hypernetwork.py")

    from hypernetwork_utils.runs import evaluate_run, summary_table

    results = evaluate_run(args.run, data=args.data, out=args.out, count=args.count, step=args.step,
                           batch_size=args.batch_size)
    print(summary_table(results))
    print(f"wrote {Path(args.out) if args.out else Path(args.run) / 'eval'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
