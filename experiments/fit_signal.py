#!/usr/bin/env python
"""Fit an INR to an image, a stretch of audio or a video, and write the reconstruction (PNG / WAV / MP4), figures,
metrics, history, config and a checkpoint (which experiments/crop.py reads) into a run folder.

    python experiments/fit_signal.py --signal image                        # DIV2K photo at 1/4 (or astronaut)
    python experiments/fit_signal.py --signal image --input my.jpg --mode mlp --steps 2000
    python experiments/fit_signal.py --signal audio --input ../shared/data/audio/gt_bach.wav --duration 2
    python experiments/fit_signal.py --signal video                        # built-in pan-and-zoom clip
    python experiments/fit_signal.py --signal video --input clip.mp4 --max-frames 30 --max-size 128
    python experiments/fit_signal.py --resume runs/x --steps 3000          # continue a run

--mode picks the architecture at a total parameter budget (--params): lg is a Local-Global SIREN (Ashkenazi &
Treister 2024) whose partition grid and widths are chosen automatically (--partition-size or --partitions,
--global-share), lc a SIREN per partition, mlp a plain SIREN; a partitioned signal is trimmed to a multiple of
its grid. Each step trains on --sample-fraction of the signal: for lg/lc the same number of samples from every
partition; for mlp random samples of images and video and one contiguous window of audio (--sampler).
experiments/crop.py crops a lg/lc run without retraining.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np

from inr_utils.cli import (
    MODEL_FLAGS,
    OneLineArgumentParser,
    add_model_flags,
    add_run_folder_flags,
    add_training_flags,
    batch_size_arg,
    check_run_flags,
    config_from_flags,
    finish_training_command,
    run_cli,
    run_training_command,
)
from inr_utils.config import FitConfig, resolve_config
from inr_utils.errors import InputError
from inr_utils.files import write_text
from inr_utils.fit_runs import run_fit
from inr_utils.samplers import batch_samplers
from inr_utils.signals import (
    MODES,
    SIGNAL_KINDS,
    SignalSpec,
    fit_shape,
    load_signal,
    mode_of,
    model_shape,
    plan_model,
    read_spec,
    write_signal_outputs,
    write_spec,
)
from model_components.local_global import COMBINES
from model_components.precision import DTYPES

#: Per signal kind: the default fraction of its samples trained on per step.
SAMPLE_FRACTION = {"image": 0.25, "audio": 0.25, "video": 0.1}
#: Per signal kind: the default peak learning rate of every mode (the Local-Global reference code's: 5e-4 for
#: images, SIREN and Local-Global alike; 1e-4 for audio and video).
LEARNING_RATE = {"image": 5e-4, "audio": 1e-4, "video": 1e-4}
DEFAULT_STEPS = 1000


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("signal")
    g.add_argument("--signal", choices=SIGNAL_KINDS, default="image", help="kind of signal (default: image)")
    g.add_argument("--input", help="file (PNG/JPEG; WAV; MP4/GIF) or folder of frames (default: image: the first "
                   "DIV2K photo of ../shared/data/div2k at 1/4, else scikit-image's astronaut; video: a pan and zoom "
                   "across that photo; audio: required)")
    g.add_argument("--downscale", type=float, help="divide image/frame sides by this factor (default: 4 for the "
                   "built-in DIV2K photo, else 1)")
    g.add_argument("--max-size", dest="signal_max_size", type=int, metavar="N",
                   help="then shrink so the longer image/frame side is at most this (default: no limit)")
    g.add_argument("--offset", type=float, default=0.0, help="audio: seconds skipped at the start (default: 0)")
    g.add_argument("--duration", type=float, help="audio: seconds fitted from --offset (default: to the end)")
    g.add_argument("--max-frames", type=int, help="video: at most this many frames (default: all)")
    g.add_argument("--frame-step", type=int, default=1, help="video: keep every n-th frame (default: 1)")
    g.add_argument("--clip-shape", type=int, nargs=3, metavar=("T", "H", "W"), default=[25, 64, 96],
                   help="shape of the built-in video clip (default: 25 64 96, a multiple of the 5x8x8 partition grid)")
    g.add_argument("--video-format", choices=["mp4", "gif"], default="mp4",
                   help="file format of the reconstructed video (default: mp4)")
    g = p.add_argument_group("model")
    g.add_argument("--mode", choices=sorted(MODES), default="lg",
                   help="architecture: " + "; ".join(f"{k}: {v}" for k, v in sorted(MODES.items()))
                   + " (default: lg)")
    g.add_argument("--params", type=int, default=200_000,
                   help="total parameter budget the model is sized to (default: 200000, a 3x256 SIREN)")
    g.add_argument("--partition-size", type=int, nargs="+", metavar="N",
                   help="lg/lc: samples per partition along each sample axis (default: image 32 32; audio and "
                   "video: see --partitions)")
    g.add_argument("--partitions", type=int, nargs="+", metavar="G",
                   help="lg/lc: the partition grid itself, one count per sample axis (default: audio 32, video "
                   "5 8 8, at most the signal's size; images: from --partition-size)")
    g.add_argument("--global-share", type=float, default=0.1,
                   help="lg: fraction of the parameters in the global branch (default: 0.1)")
    g.add_argument("--combine", choices=COMBINES, default="concat_and_fc",
                   help="lg: how global features join the local ones (default: concat_and_fc, as the reference)")
    g.add_argument("--width", type=int, help="hidden width (lg/lc: per partition) (default: sized by --mode and "
                   "--params)")
    g.add_argument("--depth", type=int, help="hidden layers after the first (default: 3)")
    add_model_flags(g, ["omega0"])
    g.add_argument("--first-omega0", type=float, help="omega0 of the first layer (default: audio: samples / 10 "
                   "within [30, 3000]; else --omega0)")
    g.add_argument("--dtype", choices=["auto", *sorted(DTYPES)],
                   help="matrix-product compute dtype (default: float32, the SIREN presets')")
    add_model_flags(g, ["layer_option"])
    g = p.add_argument_group("training")
    g.add_argument("--sample-fraction", type=float,
                   help="fraction of the signal's samples per step (default: image "
                   f"{SAMPLE_FRACTION['image']}, audio {SAMPLE_FRACTION['audio']}, video {SAMPLE_FRACTION['video']});"
                   " --batch-size overrides it")
    g.add_argument("--steps", type=int, help=f"optimisation steps (default: {DEFAULT_STEPS})")
    g.add_argument("--batch-size", type=batch_size_arg, help="samples per step, or 'full' for the whole signal "
                   "(default: from --sample-fraction)")
    g.add_argument("--sampler", choices=batch_samplers(), help="mlp: how a step's samples are drawn, random "
                   "(uniform) or window (a contiguous stretch) (default: window for audio, else random; lg/lc: "
                   "the same count from every partition)")
    g.add_argument("--lr", type=float, help="peak Adam learning rate (default: image 5e-4, audio and video 1e-4, "
                   "as the Local-Global reference code)")
    add_training_flags(g, ["lr_schedule", "final_lr_fraction", "warmup_steps", "seed", "steps_per_call",
                           "checkpoint_every"])
    g.add_argument("--eval-every", type=int, default=200,
                   help="steps between full-signal PSNR evaluations (default: 200)")
    g = p.add_argument_group("run")
    add_run_folder_flags(g, "runs/<time>-<model>",
                         "continue the run in RUN_DIR (same signal) from its newest intact checkpoint")
    return p


def main() -> int:
    args = build_parser().parse_args()
    check_run_flags(args)
    if args.eval_every <= 0:
        raise InputError(f"--eval-every must be positive, got {args.eval_every}")
    if args.sample_fraction is not None and not 0 < args.sample_fraction <= 1:
        raise InputError(f"--sample-fraction must be in (0, 1], got {args.sample_fraction}")
    if args.resume:
        spec = read_spec(args.resume)
    else:
        # the input's absolute path, so --resume and crop.py find it from any working directory
        spec = SignalSpec(args.signal, args.input and str(Path(args.input).absolute()), args.downscale,
                          args.signal_max_size, args.offset, args.duration, args.max_frames, args.frame_step,
                          tuple(args.clip_shape))
    signal = load_signal(spec)
    values = dict(vars(args))
    options: dict = {}
    notes: list[str] = []  # printed once every input has been checked
    if args.resume:  # a resumed run keeps its model and training settings, changed only by explicit flags
        saved = FitConfig.load(Path(args.resume) / "config.json")
        signal = fit_shape(signal, model_shape(saved.model, signal.values.shape[:-1]))
    else:
        if args.params <= 0 or not 0 <= args.global_share < 1:
            raise InputError(f"--params must be positive and --global-share in [0, 1), got {args.params} and "
                             f"{args.global_share}")
        plan = plan_model(args.mode, signal, args.params, args.depth,
                          tuple(args.partition_size) if args.partition_size else None,
                          tuple(args.partitions) if args.partitions else None, args.global_share, args.combine)
        notes.append(f"{args.mode}: {plan.description}")
        signal = fit_shape(signal, plan.shape)
        values["model"] = plan.settings["model"]
        flags = {k: v for k, v in plan.settings.items() if k in MODEL_FLAGS}  # explicit flags win over these
        values.update({k: v for k, v in flags.items() if values.get(k) is None})
        options = {k: v for k, v in plan.settings.items() if k not in MODEL_FLAGS and k != "model"}  # Local-Global
        samples = math.prod(signal.values.shape[:-1])
        if values["batch_size"] is None:
            fraction = args.sample_fraction or SAMPLE_FRACTION[spec.kind]
            batch = max(1, math.ceil(fraction * samples))
            values["batch_size"] = "full" if batch >= samples else batch
        if values["sampler"] is None and spec.kind == "audio" and args.mode == "mlp":  # lg/lc: per partition
            values["sampler"] = "window"
        if values["steps"] is None:
            values["steps"] = DEFAULT_STEPS
        if values["lr"] is None:
            values["lr"] = LEARNING_RATE[spec.kind]
    config = config_from_flags(values)
    if options:
        config = resolve_config(config, model_settings=options)
    run_dir: list[Path] = []

    def announce(folder: Path) -> None:  # called once every input has been checked
        run_dir.append(folder)
        write_spec(folder, spec)
        for note in notes:
            print(note, file=sys.stderr)
        shape = "x".join(str(n) for n in signal.values.shape)
        model = dataclasses.replace(config.model, in_dim=signal.values.ndim - 1, out_dim=signal.values.shape[-1])
        print(f"{spec.kind} {signal.label} ({shape}), model {model.model}: {json.dumps(dataclasses.asdict(model))}",
              file=sys.stderr)
        print(f"writing to {folder}", file=sys.stderr, flush=True)

    metrics = run_training_command(
        lambda: run_fit(config, args.resume or args.out, resume=bool(args.resume), progress=not args.no_progress,
                        eval_every=args.eval_every, announce=announce, signal=signal.values),
        "experiments/fit_signal.py", run_dir)
    if isinstance(metrics, int):  # stopped early: the exit code
        return metrics
    out = run_dir[0]
    if spec.kind != "image":
        reconstruction = np.load(out / "reconstruction.npy")
        metrics.update(write_signal_outputs(out, signal, reconstruction, video_format=args.video_format))
    metrics.update(signal=spec.kind, label=signal.label, shape=list(signal.values.shape), mode=mode_of(config.model))
    write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return finish_training_command(metrics, out)


if __name__ == "__main__":
    run_cli(main)
