"""Audio input/output and quality measures: any WAV/FLAC/OGG file -> float32 ``(N, C)`` waveform in [-1, 1], read
and written with ``soundfile`` (libsndfile); the [0, 1] signal an INR fits; SNR and PSNR in dB.

An INR of audio has 1-D coordinates: sample ``n`` of ``N`` sits at ``t = -1 + (2 n + 1) / N`` (the grid convention
of :mod:`inr_utils.grids`), and its C outputs are the channels. The library fits signals in [0, 1], so a waveform
``x`` in [-1, 1] is fitted as ``(x + 1) / 2`` (:func:`audio_to_signal`) and mapped back by :func:`signal_to_audio`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inr_utils.errors import InputError
from inr_utils.files import atomic_write

__all__ = ["Audio", "audio_psnr", "audio_to_signal", "load_audio", "save_audio", "signal_to_audio", "snr"]


@dataclass(frozen=True)
class Audio:
    """A waveform and its sample rate.

    Attributes:
      samples: float32 ``(N, C)`` in [-1, 1] (N frames, C channels; mono is C = 1).
      sample_rate: frames per second (Hz).
    """

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples.shape[0] / self.sample_rate


def load_audio(path: str | os.PathLike, offset: float = 0.0, duration: float | None = None) -> Audio:
    """Reads an audio file (WAV of any sample format, FLAC, OGG, ... whatever libsndfile reads) into float32
    ``(N, C)`` samples in [-1, 1] (integer formats scaled by their full range, float data clipped).

    Args:
      path: the file.
      offset: seconds to skip at the start (>= 0).
      duration: seconds to keep from ``offset`` (default: to the end).

    Raises:
      InputError: the file is missing, a folder, not audio (corrupt, truncated header) or has no samples in the
        requested stretch; the message names the problem and the fix.
    """
    import soundfile

    path = Path(path)
    if not path.exists():
        raise InputError(f"audio file '{path}' does not exist; check the path of --input")
    if path.is_dir():
        raise InputError(f"'{path}' is a folder, not an audio file; pass a WAV file as --input")
    if offset < 0 or (duration is not None and duration <= 0):
        raise InputError(f"the audio stretch must start at >= 0 s and last > 0 s, got offset {offset} s and "
                         f"duration {duration} s")
    try:
        with soundfile.SoundFile(path) as f:
            rate = int(f.samplerate)
            start = int(round(offset * rate))
            frames = -1 if duration is None else max(1, int(round(duration * rate)))
            if start >= f.frames:
                raise InputError(f"'{path}' is {f.frames / rate:.3f} s long; an offset of {offset} s leaves nothing "
                                 "to fit; choose a smaller offset")
            f.seek(start)
            samples = f.read(frames, dtype="float32", always_2d=True)
    except InputError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise InputError(f"cannot read audio file '{path}' ({reason}); pass a valid WAV file") from None
    if samples.shape[0] == 0 or samples.shape[1] == 0:
        raise InputError(f"audio file '{path}' has no samples; pass a non-empty WAV file")
    if not np.all(np.isfinite(samples)):
        raise InputError(f"audio file '{path}' holds NaN or infinite samples; pass a valid WAV file")
    return Audio(np.clip(samples, -1.0, 1.0), rate)


def save_audio(path: str | os.PathLike, samples: np.ndarray, sample_rate: int) -> None:
    """Writes ``(N, C)`` (or ``(N,)``) samples in [-1, 1] (clipped) as a 32-bit float WAV, atomically.

    Raises:
      InputError: the folder is missing or not writable.
    """
    import soundfile

    data = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)
    try:
        atomic_write(path, lambda tmp: soundfile.write(tmp, data, int(sample_rate), subtype="FLOAT", format="WAV"))
    except OSError as err:
        raise InputError(f"cannot write '{path}' ({err.strerror or err}); choose a writable --out") from None


def audio_to_signal(samples: np.ndarray) -> np.ndarray:
    """Waveform in [-1, 1] -> the [0, 1] signal an INR fits: ``(x + 1) / 2``, float32, same shape."""
    return ((np.asarray(samples, np.float32) + 1.0) / 2.0).astype(np.float32)


def signal_to_audio(signal: np.ndarray) -> np.ndarray:
    """Inverse of :func:`audio_to_signal`: ``2 s - 1``, clipped to [-1, 1], float32."""
    return np.clip(2.0 * np.asarray(signal, np.float32) - 1.0, -1.0, 1.0).astype(np.float32)


def snr(pred: np.ndarray, target: np.ndarray) -> float:
    """Signal-to-noise ratio in dB of a reconstruction ``pred`` of the waveform ``target`` (same shape, [-1, 1]):

        SNR = 10 log10( sum_n target_n^2 / sum_n (target_n - pred_n)^2 )

    (inf for an exact reconstruction; -inf for a silent target).
    """
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"snr needs arrays of one shape, got {pred.shape} and {target.shape}")
    noise = float(np.sum(np.square(target - pred)))
    power = float(np.sum(np.square(target)))
    with np.errstate(divide="ignore"):
        return float(10.0 * np.log10(power / noise)) if noise > 0 else float("inf")


def audio_psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of waveforms in [-1, 1] (same shape), with the peak-to-peak range 2:

        PSNR = 10 log10( 2^2 / mean_n (target_n - pred_n)^2 )

    which equals the [0, 1] PSNR of :func:`inr_utils.metrics.psnr` on the fitted signals ``(x + 1) / 2``
    (inf for an exact reconstruction).
    """
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"audio_psnr needs arrays of one shape, got {pred.shape} and {target.shape}")
    mse = float(np.mean(np.square(target - pred)))
    return float(10.0 * np.log10(4.0 / mse)) if mse > 0 else float("inf")
