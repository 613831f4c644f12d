#!/usr/bin/env python
"""Hypernetworks on CIFAR-10: held-out PSNR against training time for every registered hypernetwork, LA-INR's
achieved FLOP/s against this machine's matrix-product peak, vmapped per-image INR evaluation against a Python
loop, and peak memory.

Data: the CIFAR-10 training batch at --cifar (default ``../shared/data/cifar10``: ``data_batch_1``, 10,000
images); --val-count images (default 500, seed 0, ``train_val_split``) are held out, the rest train.

Each model (--models, default every entry of ``HYPERNETWORKS``) trains in a fresh Python process for
--minutes of training time with the library's recipe (``HyperTrainingSettings``: batch 16, Adam 5e-4, linear
warm-up over the first 1/8 of the run then cosine decay to 0, coordinate jitter 0.01, full images). The run's
length in steps is fixed before training from the measured speed of two timed chunks (so the schedule ends
when the time does). The held-out PSNR (all pixels of every held-out image, mean of per-image PSNRs) is
measured --evals times during training; the curve's x axis is training seconds (evaluations excluded,
compilation included).

Also measured in each model's process:
  * FLOP/s of the compiled train step: XLA's cost analysis of one step (``compiled.cost_analysis()``) divided
    by the measured seconds per step; this machine's matrix-product peak is the best float32 GFLOP/s of
    square products 512..2048 (jitted, timed). Target for LA-INR: >= 40 % of the peak.
  * INR evaluation of --eval-images encoded held-out images at 32x32 (``hypernetwork_utils.evaluation.inr_speed``):
    one jitted ``vmap`` of the INR over images vs a Python loop calling the jitted single-image INR; target >= 10x.
    Both rates in GFLOP/s (cost analysis of one image's evaluation) are reported, and the largest speedup batching
    could give, the matmul peak over the loop's rate: a loop that already runs at a tenth of the peak or more
    leaves no room for 10x.
  * peak resident memory of the process (target < 8 GB at the default settings).

Targets (issue 11): after 1 hour of CPU training the best model's held-out PSNR >= 26 dB; LA-INR above Trans-INR.
The results file keeps one row per model: a run of some models (--models) replaces their rows and keeps the others
(each row records its own --minutes and date), so the 1-hour runs can be made one model at a time.

    python benchmarks/hypernetworks.py --minutes 60 --record      # the issue's measurement (3 hours)
    python benchmarks/hypernetworks.py --quick                    # smoke run (about a minute per model)
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    REPO_ROOT,
    RESULTS_DIR,
    add_json_arg,
    environment,
    make_parser,
    parse_last_json_line,
    peak_rss_mb,
    positive_int,
    print_table,
    write_json,
)

DEFAULT_CIFAR = REPO_ROOT.parent / "shared" / "data" / "cifar10"
TARGETS = {"psnr_db": 26.0, "flops_share": 0.40, "vmap_speedup": 10.0, "peak_mb": 8192.0}


def parse_args() -> argparse.Namespace:
    p = make_parser(__doc__)
    p.add_argument("--cifar", type=Path, default=DEFAULT_CIFAR, help="CIFAR-10 folder or data_batch_1")
    p.add_argument("--models", default=None, help="comma-separated hypernetwork names (default: all registered)")
    p.add_argument("--minutes", type=float, default=60.0, help="training minutes per model (default: 60)")
    p.add_argument("--evals", type=positive_int, default=12, help="held-out evaluations per run (default: 12)")
    p.add_argument("--val-count", type=positive_int, default=500, help="held-out images (default: 500)")
    p.add_argument("--eval-images", type=positive_int, default=256,
                   help="images of the vmap-vs-loop INR evaluation (default: 256)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 minute per model, 3 evaluations")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: train one model, print its JSON line
    add_json_arg(p, "hypernetworks")
    args = p.parse_args()
    if args.quick:
        args.minutes, args.evals, args.eval_images = 1.0, 3, 64
    return args


def matmul_peak_gflops() -> float:
    """Best float32 GFLOP/s of jitted square matrix products on the default device (2 n^3 flops each)."""
    import jax
    import jax.numpy as jnp

    best = 0.0
    for n in (512, 1024, 2048):
        a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
        product = jax.jit(lambda x: x @ x)
        product(a).block_until_ready()
        reps = max(3, int(2e10 / (2 * n ** 3)))
        start = time.perf_counter()
        for _ in range(reps):
            out = product(a)
        out.block_until_ready()
        best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - start) / 1e9)
    return best


def step_flops(step: Any, state: Any, images: Any, key: Any) -> float | None:
    """Flops of one compiled train step (XLA's cost analysis of the step alone: the analysis of a ``lax.scan``
    chunk counts its loop body once), or None where the backend gives none."""
    import jax

    from hypernetwork_utils.evaluation import compiled_flops

    return compiled_flops(jax.jit(step).lower(state, images, key).compile())


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Trains one model for ``args.minutes`` and measures it (runs in its own process)."""
    import jax

    from hypernetwork_utils.batches import Batches, train_val_split
    from hypernetwork_utils.cifar10 import load_cifar10
    from hypernetwork_utils.evaluation import encode, inr_speed, psnr_per_image, reconstruct
    from hypernetwork_utils.training import (
        HyperTrainingSettings,
        build_hyper_optimizer,
        init_hyper_state,
        make_hyper_program,
        make_hyper_train_step,
        train_hypernetwork,
    )
    from inr_utils.training import merge_variables
    from model_components.hypernetworks import build_hypernetwork, hyper_config
    from model_components.inrs import count_params

    name = args.worker
    train, val = train_val_split(load_cifar10(args.cifar), val_count=args.val_count, seed=0)
    batches = Batches(train, 16, seed=0)
    model = build_hypernetwork(hyper_config(name, image_size=(32, 32), channels=3))
    val_images = val.as_float()
    key = jax.random.key(0)

    # speed: two timed chunks after compilation fix the run's length
    chunk = 10
    probe = HyperTrainingSettings(steps=10 ** 6)
    optimizer = build_hyper_optimizer(probe, batches.steps_per_epoch)
    step = make_hyper_train_step(model.apply, optimizer, (32, 32), probe.jitter)
    program = make_hyper_program(step)
    state = init_hyper_state(model, optimizer, jax.random.fold_in(key, 0), (32, 32, 3))
    data = jax.numpy.asarray(batches.chunk(0, chunk))
    flops = step_flops(step, state, data[0], key)
    state, _ = program(state, data, key)
    jax.block_until_ready(state)
    start = time.perf_counter()
    for i in (1, 2):
        state, _ = program(state, jax.numpy.asarray(batches.chunk(i * chunk, chunk)), key)
    jax.block_until_ready(state)
    seconds_per_step = (time.perf_counter() - start) / (2 * chunk)
    total_steps = max(chunk, int(args.minutes * 60 / seconds_per_step))
    settings = HyperTrainingSettings(steps=total_steps, warmup_epochs=total_steps / 8 / batches.steps_per_epoch,
                                     steps_per_call=25)

    optimizer = build_hyper_optimizer(settings, batches.steps_per_epoch)
    step = make_hyper_train_step(model.apply, optimizer, (32, 32), settings.jitter)
    state = init_hyper_state(model, optimizer, jax.random.fold_in(key, 0), (32, 32, 3))
    reconstruct = functools.partial(reconstruct, model, batch_size=64)
    eval_at = sorted(set(np.linspace(0, total_steps, args.evals + 1).round().astype(int)[1:].tolist()))
    curve: list[dict[str, float]] = []
    eval_seconds = [0.0]  # spent in evaluations so far (excluded from the training time)

    def held_out(info: Any) -> None:
        if not eval_at or info.step < eval_at[0]:
            return
        while eval_at and info.step >= eval_at[0]:
            eval_at.pop(0)
        train_s = info.elapsed_s - eval_seconds[0]
        t0 = time.perf_counter()
        recon = reconstruct(merge_variables(info.state.params, info.state.constants), val_images)
        psnr = float(np.mean(psnr_per_image(np.clip(recon, 0, 1), val_images)))
        eval_seconds[0] += time.perf_counter() - t0
        curve.append({"step": info.step, "train_s": train_s, "psnr": psnr})
        print(f"{name}: step {info.step}/{total_steps} held-out PSNR {psnr:.2f} dB", file=sys.stderr, flush=True)

    result = train_hypernetwork(state, batches.chunk, jax.random.fold_in(key, 1), step, total_steps,
                                steps_per_call=settings.steps_per_call, callbacks=[held_out])
    variables = merge_variables(result.state.params, result.state.constants)
    speed = inr_speed(model, encode(model, variables, val_images[:args.eval_images]), (32, 32))
    peak = matmul_peak_gflops()
    if speed["flops_per_image"]:
        # the loop's achieved rate bounds what batching can gain: vmapped at the matmul peak is peak / loop rate
        rates = {k: speed["flops_per_image"] * speed["images"] / speed[f"{k}_s"] / 1e9 for k in ("vmapped", "loop")}
        speed.update(vmapped_gflops=rates["vmapped"], loop_gflops=rates["loop"],
                     speedup_bound_at_peak=peak / rates["loop"])
    return {"model": name, "minutes": args.minutes, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "params": count_params(result.state.params), "steps": total_steps,
            "seconds_per_step": seconds_per_step, "step_gflop": None if flops is None else flops / 1e9,
            "achieved_gflops": None if flops is None else flops / seconds_per_step / 1e9,
            "matmul_peak_gflops": peak, "train_wall_s": result.wall_s - eval_seconds[0],
            "curve": curve, "final_psnr": curve[-1]["psnr"] if curve else float("nan"),
            "inr_eval": speed, "peak_rss_mb": peak_rss_mb()}


