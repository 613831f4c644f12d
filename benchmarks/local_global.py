#!/usr/bin/env python
"""Local-Global SIREN against a plain SIREN of the same parameter count (issue "Croppable INRs"), and cropping.

For every signal, ``experiments/fit_signal.py`` fits it twice with the same budget (``--params``, default 200k),
steps, sample fraction, learning rate and seed: ``--mode lg`` (a Local-Global SIREN, partitions and widths from
``inr_utils.croppable.auto_partition``) and ``--mode mlp`` (a plain SIREN 1+3 x width). Reported side by side:
parameters, final PSNR of the whole signal, seconds per step (wall time of the training loop without compilation,
over steps), and the first evaluation step (every ``--eval-every`` steps) reaching ``--psnr-target`` dB with the
training seconds to it (compilation excluded). Then the Local-Global run is cropped by ``experiments/crop.py``:
a quarter of the partitions removed (images: the last quarter of the partition columns, or rows, when their
count is a multiple of 4, else the top-left quadrant of the grid; audio: the last quarter of the time
partitions), giving the fraction of parameters removed and the PSNR of the kept region before and after.

Signals: the two DIV2K photos of ``../shared/data/div2k`` at 1/4 resolution (``--div2k``) and the first
``--audio-seconds`` of SIREN's Bach recording (``--audio``); a missing file is skipped with a note.

Targets: Local-Global PSNR >= plain SIREN PSNR after the same steps; a Local-Global step <= 1.3x a plain SIREN
step; cropping 25 % of the region removes 22-28 % of the parameters and leaves the kept region's PSNR unchanged.

    python benchmarks/local_global.py                          # 2 photos + audio, 1000 steps each (long on CPU)
    python benchmarks/local_global.py --steps 300 --signals audio
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import REPO_ROOT, add_json_arg, environment, make_parser, positive_int, print_table, write_json

NAME = "local_global"
SHARED = REPO_ROOT.parent / "shared" / "data"
TARGETS = {"step_ratio_max": 1.3, "crop_removed_min": 0.22, "crop_removed_max": 0.28}


def parse_args() -> Any:
    p = make_parser(__doc__)
    p.add_argument("--signals", default="0159,0228,audio",
                   help="comma-separated: DIV2K photo names (files of --div2k without .png) and/or 'audio' "
                        "(default: 0159,0228,audio)")
    p.add_argument("--div2k", type=Path, default=SHARED / "div2k", help="folder of the DIV2K photos")
    p.add_argument("--audio", type=Path, default=SHARED / "audio" / "gt_bach.wav", help="the WAV file")
    p.add_argument("--audio-seconds", type=float, default=None, help="seconds of audio fitted (default: all)")
    p.add_argument("--steps", type=positive_int, default=1000, help="steps of every fit (default: 1000)")
    p.add_argument("--eval-every", type=positive_int, default=50, help="steps between PSNR evaluations (default: 50)")
    p.add_argument("--params", type=positive_int, default=200_000, help="parameter budget (default: 200000)")
    p.add_argument("--psnr-target", type=float, default=30.0, help="PSNR of 'time to' (default: 30 dB)")
    p.add_argument("--modes", default="lg,mlp", help="modes compared (default: lg,mlp)")
    p.add_argument("--keep-runs", type=Path, default=None, help="keep the run folders here (default: a temp dir)")
    add_json_arg(p, NAME)
    return p.parse_args()


def run_json(cmd: list[str]) -> dict[str, Any]:
    """Runs a script; its last stdout line that is a JSON object, or RuntimeError with its error output."""
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:3])} exited with {proc.returncode}: {proc.stderr.strip()[-1500:]}")
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}


def time_to(history: Path, target: float) -> tuple[int | None, float | None]:
    """First evaluated step with full PSNR >= target and the training seconds at that step (from the chunk
    clock; chunks end at every evaluation since ``--steps-per-call`` = ``--eval-every``)."""
    with history.open() as f:
        for row in csv.DictReader(f):
            value = float(row["full_psnr"]) if row["full_psnr"] not in ("", "nan") else math.nan
            if not math.isnan(value) and value >= target:
                elapsed = float(row["elapsed_s"]) if row.get("elapsed_s") not in (None, "", "nan") else None
                return int(row["step"]), elapsed
    return None, None


def fit(signal: str, mode: str, args: Any, out: Path) -> dict[str, Any]:
    """One fit_signal.py run; its metrics plus time to the target."""
    if signal == "audio":
        source = ["--signal", "audio", "--input", str(args.audio)]
        if args.audio_seconds:
            source += ["--duration", str(args.audio_seconds)]
    else:
        source = ["--signal", "image", "--input", str(args.div2k / f"{signal}.png"), "--downscale", "4"]
    cmd = [sys.executable, "experiments/fit_signal.py", *source, "--mode", mode, "--params", str(args.params),
           "--steps", str(args.steps), "--eval-every", str(args.eval_every), "--steps-per-call", str(args.eval_every),
           "--out", str(out), "--no-progress"]
    run_json(cmd)
    metrics = json.loads((out / "metrics.json").read_text())
    step, seconds = time_to(out / "history.csv", args.psnr_target)
    compile_s = float(metrics.get("compile_s") or 0.0)
    return {"params": metrics["params"], "psnr": metrics["psnr"], "s_per_step": metrics["s_per_step"],
            "wall_s": metrics["wall_s"], "compile_s": compile_s, "steps_to_target": step,
            "s_to_target": None if seconds is None else round(seconds - compile_s, 2)}


def crop_quarter(signal: str, run: Path, out: Path) -> dict[str, Any]:
    """crop.py on a Local-Global run: the top-left quadrant of an image grid, or the last quarter of audio."""
    grid = json.loads((run / "config.json").read_text())["model"]["partitions"]
    if signal == "audio":
        (g,) = grid
        flags = ["--crop-along", "0:" + ",".join(str(i) for i in range(g - g // 4, g))]
    else:
        rows, cols = grid
        if cols % 4 == 0 or rows % 4 == 0:  # a band of exactly a quarter of the image: the last columns (or rows)
            axis, count = (1, cols) if cols % 4 == 0 else (0, rows)
            flags = ["--crop-along", f"{axis}:" + ",".join(str(i) for i in range(count - count // 4, count))]
        else:  # the top-left quadrant of the grid (a quarter when both counts are even)
            removed = [r * cols + c for r in range(rows // 2) for c in range(cols // 2)]
            flags = ["--crop-partitions", ",".join(map(str, removed))]
    return run_json([sys.executable, "experiments/crop.py", str(run), *flags, "--out", str(out)])


def main() -> int:
    args = parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    results: dict[str, Any] = {"benchmark": NAME, "targets": TARGETS, "config": {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "signals": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep_runs or Path(tmp)
        for signal in [s.strip() for s in args.signals.split(",") if s.strip()]:
            source = args.audio if signal == "audio" else args.div2k / f"{signal}.png"
            if not source.is_file():
                print(f"skipping {signal}: {source} not found", file=sys.stderr)
                continue
            entry: dict[str, Any] = {}
            for mode in modes:
                print(f"{signal}: fitting --mode {mode} ({args.steps} steps)", file=sys.stderr, flush=True)
                entry[mode] = fit(signal, mode, args, root / f"{signal}-{mode}")
            if "lg" in entry:
                entry["crop"] = crop_quarter(signal, root / f"{signal}-lg", root / f"{signal}-lg-crop")
            if "lg" in entry and "mlp" in entry:
                entry["step_ratio_lg_over_mlp"] = round(entry["lg"]["s_per_step"] / entry["mlp"]["s_per_step"], 3)
                entry["psnr_lg_minus_mlp"] = round(entry["lg"]["psnr"] - entry["mlp"]["psnr"], 3)
            results["signals"][signal] = entry
    rows = [[f"{signal} {mode}", e[mode]["params"], e[mode]["psnr"], 1000 * e[mode]["s_per_step"],
             e[mode]["steps_to_target"], e[mode]["s_to_target"]]
            for signal, e in results["signals"].items() for mode in modes]
    print_table(["fit", "params", "PSNR dB", "ms/step", f"steps to {args.psnr_target:g} dB", "s to it"], rows,
                title=f"Local-Global vs plain SIREN, {args.steps} steps, about {args.params:,} parameters")
    crops = [[signal, e["crop"]["params_removed_fraction"], e["crop"]["samples_kept_fraction"],
              e["crop"]["psnr_kept_uncropped"], e["crop"]["psnr_kept"], e["crop"]["max_abs_difference"]]
             for signal, e in results["signals"].items() if "crop" in e]
    if crops:
        print_table(["cropped lg", "params removed", "samples kept", "kept PSNR before", "after", "max |diff|"],
                    crops, title="Cropping a quarter of the partitions")
    results["environment"] = environment()
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
