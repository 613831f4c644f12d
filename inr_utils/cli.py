"""Command-line plumbing shared by every script in ``experiments/``: the flags that set :class:`FitConfig`
fields, the one config-from-flags helper, one-line errors and exit codes.

A script builds its parser from :class:`OneLineArgumentParser` plus :func:`add_model_flags` /
:func:`add_training_flags` (or a subset of their flags), turns the parsed flags into a config with
:func:`config_from_flags` and runs its ``main`` under :func:`run_cli`, which prints any :class:`InputError` as one
``error: ...`` line on stderr and exits with :data:`EXIT_BAD_INPUT`. Code that checks user input with library
validators raising ``ValueError`` runs under :func:`inr_utils.errors.user_input`, which turns those into
``InputError``; any other ``ValueError`` is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from inr_utils.config import FitConfig, resolve_config
from inr_utils.errors import InputError, user_input
from inr_utils.optim import LR_SCHEDULES
from inr_utils.training import TrainingInterrupted

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130

#: Flags that set ModelConfig fields or options (argparse dest names, as :func:`model_config` takes them).
MODEL_FLAGS = ("encoding", "layer", "num_frequencies", "fourier_features", "fourier_scale", "width", "depth",
               "activation", "omega0", "first_omega0", "output_activation", "dtype")
#: Flags that set FitConfig training fields (argparse dest names are the field names).
TRAIN_FLAGS = ("image", "max_size", "steps", "batch_size", "lr", "lr_schedule", "final_lr_fraction",
               "warmup_steps", "jitter", "sampler", "seed", "steps_per_call", "checkpoint_every")


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr (exit code 2), naming the fix: see --help."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(EXIT_BAD_INPUT)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    (file or sys.stderr).write(f"warning: {str(message).splitlines()[0] if str(message) else category.__name__}\n")


def run_cli(main: Callable[[], int]) -> None:
    """Runs ``main`` and exits with its return code. User-fixable problems (:class:`InputError`, which
    :func:`~inr_utils.errors.user_input` makes of validation errors) become one ``error: ...`` line on stderr and
    exit code 2, without a traceback; warnings are printed as one ``warning: ...`` line each."""
    warnings.showwarning = _one_line_warning
    try:
        sys.exit(main())
    except InputError as err:
        message = " ".join(str(err).split()) or type(err).__name__
        sys.stderr.write(f"error: {message}\n")
        sys.exit(EXIT_BAD_INPUT)


def add_run_folder_flags(group: Any, out_default: str, resume_help: str) -> None:
    """The run-folder flags of a training script: ``--out`` (default ``out_default``, e.g. ``runs/<time>-<model>``),
    ``--resume RUN_DIR`` (help ``resume_help``) and ``--no-progress``; :func:`check_run_flags` checks them."""
    group.add_argument("--out", help=f"output folder, must be new or empty (default: {out_default})")
    group.add_argument("--resume", metavar="RUN_DIR", help=resume_help)
    group.add_argument("--no-progress", action="store_true", help="hide the progress bar (default: shown)")


def check_run_flags(args: argparse.Namespace) -> None:
    """Refuses ``--resume RUN_DIR --out OTHER`` (a run continues in its own folder) with one line."""
    if args.resume and args.out and Path(args.out) != Path(args.resume):
        raise InputError("--resume continues in RUN_DIR itself; drop --out (or pass the same folder)")


def finish_training_command(metrics: Any, folder: Path | str | None) -> int:
    """The exit code of a training script given :func:`run_training_command`'s result: an ``int`` (stopped
    early) as it is; otherwise 0, after printing where the results are (stderr) and ``metrics`` as one JSON line
    (stdout), when there are any (a non-zero process of a multi-host run has none)."""
    if isinstance(metrics, int):
        return metrics
    if metrics:
        print(f"results in {folder}", file=sys.stderr)
        print(json.dumps(metrics))
    return 0


def run_training_command(train: Callable[[], Any], script: str, run_dir: Sequence[Path]) -> Any:
    """Runs ``train()`` (a training run that checkpoints) and turns an early stop into its message and exit code.

    Returns ``train()``'s result; or, when it stopped early, writes one message to stderr and returns the exit code
    as an ``int``: :data:`EXIT_DIVERGED` for a ``DivergenceError`` (the last good checkpoint kept),
    :data:`EXIT_INTERRUPTED` for Ctrl-C/SIGTERM (``TrainingInterrupted``; the message says how to resume).

    Args:
      train: the run, e.g. ``lambda: run_fit(...)``.
      script: the script's path as the user types it (``experiments/fit_image.py``), for the resume hint.
      run_dir: the run folder once announced (a list the run's ``announce`` callback appends to), else empty.
    """
    from inr_utils.training import DivergenceError, TrainingInterrupted

    try:
        return train()
    except DivergenceError as err:
        sys.stderr.write(f"error: {err}. The last good checkpoint (step {int(err.state.step)}) was kept.\n")
        return EXIT_DIVERGED
    except TrainingInterrupted as err:
        folder = run_dir[0] if run_dir else "RUN_DIR"
        sys.stderr.write(f"\ninterrupted at step {int(err.state.step)}; checkpoint saved. "
                         f"Continue with: python {script} --resume {folder}\n")
        return EXIT_INTERRUPTED


def interrupted(out: Path) -> int:
    """Reports a Ctrl-C of a multi-fit experiment (its tables hold the fits finished so far); returns the exit
    code of an interrupted run."""
    sys.stderr.write(f"\ninterrupted; the results of the finished fits are in {out}\n")
    return EXIT_INTERRUPTED


def announce(message: str) -> None:
    """Prints a status line to stderr (above any progress bar)."""
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


def progress_bar(total: int, description: str, disable: bool) -> Any:
    """A tqdm bar over the fits of an experiment (stderr)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="fit", dynamic_ncols=True, disable=disable, file=sys.stderr)


