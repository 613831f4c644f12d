#!/usr/bin/env python
"""SIREN on scikit-image's ``camera``: PSNR and time after 500, 1000 and 2000 steps, against a bare-JAX SIREN.

Configuration: ``model_config("siren", out_dim=1)`` (3 hidden layers x 256, omega0 = 30, fast sine), the
256x256 grayscale ``camera`` image, the full image every step (``batch_size=None``), Adam lr 1e-4 constant,
one ``inr_utils.fitting.fit`` call to the last step.

What is measured, at every step of --checkpoints (chunks of the fit are sized to land on them):
  * PSNR of the full 256x256 render (``inr_utils.rendering.render``), clipped to [0, 1] as the saved PNG is,
    and unclipped;
  * elapsed seconds of the fit at that step (compilation included, this script's own renders excluded);
and, for the whole run, the steady seconds per step: the median time of the compiled chunks after the
first one (compilation and evaluations excluded), divided by the chunk's steps.

Reference, from the issue: bare JAX SIREN, 31.0 dB at 500 steps, 34.5 dB at 900 steps, 0.67 s/step.
Target: at least as good, i.e. >= 31.0 dB at step 500, >= 34.5 dB at the first checkpoint at or after 900,
and <= 0.67 s/step (checks whose step is beyond --steps are not made).

A full run takes 10-20 minutes on a 2-core CPU:

    python benchmarks/siren_camera.py
    python benchmarks/siren_camera.py --steps 200 --checkpoints 100,200     # smoke run
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from common import (
    add_json_arg,
    environment,
    int_list,
    make_parser,
    positive_int,
    print_table,
    rendered_psnr,
    stopwatch,
    write_json,
)

from inr_utils.config import FitConfig
from inr_utils.engine import ChunkInfo
from inr_utils.fitting import fit
from inr_utils.images import skimage_image
from inr_utils.training import merge_variables
from model_components.inrs import build_model, model_config

NAME = "siren_camera"
#: The issue's bare-JAX SIREN: PSNR (dB) reached at these steps, and its seconds per step.
REFERENCE_PSNR = {500: 31.0, 900: 34.5}
REFERENCE_S_PER_STEP = 0.67


class CheckpointRecorder:
    """Fit callback: at each step of ``checkpoints`` renders the full image and records PSNR and elapsed time;
    after every chunk records the chunk's pure training time.

    Elapsed times exclude the time this callback spends rendering. A chunk's training time is the interval
    from the end of this callback after one chunk to its start after the next (this callback runs last, so
    the interval holds the compiled chunk and the fit's cheap built-in callbacks).

    Attributes:
      records: one dict per checkpoint (``step``, ``elapsed_s``, ``psnr``, ``psnr_unclipped``, ``eval_s``).
      chunks: ``(steps, seconds)`` of every chunk after the first (the first one includes compilation).
      eval_s: total seconds spent in this callback's renders.
    """

    def __init__(self, apply_fn: Callable, image: np.ndarray, checkpoints: Sequence[int]):
        self.apply_fn = apply_fn
        self.image = image
        self.checkpoints = set(checkpoints)
        self.records: list[dict[str, float]] = []
        self.chunks: list[tuple[int, float]] = []
        self.eval_s = 0.0
        self._last: tuple[int, float] | None = None  # (step, time) at the end of the previous call

    def __call__(self, info: ChunkInfo) -> None:
        entered = time.perf_counter()
        if self._last is not None:
            self.chunks.append((info.step - self._last[0], entered - self._last[1]))
        if info.step in self.checkpoints:
            variables = merge_variables(info.state.params, info.state.constants)
            with stopwatch() as t:
                scores = rendered_psnr(self.apply_fn, variables, self.image)
            record = {"step": info.step, "elapsed_s": info.elapsed_s - self.eval_s, **scores,
                      "eval_s": t["s"]}
            self.records.append(record)
            self.eval_s += t["s"]
            print(f"  step {info.step}: {record['psnr']:.2f} dB at {record['elapsed_s']:.1f} s", flush=True)
        self._last = (info.step, time.perf_counter())

    def steady_s_per_step(self) -> float:
        """Median seconds per step over the chunks after the first (NaN when there was only one chunk)."""
        if not self.chunks:
            return math.nan
        return float(np.median([seconds / steps for steps, seconds in self.chunks]))


def parse_args() -> argparse.Namespace:
    p = make_parser(__doc__)
    p.add_argument("--steps", type=positive_int, default=2000, help="optimisation steps (default: 2000)")
    p.add_argument("--checkpoints", type=int_list, default=[500, 1000, 2000],
                   help="comma-separated steps at which to render and score (default: 500,1000,2000)")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate, constant (default: 1e-4)")
    p.add_argument("--size", type=positive_int, default=256, help="image side in pixels (default: 256)")
    p.add_argument("--seed", type=int, default=0, help="initialisation seed (default: 0)")
    p.add_argument("--steps-per-call", type=positive_int, default=100,
                   help="steps per compiled chunk; lowered to a divisor of every checkpoint (default: 100)")
    p.add_argument("--fast-sine", action=argparse.BooleanOptionalAction, default=True,
                   help="polynomial sine (model_components.fast_math) instead of jnp.sin (default: on)")
    add_json_arg(p, NAME)
    args = p.parse_args()
    if args.checkpoints[-1] > args.steps:
        p.error(f"checkpoint {args.checkpoints[-1]} is beyond --steps {args.steps}")
    return args


def reference_cell(step: int) -> str:
    """The reference PSNR to compare with at ``step``: the value at the latest reference step <= ``step``."""
    reached = [s for s in REFERENCE_PSNR if s <= step]
    if not reached:
        return "-"
    ref_step = max(reached)
    return f"{REFERENCE_PSNR[ref_step]:.1f}" + ("" if ref_step == step else f" @{ref_step}")


def target_checks(records: Sequence[dict[str, Any]], s_per_step: float) -> list[dict[str, Any]]:
    """PASS/FAIL of each reference figure that this run's checkpoints can be compared with."""
    checks = []
    for ref_step, ref_db in sorted(REFERENCE_PSNR.items()):
        later = [r for r in records if r["step"] >= ref_step]
        if later:
            r = later[0]
            checks.append({"check": f"PSNR at step {r['step']} >= {ref_db} dB (reference at {ref_step})",
                           "value": r["psnr"], "pass": r["psnr"] >= ref_db})
    if not math.isnan(s_per_step):
        checks.append({"check": f"s/step <= {REFERENCE_S_PER_STEP}", "value": s_per_step,
                       "pass": s_per_step <= REFERENCE_S_PER_STEP})
    return checks


def main() -> int:
    args = parse_args()
    image = skimage_image("camera", args.size)  # (H, W, 1)
    steps_per_call = math.gcd(args.steps_per_call, args.steps, *args.checkpoints)
    config = FitConfig(model=model_config("siren", out_dim=image.shape[-1], fast_sine=args.fast_sine),
                       max_size=args.size,
                       steps=args.steps, batch_size=None, lr=args.lr, lr_schedule="constant", seed=args.seed,
                       steps_per_call=steps_per_call)
    recorder = CheckpointRecorder(build_model(config.model).apply, image, args.checkpoints)
    print(f"fitting SIREN on camera {args.size}x{args.size}, full image, {args.steps} steps "
          f"({steps_per_call} per compiled chunk) ...", flush=True)
    # eval_every=steps: the fit's own full-image evaluation runs only after the first chunk and at the end.
    with stopwatch() as t:
        result = fit(image, config, callbacks=[recorder], progress=False, eval_every=args.steps)
    s_per_step = recorder.steady_s_per_step()

    rows: list[list[Any]] = [
        [f"step {r['step']}", r["elapsed_s"], r["psnr"], r["psnr_unclipped"], reference_cell(r["step"])]
        for r in recorder.records
    ]
    rows.append(["s/step (steady)", "-" if math.isnan(s_per_step) else f"{s_per_step:.3f}", None, None,
                 f"{REFERENCE_S_PER_STEP:.2f}"])
    print_table(["", "elapsed s", "PSNR dB", "unclipped dB", "reference"], rows,
                title="flax-inr SIREN vs the issue's bare JAX SIREN (31.0 dB at 500 steps, 34.5 dB at "
                      "900 steps, 0.67 s/step); 'X @N': reference value at step N")
    print(f"compile {result.compile_s:.1f} s, whole fit() call {t['s']:.1f} s "
          f"(of which {recorder.eval_s:.1f} s rendering checkpoints)")
    checks = target_checks(recorder.records, s_per_step)
    for check in checks:
        print(f"target: {check['check']}: {'PASS' if check['pass'] else 'FAIL'} ({check['value']:.3f})")

    write_json(args.json, {
        "benchmark": NAME,
        "config": {"image": "camera", "size": args.size, "model": "siren", "steps": args.steps,
                   "batch_size": None, "lr": args.lr, "lr_schedule": "constant", "seed": args.seed,
                   "steps_per_call": steps_per_call, "fast_sine": args.fast_sine},
        "checkpoints": recorder.records,
        "s_per_step_steady": s_per_step,
        "compile_s": result.compile_s,
        "fit_call_s": t["s"],
        "checkpoint_render_s": recorder.eval_s,
        "reference": {"name": "bare JAX SIREN (issue)", "psnr_db_at_step": REFERENCE_PSNR,
                      "s_per_step": REFERENCE_S_PER_STEP},
        "target_checks": checks,
        "environment": environment(),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