def figure(rows: list[dict[str, Any]], path: Path) -> None:
    """PSNR-vs-time curves of every model in one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for row in rows:
        curve = row["curve"]
        ax.plot([c["train_s"] / 60 for c in curve], [c["psnr"] for c in curve], marker="o",
                label=f"{row['model']} ({row['params'] / 1e6:.2f} M params, {row.get('minutes', 0):g} min run)")
    ax.axhline(TARGETS["psnr_db"], color="gray", linestyle=":", label=f"target {TARGETS['psnr_db']:.0f} dB")
    ax.set_xlabel("training minutes (CPU, this machine)")
    ax.set_ylabel("held-out PSNR (dB)")
    ax.set_title("Hypernetworks on CIFAR-10 (held-out images)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"figure written to {path}")


def main() -> int:
    args = parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    if not args.cifar.exists():
        print(f"error: CIFAR-10 batch '{args.cifar}' not found; pass --cifar PATH", file=sys.stderr)
        return 2
    from model_components.hypernetworks import HYPERNETWORKS

    names = args.models.split(",") if args.models else HYPERNETWORKS.names()
    rows = []
    for name in names:
        command = [sys.executable, __file__, "--worker", name, "--cifar", str(args.cifar), "--minutes",
                   str(args.minutes), "--evals", str(args.evals), "--val-count", str(args.val_count),
                   "--eval-images", str(args.eval_images)]
        print(f"{name}: training for {args.minutes:g} minutes ...", flush=True)
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            return done.returncode
        rows.append(parse_last_json_line(done.stdout, name))
    peak = rows[0]["matmul_peak_gflops"]
    print_table(["model", "params M", "steps", "ms/step", "held-out dB", "GFLOP/s", "% of peak", "vmap x",
                 "vmap x bound", "peak MB"],
                [[r["model"], r["params"] / 1e6, r["steps"], 1e3 * r["seconds_per_step"], r["final_psnr"],
                  r["achieved_gflops"], None if r["achieved_gflops"] is None else
                  100 * r["achieved_gflops"] / r["matmul_peak_gflops"], r["inr_eval"]["speedup"],
                  r["inr_eval"].get("speedup_bound_at_peak"), r["peak_rss_mb"]]
                 for r in rows],
                title=f"{args.minutes:g} training minutes per model; matmul peak {peak:.1f} GFLOP/s")
    rows = merged_rows(args.json, rows)
    figure(rows, (RESULTS_DIR if args.json.parent == RESULTS_DIR else args.json.parent) /
           "hypernetworks_psnr_vs_time.png")
    write_json(args.json, {"environment": environment(), "targets": TARGETS, "models": rows})
    return 0


def merged_rows(path: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` after the rows already in ``path`` of models this run did not train (each row keeps its own
    ``minutes`` and ``time``), so one model per run (``--models``) builds up the file."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return rows
    names = {r["model"] for r in rows}
    minutes = earlier.get("minutes")  # files written before rows carried their own length
    kept = [{"minutes": minutes, **r} for r in earlier.get("models", []) if r.get("model") not in names]
    return kept + rows


if __name__ == "__main__":
    sys.exit(main())