def run_cases(cases: Sequence[Any], out: Path, description: str, no_progress: bool, label: Callable[[Any], str],
              run_one: Callable[[Any], None], finish: Callable[[], str]) -> int:
    """The loop of a multi-fit experiment: ``run_one`` for each case under a progress bar, then ``finish``.

    ``run_one`` writes its results into ``out`` as it goes, so a Ctrl-C or SIGTERM
    (:class:`inr_utils.training.TrainingInterrupted`) leaves the finished cases there and returns
    :data:`EXIT_INTERRUPTED`. Otherwise ``finish`` draws the figures and returns the Markdown report, which is
    printed; returns 0.
    """
    bar = progress_bar(len(cases), description, no_progress)
    try:
        for case in cases:
            bar.set_postfix_str(label(case))
            run_one(case)
            bar.update()
    except TrainingInterrupted:
        bar.close()
        return interrupted(out)
    bar.close()
    report = finish()
    announce(f"results in {out}")
    print(report, end="")
    return 0


# --------------------------------------------------------------------------------------------- value types


def scalar(text: str) -> Any:
    """A ``KEY=VALUE`` value read the way a YAML/JSON config file would hold it: ``true``/``false`` (any case)
    -> bool, ``null``/``none`` -> None, whole numbers -> int, other numbers (``1e-4``, ``0.5``, ``inf``) ->
    float, anything else stays text. Whether the value fits the option is checked with the config."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def option_arg(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of ``--layer-option`` / ``--encoding-option``; VALUE read by :func:`scalar`."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.replace("-", "_"), scalar(value)


def sweep_arg(text: str) -> tuple[str, list[Any]]:
    """``NAME=v1,v2`` of ``--sweep``; each value read by :func:`scalar`."""
    name, sep, values = text.partition("=")
    if not sep or not name or not values:
        raise argparse.ArgumentTypeError(f"expected NAME=v1,v2,..., got {text!r}")
    return name.replace("-", "_"), [scalar(part) for part in values.split(",")]


def positive_int(text: str) -> int:
    """argparse type: a whole number > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def batch_size_arg(text: str) -> int | str:
    """``--batch-size``: a whole number of pixels, or ``full`` (kept as the string; the whole signal)."""
    if text == "full":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of pixels or 'full', got {text!r}") from None


