#!/usr/bin/env python
"""Architecture sweep: the positional-encoding ReLU MLP (relu_pe preset, NeRF encoding L = 10) with 2, 4 and
6 hidden layers x 128, 256 and 512 units, fitted to one image; how much does quality buy per parameter?

    python experiments/classic/architecture.py                       # astronaut 256x256, 2000 steps, 9 fits
    python experiments/classic/architecture.py --size 32 --steps 20 --depths 1 2 --widths 16 32

"Hidden layers" is the config's ``depth``: hidden layers after the first (the relu_pe preset, depth 4, has
1 + 4 ReLU layers of 256 units). Writes into --out (default runs/<time>-architecture): results.csv and
results.md (depth, width, params, PSNR, SSIM, seconds per step), figure.png (parameters on a log axis against
PSNR, one line per depth) and configs.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt

from inr_utils.cli import (
    OneLineArgumentParser,
    add_run_flags,
    announce,
    interrupted,
    positive_int,
    progress_bar,
    run_cli,
)
from inr_utils.images import load_named_image
from inr_utils.plots import save_figure
from inr_utils.reports import make_run_dir, settings_markdown, write_configs, write_results
from inr_utils.studies import experiment_config, fit_and_score
from inr_utils.tables import to_markdown
from inr_utils.training import TrainingInterrupted

EXPERIMENT = "architecture"
PRESET = "relu_pe"
COLUMNS = ("depth", "width", "params", "psnr", "ssim", "s_per_step", "compile_s", "note")


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("experiment")
    g.add_argument("--image", default="astronaut",
                   help="image to fit: a PNG/JPEG path or a scikit-image test image name (default: astronaut)")
    g.add_argument("--depths", nargs="+", type=positive_int, default=[2, 4, 6], metavar="DEPTH",
                   help="hidden layers after the first (the config's depth) (default: 2 4 6)")
    g.add_argument("--widths", nargs="+", type=positive_int, default=[128, 256, 512], metavar="WIDTH",
                   help="hidden units per layer (default: 128 256 512)")
    g.add_argument("--num-frequencies", type=int, default=10,
                   help="L of the NeRF positional encoding of every model (default: 10)")
    add_run_flags(p, EXPERIMENT, steps=2000)
    return p


def make_figure(path: Path, rows: list[dict], title: str) -> None:
    """Parameters (log x) against PSNR, one line per depth, points labelled with their width."""
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for depth in dict.fromkeys(r["depth"] for r in rows):
        points = sorted((r["params"], r["psnr"], r["width"]) for r in rows if r["depth"] == depth)
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=f"depth {depth}")
        for params, value, width in points:
            ax.annotate(f"{width}", (params, value), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="hidden layers (labels: width)", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def markdown(rows: list[dict], settings: dict) -> str:
    """results.md: the table and the settings."""
    table = to_markdown(rows, ("depth", "width", "params", "psnr", "ssim", "s_per_step", "note"),
                           formats={"psnr": "{:.2f}", "ssim": "{:.4f}", "s_per_step": "{:.4g}"},
                           headers={"depth": "hidden layers (depth)", "psnr": "PSNR (dB)", "ssim": "SSIM",
                                    "s_per_step": "s/step"})
    return f"# Architecture sweep ({PRESET})\n\n{table}\n{settings_markdown(settings)}"


def main() -> int:
    args = build_parser().parse_args()
    grid = [(d, w) for d in dict.fromkeys(args.depths) for w in dict.fromkeys(args.widths)]
    label, image = load_named_image(args.image, args.size)
    image_file = args.image if Path(args.image).is_file() else None
    configs = [experiment_config(PRESET, args.steps, args.size, args.batch_size, args.seed, image_file,
                                    depth=d, width=w, num_frequencies=args.num_frequencies) for d, w in grid]
    out = make_run_dir(args.out, EXPERIMENT)
    announce(f"writing to {out}")
    write_configs(out, EXPERIMENT, args, [{"depth": d, "width": w, "image": args.image, "config": c.to_dict()}
                                             for (d, w), c in zip(grid, configs, strict=True)])
    settings = {"model": f"{PRESET}, NeRF encoding L={args.num_frequencies}",
                "image": f"{label} {image.shape[1]}x{image.shape[0]}", "steps": args.steps,
                "batch size": args.batch_size, "seed": args.seed}
    rows = []
    bar = progress_bar(len(grid), EXPERIMENT, args.no_progress)
    try:
        for (depth, width), config in zip(grid, configs, strict=True):
            bar.set_postfix_str(f"depth {depth} width {width}")
            result = fit_and_score(image, config)
            rows.append({"depth": depth, "width": width, **result.metrics()})
            announce(f"depth {depth} x width {width}: {result.params:,} params, {result.psnr:.2f} dB")
            write_results(out, rows, COLUMNS, markdown(rows, settings))
            bar.update()
    except TrainingInterrupted:
        return interrupted(out)
    finally:
        bar.close()
    make_figure(out / "figure.png", rows, f"{PRESET} on {label} {image.shape[1]}x{image.shape[0]}, {args.steps} steps")
    announce(f"results in {out}")
    print(markdown(rows, settings), end="")
    return 0


if __name__ == "__main__":
    run_cli(main)
