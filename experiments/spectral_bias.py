#!/usr/bin/env python
"""Spectral bias, measured: the empirical neural tangent kernel (NTK) of small INRs (ReLU MLP, ReLU + positional
encoding, Fourier features at scales 1 and 10, SIREN) on a 1-D and a 2-D grid, its normalised eigenvalue spectrum,
its gain per Fourier mode, and how many steps each frequency of a 1-D sum of sinusoids takes to be fitted.

    python experiments/spectral_bias.py                                # all models, 1-D 128 and 2-D 16x16 grids
    python experiments/spectral_bias.py --frequencies 1,4,16,48 --points 256 --steps 2000
    python experiments/spectral_bias.py --models relu,siren --grid-2d 24

Writes results.csv (one row per model), results.md, figure.png, spectra.csv and configs.json into --out.
"""

from __future__ import annotations

import argparse

from inr_utils.applications.spectral_bias import (
    MODEL_NAMES,
    empirical_ntk,
    fit_speed,
    frequency_response,
    grid_points,
    ntk_spectrum,
    sinusoid_signal,
    spectral_config,
    spectral_figure,
)
from inr_utils.cli import OneLineArgumentParser, announce, positive_int, run_cli
from inr_utils.errors import InputError
from inr_utils.files import write_text
from inr_utils.reports import make_run_dir, settings_markdown, write_configs, write_results
from inr_utils.tables import to_csv, to_markdown


def names_arg(text: str) -> list[str]:
    values = [part.strip() for part in text.split(",") if part.strip()]
    bad = [v for v in values if v not in MODEL_NAMES]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"expected some of {', '.join(MODEL_NAMES)}, got {text!r}")
    return values


def ints_arg(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers such as 1,4,16, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one number, got {text!r}")
    return values


def parse_args() -> argparse.Namespace:
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=names_arg, default=list(MODEL_NAMES),
                   help=f"models, comma-separated (default: {','.join(MODEL_NAMES)})")
    p.add_argument("--points", type=positive_int, default=128, help="1-D grid points (default: 128)")
    p.add_argument("--grid-2d", type=positive_int, default=16, help="side of the 2-D NTK grid (default: 16)")
    p.add_argument("--frequencies", type=ints_arg, default=[1, 4, 12, 32],
                   help="cycles across the domain of the 1-D signal's sinusoids (default: 1,4,12,32)")
    p.add_argument("--steps", type=positive_int, default=600, help="training steps per model (default: 600)")
    p.add_argument("--record-every", type=positive_int, default=20,
                   help="steps between residual spectra (default: 20)")
    p.add_argument("--width", type=positive_int, default=64, help="hidden width (default: 64)")
    p.add_argument("--depth", type=positive_int, default=2, help="hidden layers after the first (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--out", help="output folder, must be new or empty (default: runs/<time>-spectral_bias)")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    freqs = args.frequencies
    if min(freqs) < 1 or max(freqs) >= args.points // 2:
        raise InputError(f"--frequencies must lie in [1, {args.points // 2 - 1}] for --points {args.points}, "
                         f"got {','.join(map(str, freqs))}")
    if args.steps % args.record_every:
        raise InputError(f"--steps ({args.steps}) must be a multiple of --record-every ({args.record_every})")
    out = make_run_dir(args.out, "spectral_bias")
    announce(f"writing to {out}")
    signal = sinusoid_signal(args.points, freqs, args.seed)
    rows, spectra, speeds, spectrum_rows, runs = [], {}, {}, [], []
    for name in args.models:
        announce(f"{name}: NTK on the 1-D and 2-D grids, then {args.steps} training steps ...")
        config_1d = spectral_config(name, 1, args.steps, args.width, args.depth, args.seed, args.record_every)
        config_2d = spectral_config(name, 2, args.steps, args.width, args.depth, args.seed, args.record_every)
        kernel_1d = empirical_ntk(config_1d, grid_points((args.points,)))
        kernel_2d = empirical_ntk(config_2d, grid_points((args.grid_2d, args.grid_2d)))
        spectra[name] = {"1d": ntk_spectrum(kernel_1d), "2d": ntk_spectrum(kernel_2d)}
        gains = frequency_response(kernel_1d, freqs)
        speed = fit_speed(config_1d, signal, freqs)
        speeds[name] = speed
        reached = speed.steps_to(0.1)
        row = {"model": name}
        for k, g, s in zip(freqs, gains, reached, strict=True):
            row[f"gain_{k}"] = float(g)
            row[f"steps_{k}"] = s if s is not None else f">{args.steps}"
        row["lambda10_1d"] = float(spectra[name]["1d"][min(9, args.points - 1)])
        row["lambda10_2d"] = float(spectra[name]["2d"][min(9, args.grid_2d ** 2 - 1)])
        row["final_mse"] = float(speed.loss[-1])
        rows.append(row)
        for grid_name, values in spectra[name].items():
            spectrum_rows += [{"model": name, "grid": grid_name, "index": i + 1, "value": float(v)}
                              for i, v in enumerate(values)]
        runs.append({"model": name, "config": config_1d.to_dict()})
    columns = ["model", *[f"gain_{k}" for k in freqs], *[f"steps_{k}" for k in freqs], "lambda10_1d",
               "lambda10_2d", "final_mse"]
    spectral_figure(out / "figure.png", spectra, speeds)
    settings = {"models": args.models, "1-D grid": args.points, "2-D grid": f"{args.grid_2d}x{args.grid_2d}",
                "frequencies (cycles)": freqs, "steps": args.steps, "width": args.width, "depth": args.depth,
                "seed": args.seed}
    formats = {c: "{:.3g}" for c in columns if c.startswith(("gain", "lambda", "final"))}
    markdown = ("# Spectral bias, measured\n\n" + settings_markdown(settings)
                + "\ngain_k: the NTK's gain on k cycles relative to the lowest frequency; steps_k: first step at "
                  "which the residual at k cycles is below 10% of the signal's; lambda10: 10th eigenvalue / "
                  "largest.\n\n" + to_markdown(rows, columns, formats) + "\n")
    write_results(out, rows, columns, markdown)
    write_text(out / "spectra.csv", to_csv(spectrum_rows, ["model", "grid", "index", "value"]))
    write_configs(out, "spectral_bias", args, runs)
    print(markdown)
    print(f"results: {out / 'results.md'}\nfigure: {out / 'figure.png'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