def float_list(text: str) -> list[float]:
    """``1e-4,3e-4`` -> [0.0001, 0.0003]."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 1e-4,3e-4, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one number, got {text!r}")
    return values


# --------------------------------------------------------------------------------------------- flags


def add_run_flags(parser: argparse.ArgumentParser, experiment: str, steps: int, size: int = 256,
                  batch_size: int | None = FitConfig.batch_size) -> None:
    """The flags every multi-fit experiment has: --size, --steps, --batch-size, --seed, --out, --no-progress."""
    g = parser.add_argument_group("run")
    g.add_argument("--size", type=positive_int, default=size,
                   help=f"longer image side in pixels the INRs are trained at (default: {size})")
    g.add_argument("--steps", type=positive_int, default=steps, help=f"optimisation steps per fit (default: {steps})")
    g.add_argument("--batch-size", type=positive_int, default=batch_size,
                   help=f"random pixels per step (default: {batch_size})")
    g.add_argument("--seed", type=int, default=0, help="random seed of every fit (default: 0)")
    g.add_argument("--out", help=f"output folder, must be new or empty (default: runs/<time>-{experiment})")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar (default: shown)")


def add_model_flags(group: Any, names: Sequence[str] | None = None) -> None:
    """Adds ``--model`` and the model flags (all of :data:`MODEL_FLAGS` plus ``--layer-option`` /
    ``--encoding-option``, or only ``names``) to a parser or argument group. Every flag defaults to None:
    unset flags keep the preset's (or the ``--config`` file's) value."""
    from model_components.catalog import ACTIVATIONS, ENCODINGS, LAYERS
    from model_components.precision import DTYPES
    from model_components.presets import MODEL_PRESETS

    m = FitConfig().model
    flags: dict[str, dict[str, Any]] = {
        "model": dict(choices=sorted(MODEL_PRESETS), help=f"architecture preset (default: {m.model})"),
        "encoding": dict(choices=ENCODINGS.names(),
                         help=f"coordinate encoding (default: the preset's; {m.model}: {m.encoding})"),
        "layer": dict(choices=LAYERS.names(), help=f"hidden layer type (default: the preset's; {m.model}: "
                                                   f"{m.layer})"),
        "num_frequencies": dict(type=int, help="L of the NeRF encoding (default: 10)"),
        "fourier_features": dict(type=int, help="m of Gaussian Fourier features (default: "
                                                f"{m.encoding_options.get('num_features')})"),
        "fourier_scale": dict(type=float, help="sigma of Gaussian Fourier features, in cycles per image side as in "
                                               "Tancik et al. (default: "
                                               f"{m.encoding_options.get('scale')})"),
        "width": dict(type=int, help=f"hidden width (default: the preset's; {m.model}: {m.width})"),
        "depth": dict(type=int, help=f"hidden layers after the first (default: the preset's; {m.model}: "
                                     f"{m.depth})"),
        "activation": dict(choices=sorted(ACTIVATIONS), help="activation of dense layers (default: "
                                                             f"{m.layer_options.get('activation')})"),
        "omega0": dict(type=float, help="frequency factor omega0 of sine-type layers, all layers "
                                        "(default: 30)"),
        "first_omega0": dict(type=float, help="omega0 of the first layer only (default: --omega0)"),
        "layer_option": dict(type=option_arg, action="append", default=[], metavar="KEY=VALUE",
                             help="any option of the hidden layer type, repeatable, e.g. --layer-option "
                                  "learnable=true (default: the preset's)"),
        "encoding_option": dict(type=option_arg, action="append", default=[], metavar="KEY=VALUE",
                                help="any option of the encoding, repeatable, e.g. --encoding-option "
                                     "include_input=false (default: the preset's)"),
        "output_activation": dict(choices=sorted(ACTIVATIONS), help="output map (default: the preset's; "
                                                                    f"{m.model}: {m.output_activation})"),
        "dtype": dict(choices=["auto", *sorted(DTYPES)], help=f"matrix-product compute dtype (default: the "
                                                              f"preset's; {m.model}: {m.dtype})"),
    }
    _add(group, flags, names)


def add_training_flags(group: Any, names: Sequence[str] | None = None) -> None:
    """Adds the training flags (all of :data:`TRAIN_FLAGS`, or only ``names``) to a parser or argument group;
    every flag defaults to None (unset: the preset's, the ``--config`` file's or FitConfig's value)."""
    from inr_utils.samplers import batch_samplers

    d = FitConfig()
    flags: dict[str, dict[str, Any]] = {
        "image": dict(help="image to fit (PNG/JPEG, RGB, grayscale, RGBA, palette or 16-bit) (default: "
                           "scikit-image's astronaut, 256x256)"),
        "max_size": dict(type=int, help=f"downscale so the longer side is at most this (default: "
                                        f"{d.max_size})"),
        "steps": dict(type=int, help=f"optimisation steps (default: {d.steps})"),
        "batch_size": dict(type=batch_size_arg, help=f"random pixels per step, or 'full' for the whole "
                                                     f"image (default: {d.batch_size})"),
        "lr": dict(type=float, help=f"peak Adam learning rate (default: {d.lr}, or the --model preset's, "
                                    "e.g. siren: 1e-4)"),
        "lr_schedule": dict(choices=LR_SCHEDULES.names(), help=f"learning-rate schedule (default: {d.lr_schedule})"),
        "final_lr_fraction": dict(type=float, help="final lr / peak lr of decaying schedules (default: "
                                                   f"{d.final_lr_fraction})"),
        "warmup_steps": dict(type=int, help=f"linear warm-up steps (default: {d.warmup_steps})"),
        "jitter": dict(action="store_true", default=None, help="jitter coordinates within pixels "
                                                               "(default: off)"),
        "sampler": dict(choices=batch_samplers(), help="how a step's samples are drawn: random (uniform) or "
                                                       f"window (a contiguous stretch) (default: {d.sampler})"),
        "seed": dict(type=int, help=f"random seed; same seed, same result (default: {d.seed})"),
        "steps_per_call": dict(type=int, help="steps per compiled lax.scan call (default: "
                                              f"{d.steps_per_call})"),
        "checkpoint_every": dict(type=int, help="steps between checkpoints, 0 = only at the end (default: "
                                                f"{d.checkpoint_every})"),
    }
    _add(group, flags, names)


def _add(group: Any, flags: Mapping[str, Mapping[str, Any]], names: Sequence[str] | None) -> None:
    for name in flags if names is None else names:
        group.add_argument(f"--{name.replace('_', '-')}", **flags[name])


def config_from_flags(flags: argparse.Namespace | Mapping[str, Any], base: FitConfig | None = None) -> FitConfig:
    """The one place flags become a :class:`FitConfig`, for every script.

    Precedence: FitConfig defaults < ``model`` preset (its architecture and recommended training) < ``base``
    (or the file of ``config`` / the run folder of ``resume``, when those flags are present) < explicit flags.

    Args:
      flags: parsed flags (or a dict of them) named as :data:`MODEL_FLAGS`, :data:`TRAIN_FLAGS`, ``model``,
        ``layer_option``/``encoding_option`` (lists of ``(key, value)``), ``config`` and ``resume``; ``None``
        means not given, other names are ignored. ``batch_size="full"`` means the whole signal.
      base: the config to start from (default: per ``resume``/``config``, else FitConfig's defaults).

    Raises:
      InputError: a bad value, naming the field (``run_cli`` prints it as one line, exit 2).
    """
    with user_input():
        return _config_from_flags(dict(vars(flags) if isinstance(flags, argparse.Namespace) else flags), base)


def _config_from_flags(values: dict[str, Any], base: FitConfig | None) -> FitConfig:
    if base is None:
        if values.get("resume"):
            base = FitConfig.load(Path(values["resume"]) / "config.json")
        elif values.get("config"):
            base = FitConfig.load(values["config"])
    model_settings = {name: values[name] for name in MODEL_FLAGS if values.get(name) is not None}
    training = {name: values[name] for name in TRAIN_FLAGS if values.get(name) is not None}
    if training.get("batch_size") == "full":
        training["batch_size"] = None
    return resolve_config(base, values.get("model"), training=training, model_settings=model_settings,
                          layer_options=dict(values.get("layer_option") or []),
                          encoding_options=dict(values.get("encoding_option") or []))
