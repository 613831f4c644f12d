"""Signals of three kinds for one fit: images, audio and video, loaded from a recorded description
(:class:`SignalSpec`, saved as ``signal.json`` in a run folder so the same signal can be loaded again to resume or
crop a run) and written back after the fit in their own formats (PNG / WAV + figure / MP4 or GIF + per-frame PSNR).

Every kind becomes the library's float32 ``(*shape, C)`` signal in [0, 1]: images ``(H, W, C)``, audio ``(N, C)``
(the waveform ``x`` in [-1, 1] as ``(x + 1) / 2``, :mod:`inr_utils.audio`), video ``(T, H, W, C)``; the fit
itself is :func:`inr_utils.fit_runs.run_fit` with ``signal=``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inr_utils.audio import audio_psnr, audio_to_signal, load_audio, save_audio, signal_to_audio, snr
from inr_utils.errors import InputError, user_input
from inr_utils.files import write_text
from inr_utils.images import default_image, load_image, resize
from inr_utils.signal_plots import audio_figure, video_figure
from inr_utils.video import builtin_clip, find_div2k, frame_psnr, load_video, save_video

__all__ = ["MODES", "MODE_PRESETS", "SIGNAL_KINDS", "LoadedSignal", "ModelPlan", "SignalSpec", "audio_first_omega0",
           "default_grid", "fit_shape", "load_signal", "mlp_width_for", "mode_of", "model_shape",
           "plan_model", "read_spec", "write_signal_outputs", "write_spec"]

SIGNAL_KINDS = ("image", "audio", "video")
SPEC_FILE = "signal.json"


@dataclass(frozen=True)
class SignalSpec:
    """What to fit, as plain data (saved as ``signal.json``).

    Attributes:
      kind: ``image``, ``audio`` or ``video``.
      input: file or folder path; ``None`` picks the built-in signal: for images the first shared DIV2K photo
        (``../shared/data/div2k``) at 1/``downscale`` (default 1/4) or, without it, scikit-image's astronaut at
        256x256; for audio there is none (``input`` is required); for video the pan-and-zoom clip of
        :func:`inr_utils.video.builtin_clip`.
      downscale: divide image/frame sides by this factor (bicubic) after loading; ``None``: 4 for the built-in
        DIV2K photo, 1 otherwise.
      max_size: then shrink (bicubic) so the longer side is at most this many pixels (images, frames).
      offset, duration: audio stretch in seconds (from ``offset``, ``duration`` long; default all of it).
      max_frames, frame_step: video: keep every ``frame_step``-th frame, at most ``max_frames`` of them.
      clip_shape: ``(T, H, W)`` of the built-in clip.
    """

    kind: str
    input: str | None = None
    downscale: float | None = None
    max_size: int | None = None
    offset: float = 0.0
    duration: float | None = None
    max_frames: int | None = None
    frame_step: int = 1
    clip_shape: tuple[int, int, int] = (25, 64, 96)

    def validate(self) -> SignalSpec:
        """Raises :class:`InputError` for a bad kind or limit; returns self."""
        if self.kind not in SIGNAL_KINDS:
            raise InputError(f"unknown signal kind {self.kind!r}; choose one of: {', '.join(SIGNAL_KINDS)}")
        if self.kind == "audio" and self.input is None:
            raise InputError("--signal audio needs --input PATH, a WAV file (e.g. ../shared/data/audio/gt_bach.wav)")
        if self.downscale is not None and not self.downscale >= 1:
            raise InputError(f"--downscale must be a factor >= 1, got {self.downscale}")
        for name in ("max_size", "max_frames", "duration"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InputError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if self.frame_step <= 0 or self.offset < 0 or min(self.clip_shape) <= 0:
            raise InputError(f"--frame-step and --clip-shape must be positive and --offset >= 0, got "
                             f"{self.frame_step}, {self.clip_shape} and {self.offset}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "clip_shape": list(self.clip_shape)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SignalSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown signal field(s) {unknown}; valid fields: {', '.join(sorted(known))}")
        values = dict(values)
        if "clip_shape" in values:
            values["clip_shape"] = tuple(int(n) for n in values["clip_shape"])
        return cls(**values).validate()


@dataclass(frozen=True)
class LoadedSignal:
    """A signal ready to fit.

    Attributes:
      spec: how it was loaded.
      values: float32 ``(*shape, C)`` in [0, 1].
      label: a short name (file stem, ``div2k-0159``, ``builtin-clip``, ...).
      rate: samples per second of audio (Hz) or frames per second of video; ``None`` for images.
    """

    spec: SignalSpec
    values: np.ndarray
    label: str
    rate: float | None = None


def _scale_image(image: np.ndarray, factor: float) -> np.ndarray:
    if factor == 1:
        return image
    h, w = image.shape[:2]
    return np.clip(resize(image, max(1, round(h / factor)), max(1, round(w / factor))), 0.0, 1.0)


def _cap(image: np.ndarray, max_size: int | None) -> np.ndarray:
    h, w = image.shape[:2]
    if max_size is None or max(h, w) <= max_size:
        return image
    scale = max_size / max(h, w)
    return np.clip(resize(image, max(1, round(h * scale)), max(1, round(w * scale))), 0.0, 1.0)


def load_signal(spec: SignalSpec) -> LoadedSignal:
    """Loads the signal ``spec`` describes (see :class:`SignalSpec`).

    Raises:
      InputError: a missing or unreadable file, bad limits (one line naming the problem and the fix).
    """
    spec = spec.validate()
    if spec.kind == "image":
        if spec.input is None:
            photos = find_div2k()
            if photos:
                image, label, factor = load_image(photos[0]), f"div2k-{photos[0].stem}", spec.downscale or 4
            else:
                image, label, factor = default_image(256), "astronaut", spec.downscale or 1
        else:
            image, label, factor = load_image(spec.input), Path(spec.input).stem, spec.downscale or 1
        return LoadedSignal(spec, _cap(_scale_image(image, factor), spec.max_size).astype(np.float32), label)
    if spec.kind == "audio":
        audio = load_audio(spec.input, spec.offset, spec.duration)
        return LoadedSignal(spec, audio_to_signal(audio.samples), Path(spec.input).stem, float(audio.sample_rate))
    if spec.input is None:
        video, label = builtin_clip(*spec.clip_shape), "builtin-clip"
    else:
        video, label = load_video(spec.input, spec.max_frames, spec.frame_step), Path(spec.input).stem
    frames = video.frames
    if (spec.downscale or 1) != 1 or spec.max_size is not None:
        frames = np.stack([_cap(_scale_image(f, spec.downscale or 1), spec.max_size) for f in frames])
    return LoadedSignal(spec, frames.astype(np.float32), label, float(video.fps))


def write_spec(out: Path, spec: SignalSpec) -> None:
    """Saves ``spec`` as ``out/signal.json`` (atomically)."""
    write_text(Path(out) / SPEC_FILE, json.dumps(spec.to_dict(), indent=2) + "\n")


def read_spec(run: str | Path) -> SignalSpec:
    """The :class:`SignalSpec` of a run folder written by ``experiments/fit_signal.py``.

    Raises:
      InputError: the folder has no readable ``signal.json``.
    """
    path = Path(run) / SPEC_FILE
    if not path.is_file():
        raise InputError(f"'{run}' has no {SPEC_FILE}; pass a run folder written by experiments/fit_signal.py")
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"'{path}' is not valid JSON ({err}); fix or regenerate it") from None
    if not isinstance(values, dict):
        raise InputError(f"'{path}' must hold a JSON mapping of signal fields")
    try:
        return SignalSpec.from_dict(values)
    except TypeError as err:
        raise InputError(f"'{path}' is not a valid signal description ({err})") from None


def write_signal_outputs(out: str | Path, signal: LoadedSignal, reconstruction: np.ndarray, title: str = "",
                         video_format: str = "mp4", prefix: str = "reconstruction") -> dict[str, Any]:
    """Writes a fitted signal's own outputs next to the run's files and returns the measures to add to its
    metrics.

    * image: nothing more (``run_fit`` wrote the PNGs and the summary); returns ``{}``.
    * audio: ``<prefix>.wav`` (32-bit float, the original sample rate) and ``audio.png`` (waveforms, error,
      spectrograms); returns ``snr_db`` and ``psnr_audio_db`` (:func:`inr_utils.audio.snr`,
      :func:`inr_utils.audio.audio_psnr` of the clipped waveform), ``sample_rate`` and ``duration_s``.
    * video: ``<prefix>.mp4`` (or ``.gif``), ``frame_psnr.json`` (per-frame PSNR, dB) and ``video.png`` (frames
      and the PSNR curve); returns ``frame_psnr_mean``, ``frame_psnr_min``, ``fps`` and ``frames``.

    Args:
      out: the run folder.
      signal: the fitted signal.
      reconstruction: the INR on the signal's grid, ``signal.values``' shape, in [0, 1] units.
      title: figure title.
      video_format: ``mp4`` or ``gif``.
      prefix: file name stem of the decoded signal.
    """
    out = Path(out)
    recon = np.clip(np.asarray(reconstruction, np.float32), 0.0, 1.0)
    if recon.shape != signal.values.shape:
        raise ValueError(f"reconstruction of shape {recon.shape} for a signal of shape {signal.values.shape}")
    kind = signal.spec.kind
    if kind == "audio":
        original, decoded = signal_to_audio(signal.values), signal_to_audio(recon)
        rate = int(signal.rate)
        save_audio(out / f"{prefix}.wav", decoded, rate)
        measures = {"snr_db": round(snr(decoded, original), 3),
                    "psnr_audio_db": round(audio_psnr(decoded, original), 3),
                    "sample_rate": rate, "duration_s": round(original.shape[0] / rate, 4)}
        audio_figure(out / "audio.png", original, decoded, rate, title or (
            f"{signal.label}: SNR {measures['snr_db']:.2f} dB, PSNR {measures['psnr_audio_db']:.2f} dB"))
        return measures
    if kind == "video":
        if video_format not in ("mp4", "gif"):
            raise InputError(f"unknown video format {video_format!r}; choose mp4 or gif")
        psnrs = frame_psnr(recon, signal.values)
        save_video(out / f"{prefix}.{video_format}", recon, signal.rate)
        finite = [round(float(p), 3) if math.isfinite(p) else None for p in psnrs]
        write_text(out / "frame_psnr.json",
                   json.dumps({"frame_psnr_db": finite, "fps": signal.rate}, indent=1) + "\n")
        measures = {"frame_psnr_mean": round(float(np.mean(psnrs)), 3),
                    "frame_psnr_min": round(float(np.min(psnrs)), 3),
                    "fps": round(float(signal.rate), 3), "frames": int(recon.shape[0])}
        video_figure(out / "video.png", signal.values, recon, psnrs,
                     title or f"{signal.label}: mean frame PSNR {measures['frame_psnr_mean']:.2f} dB")
        return measures
    return {}


def mlp_width_for(params: int, in_dim: int, channels: int, depth: int = 3) -> int:
    """The largest hidden width ``w`` (at least 1) of an MLP INR with ``1 + depth`` hidden layers whose parameter
    count ``(in_dim + 1) w + depth (w^2 + w) + (w + 1) channels`` is at most ``params`` (e.g. 256 for 200k
    parameters, a 2-D input, 3 channels and depth 3: SIREN's 1+3 x 256, 198,915 parameters)."""
    if params <= 0:
        raise InputError(f"--params must be positive, got {params}")

    def count(w: int) -> int:
        return (in_dim + 1) * w + depth * (w * w + w) + (w + 1) * channels

    a, b, c = depth, in_dim + 1 + depth + channels, channels - params
    w = max(1, int((-b + math.sqrt(b * b - 4 * a * c)) / (2 * a))) if depth else max(1, -c // b)
    while w > 1 and count(w) > params:
        w -= 1
    while count(w + 1) <= params:
        w += 1
    return w


def audio_first_omega0(samples: int) -> float:
    """omega0 of a SIREN's first layer for ``samples`` audio samples on [-1, 1]: ``samples / 10``, kept within
    [30, 3000]. A line densely sampled needs a first layer that reaches high frequencies; SIREN's audio fit
    (Sitzmann et al. 2020, Sec. 4.1) uses 3000 for the whole 308,207-sample Bach excerpt, the upper bound here."""
    # 0.1 s of the Bach excerpt (4,410 samples from 2 s), a 20k-parameter SIREN, 300 steps of quarter windows:
    # first omega0 44 -> 33.3 dB, 150 -> 40.0 dB, 440 -> 43.2 dB, 1500 -> 38.2 dB. A 2,048-sample two-tone
    # clip (220 + 330 Hz at 8 kHz), 5k parameters, 200 steps: 30 -> 14.1 dB, 100 -> 23.9 dB, 300 -> 28.2 dB.
    return float(min(3000.0, max(30.0, round(samples / 10.0))))


#: ``--mode`` of ``experiments/fit_signal.py`` -> what it builds.
MODES = {
    "lg": "a Local-Global SIREN (preset lg_siren; grid and widths from --params by automatic partitioning)",
    "lc": "a SIREN per partition, no global branch (preset lc_siren; sized the same way)",
    "mlp": "a plain SIREN (preset siren, 1+3 hidden layers of the largest width within --params)",
}
#: Model preset of each mode.
MODE_PRESETS = {"lg": "lg_siren", "lc": "lc_siren", "mlp": "siren"}
#: Default partition grid of the Local-Global modes per signal kind, in the signal's axis order (the issue's and the
#: paper's examples; at most the signal's size along each axis). Images: partitions of 32x32 pixels instead.
DEFAULT_GRIDS = {"audio": (32,), "video": (5, 8, 8)}
DEFAULT_IMAGE_PARTITION = 32


def default_grid(kind: str, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The default partition grid of audio and video (:data:`DEFAULT_GRIDS`, capped by the signal's size along
    each axis); ``None`` for images, whose default is partitions of :data:`DEFAULT_IMAGE_PARTITION` pixels."""
    if kind not in DEFAULT_GRIDS:
        return None
    return tuple(min(g, n) for g, n in zip(DEFAULT_GRIDS[kind], shape, strict=True))


@dataclass(frozen=True)
class ModelPlan:
    """The model ``--mode`` builds for a signal.

    Attributes:
      settings: flag names of :func:`inr_utils.cli.config_from_flags` (``model`` preset, ``width``,
        ``first_omega0``, ...) and Local-Global options (``partitions``, ``global_width``, ``combine``); explicit
        flags win over them.
      shape: the signal's sample axes to fit (trimmed to a multiple of the partition grid).
      description: one line saying what was chosen (printed by the script).
    """

    settings: dict[str, Any]
    shape: tuple[int, ...]
    description: str


def plan_model(mode: str, signal: LoadedSignal, params: int, depth: int | None = None,
               partition_size: tuple[int, ...] | None = None, partitions: tuple[int, ...] | None = None,
               global_share: float = 0.1, combine: str = "concat_and_fc") -> ModelPlan:
    """Chooses the model of ``mode`` for ``signal`` at about ``params`` parameters.

    ``mlp``: SIREN's preset with the width of :func:`mlp_width_for`. ``lg`` / ``lc``: the preset ``lg_siren`` /
    ``lc_siren`` with the partition grid and local/global widths of
    :func:`inr_utils.croppable.auto_partition` (partitions of ``partition_size`` samples per axis, or exactly the
    grid ``partitions``; by default :func:`default_grid` for audio and video, partitions of 32x32 pixels for
    images; ``global_share`` of the parameters global); the signal is then trimmed to a multiple of the grid. Audio gets
    :func:`audio_first_omega0` in every mode.

    Raises:
      InputError: an unknown mode, a grid or size of the wrong length, a budget too small for the grid.
    """
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; choose one of: {', '.join(sorted(MODES))}")
    shape, channels = tuple(signal.values.shape[:-1]), int(signal.values.shape[-1])
    depth = 3 if depth is None else depth
    settings: dict[str, Any] = {"model": MODE_PRESETS[mode]}
    if signal.spec.kind == "audio":
        settings["first_omega0"] = audio_first_omega0(shape[0])
    if mode == "mlp":
        settings["width"] = mlp_width_for(params, len(shape), channels, depth)
        return ModelPlan(settings, shape, f"SIREN 1+{depth} x {settings['width']}")
    from inr_utils.croppable import auto_partition

    for name, value in (("--partitions", partitions), ("--partition-size", partition_size)):
        if value is not None and (len(value) != len(shape) or min(value) <= 0):
            raise InputError(f"{name} needs one positive count per sample axis of the {signal.spec.kind} "
                             f"({len(shape)}: shape {'x'.join(map(str, shape))}), got {' '.join(map(str, value))}")
    if partitions is None and partition_size is None:
        partitions = default_grid(signal.spec.kind, shape)
        partition_size = None if partitions else tuple(min(DEFAULT_IMAGE_PARTITION, n) for n in shape)
    fitted = shape
    if partitions is not None:
        if any(g > n for g, n in zip(partitions, shape, strict=True)):
            raise InputError(f"--partitions {' '.join(map(str, partitions))} has more partitions than samples on an "
                             f"axis of the {'x'.join(map(str, shape))} signal; use fewer partitions")
        fitted = tuple(n - n % g for n, g in zip(shape, partitions, strict=True))  # then the sizes give this grid
        partition_size = tuple(n // g for n, g in zip(fitted, partitions, strict=True))
    with user_input():
        plan = auto_partition(fitted, partition_size, channels, budget=params, global_share=global_share, depth=depth,
                              mode=mode, combine=combine)
    settings.update(plan.overrides())
    settings["depth"] = depth
    if mode == "lg":
        settings["combine"] = combine
    return ModelPlan(settings, tuple(plan.shape), plan.describe())


def fit_shape(signal: LoadedSignal, shape: tuple[int, ...]) -> LoadedSignal:
    """``signal`` cropped (from the end of each axis) to the sample shape ``shape`` (a partition grid's
    multiple, :class:`ModelPlan`)."""
    if tuple(signal.values.shape[:-1]) == tuple(shape):
        return signal
    values = signal.values[tuple(slice(0, n) for n in shape)]
    return dataclasses.replace(signal, values=np.ascontiguousarray(values))


def model_shape(model_config: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The sample shape a model fits of a signal of sample ``shape``: trimmed to a multiple of its partition grid
    when it is partitioned (a Local-Global INR in mode ``lg``/``lc``), else ``shape``."""
    describe = getattr(model_config.options, "partition_layout", None)
    if describe is None or describe(dataclasses.replace(model_config, in_dim=len(shape))) is None:
        return tuple(shape)
    grid = model_config.options.grid(len(shape))
    return tuple(n - n % g for n, g in zip(shape, grid, strict=True))


def mode_of(model_config: Any) -> str:
    """``lg``, ``lc`` or ``mlp``: the mode a model config is (``mlp`` for every non-partitioned architecture)."""
    return str(getattr(model_config.options, "mode", "mlp"))
