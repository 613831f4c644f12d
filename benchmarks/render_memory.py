#!/usr/bin/env python
"""Memory and time of rendering an INR at 4096x4096 with ``inr_utils.rendering.render``.

The INR is a SIREN fitted here on scikit-image's ``camera`` (256x256, full image, Adam 1e-4, --steps
steps; checkpointed to a temporary folder), or the newest checkpoint of a ``experiments/fit_image.py`` run
folder given with --run. The render runs in a fresh subprocess of this script (``--render-only``) that
loads the checkpoint and renders, so that its peak resident set size (``VmHWM`` on Linux, see
``common.peak_rss_mb``) reflects start-up, loading and rendering only, never the fit.

What is measured: render seconds (the render's one compilation included), the subprocess's peak RSS
before and after rendering, and the size of the output array itself.

Target: peak RSS < 2048 MB.

    python benchmarks/render_memory.py                       # fit 300 steps, render 4096x4096
    python benchmarks/render_memory.py --run runs/x          # render a saved run instead
    python benchmarks/render_memory.py --steps 10 --size 1024   # smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import (
    add_json_arg,
    environment,
    make_parser,
    parse_last_json_line,
    peak_rss_mb,
    positive_int,
    print_table,
    stopwatch,
    write_json,
)

NAME = "render_memory"
TARGET_PEAK_RSS_MB = 2048.0


def parse_args() -> argparse.Namespace:
    p = make_parser(__doc__)
    p.add_argument("--run", type=Path,
                   help="run folder (or its checkpoints/ folder) written by fit_image.py "
                        "(default: fit a SIREN on camera here)")
    p.add_argument("--steps", type=positive_int, default=300,
                   help="steps of the SIREN fit when no --run is given (default: 300)")
    p.add_argument("--size", type=positive_int, default=4096, help="render height and width (default: 4096)")
    p.add_argument("--chunk-pixels", type=positive_int, default=1 << 16,
                   help="pixels per compiled call of render() (default: 65536, the library default)")
    p.add_argument("--render-only", type=Path, metavar="CKPT_DIR",
                   help="internal: load the checkpoint in CKPT_DIR, render, print one JSON line")
    add_json_arg(p, NAME)
    return p.parse_args()


def checkpoint_dir(run: Path) -> Path:
    """A run folder's ``checkpoints/`` folder, or ``run`` itself when it is one."""
    return run / "checkpoints" if (run / "checkpoints").is_dir() else run


def render_only(ckpt_dir: Path, size: int, chunk_pixels: int) -> dict[str, Any]:
    """Loads the newest checkpoint of ``ckpt_dir`` as ``experiments/render.py`` does and renders it at
    ``size x size``; returns timings and this process's peak RSS (meant to run in a fresh process)."""
    from inr_utils.checkpoints import load_config, restore_checkpoint
    from inr_utils.config import FitConfig
    from inr_utils.fitting import initial_state
    from inr_utils.rendering import render
    from inr_utils.training import merge_variables

    config = FitConfig.from_dict(load_config(ckpt_dir))
    model, _, template = initial_state(config, config.model.out_dim)
    state = restore_checkpoint(ckpt_dir, template)
    rss_before = peak_rss_mb()
    with stopwatch() as t:
        image = render(model.apply, merge_variables(state.params, state.constants), size, size,
                       chunk_pixels=chunk_pixels)
    return {"render_s": t["s"], "peak_rss_mb": peak_rss_mb(), "peak_rss_before_render_mb": rss_before,
            "output_mb": image.nbytes / (1 << 20), "shape": list(image.shape), "step": int(state.step),
            "model": config.model.model, "chunk_pixels": chunk_pixels}


def fit_siren(steps: int, out: Path) -> Path:
    """Fits a SIREN on ``camera`` 256x256 for ``steps`` steps and checkpoints it into ``out/checkpoints``
    (with its config, the camera saved as ``out/camera.png``); returns the checkpoint folder."""
    from inr_utils.checkpoints import save_checkpoint
    from inr_utils.config import FitConfig
    from inr_utils.fitting import fit
    from inr_utils.images import save_image, skimage_image
    from model_components.inrs import model_config

    image = skimage_image("camera", 256)  # (256, 256, 1)
    save_image(out / "camera.png", image)
    config = FitConfig(model=model_config("siren", out_dim=image.shape[-1]), image=str(out / "camera.png"),
                       steps=steps, batch_size=None, lr=1e-4, lr_schedule="constant",
                       steps_per_call=math.gcd(100, steps))
    print(f"fitting SIREN on camera 256x256 ({steps} steps) ...", flush=True)
    result = fit(image, config, progress=False, eval_every=steps)
    ckpt_dir = out / "checkpoints"
    save_checkpoint(ckpt_dir, result.state, config.to_dict())
    return ckpt_dir


def render_in_subprocess(ckpt_dir: Path, size: int, chunk_pixels: int) -> dict[str, Any]:
    """Runs this script with ``--render-only`` in a fresh interpreter and returns its JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--render-only", str(ckpt_dir), "--size", str(size),
           "--chunk-pixels", str(chunk_pixels)]
    print(f"rendering {size}x{size} in a subprocess ...", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"render subprocess exited with {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return parse_last_json_line(proc.stdout, "render subprocess")


def main() -> int:
    args = parse_args()
    if args.render_only is not None:
        print(json.dumps(render_only(args.render_only, args.size, args.chunk_pixels)))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        if args.run is not None:
            if not args.run.exists():
                sys.exit(f"error: run folder '{args.run}' does not exist")
            ckpt_dir, source = checkpoint_dir(args.run), str(args.run)
        else:
            ckpt_dir, source = fit_siren(args.steps, Path(tmp)), f"SIREN on camera, {args.steps} steps"
        result = render_in_subprocess(ckpt_dir, args.size, args.chunk_pixels)

    passed = result["peak_rss_mb"] < TARGET_PEAK_RSS_MB
    print_table(["", "value"], [
        ["INR", f"{source} (model {result['model']}, step {result['step']})"],
        ["render size", f"{args.size}x{args.size}x{result['shape'][-1]}"],
        ["render s (compile included)", result["render_s"]],
        ["peak RSS before render MB", result["peak_rss_before_render_mb"]],
        ["peak RSS MB", result["peak_rss_mb"]],
        ["output array MB", result["output_mb"]],
    ], title=f"render {args.size}x{args.size} in a fresh process (chunk_pixels {args.chunk_pixels})")
    print(f"target: peak RSS < {TARGET_PEAK_RSS_MB:.0f} MB: {'PASS' if passed else 'FAIL'} "
          f"({result['peak_rss_mb']:.0f} MB)")
    write_json(args.json, {
        "benchmark": NAME,
        "source": source,
        "size": args.size,
        **result,
        "target": {"max_peak_rss_mb": TARGET_PEAK_RSS_MB, "pass": passed},
        "environment": environment(),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
