"""Figures of audio and video fits: waveforms and spectrograms (original vs reconstruction), and frames with the
per-frame PSNR; saved atomically as PNG (:func:`inr_utils.plots.save_figure`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inr_utils.plots import plt, save_figure, show


def _spectrogram_db(samples: np.ndarray, sample_rate: int, window: int = 1024) -> tuple[np.ndarray, np.ndarray,
                                                                                         np.ndarray]:
    """Magnitude spectrogram in dB of a mono waveform ``(N,)``: Hann windows of ``window`` samples (shorter for
    short signals), hop ``window / 4``; returns ``(times (F,) s, frequencies (K,) Hz, dB (K, F))``, dB relative
    to the largest magnitude of the whole signal is the caller's choice (here absolute, 20 log10 |X|)."""
    n = samples.shape[0]
    window = int(min(window, max(16, 2 ** int(np.floor(np.log2(max(16, n // 4)))))))
    hop = max(1, window // 4)
    starts = np.arange(0, max(1, n - window + 1), hop)
    padded = np.pad(samples, (0, max(0, window - n)))
    frames = np.stack([padded[s:s + window] for s in starts]) * np.hanning(window)
    magnitude = np.abs(np.fft.rfft(frames, axis=-1)).T
    return ((starts + window / 2) / sample_rate, np.fft.rfftfreq(window, 1.0 / sample_rate),
            20.0 * np.log10(magnitude + 1e-6))


def audio_figure(path: str | Path, original: np.ndarray, reconstruction: np.ndarray, sample_rate: int,
                 title: str = "", zoom_seconds: float = 0.02) -> None:
    """Saves a 3x2 figure of an audio fit as PNG: the whole waveform (original, reconstruction overlaid), a
    ``zoom_seconds`` stretch from the middle, the error waveform, and the spectrograms (dB, same colour scale) of
    original and reconstruction.

    Args:
      path: output PNG.
      original, reconstruction: waveforms ``(N, C)`` or ``(N,)`` in [-1, 1] (the first channel is drawn).
      sample_rate: Hz, for the time and frequency axes.
      title: figure title.
    """
    x = np.asarray(original, np.float32).reshape(original.shape[0], -1)[:, 0]
    y = np.asarray(reconstruction, np.float32).reshape(reconstruction.shape[0], -1)[:, 0]
    t = np.arange(x.shape[0]) / sample_rate
    fig, axes = plt.subplots(3, 2, figsize=(13, 9.5))
    ax = axes[0, 0]
    ax.plot(t, x, color="0.3", linewidth=0.5, label="original")
    ax.plot(t, y, color="tab:red", linewidth=0.5, alpha=0.7, label="reconstruction")
    ax.set_xlabel("time (s)")
    ax.set_title("waveform", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    half = max(1, int(zoom_seconds * sample_rate) // 2)
    mid = x.shape[0] // 2
    sl = slice(max(0, mid - half), min(x.shape[0], mid + half))
    ax = axes[0, 1]
    ax.plot(1e3 * t[sl], x[sl], color="0.3", linewidth=1.0, label="original")
    ax.plot(1e3 * t[sl], y[sl], color="tab:red", linewidth=1.0, linestyle="--", label="reconstruction")
    ax.set_xlabel("time (ms)")
    ax.set_title(f"zoom: {1e3 * (sl.stop - sl.start) / sample_rate:.0f} ms from the middle", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    ax = axes[1, 0]
    ax.plot(t, y - x, color="tab:purple", linewidth=0.5)
    ax.set_xlabel("time (s)")
    ax.set_title("error (reconstruction - original)", fontsize=10)
    axes[1, 1].axis("off")
    spectra = [_spectrogram_db(s, sample_rate) for s in (x, y)]
    top = max(float(s[2].max()) for s in spectra)
    for ax, (times, freqs, db), name in zip(axes[2], spectra, ("original", "reconstruction"), strict=True):
        im = ax.pcolormesh(times, freqs / 1e3, db, shading="auto", cmap="magma", vmin=top - 80, vmax=top)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("frequency (kHz)")
        ax.set_title(f"spectrogram, {name} (dB)", fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def video_figure(path: str | Path, original: np.ndarray, reconstruction: np.ndarray, psnrs: np.ndarray,
                 title: str = "", count: int = 4) -> None:
    """Saves a figure of a video fit as PNG: ``count`` frames spread over the clip (original above,
    reconstruction below, each titled with its PSNR) and the per-frame PSNR curve.

    Args:
      path: output PNG.
      original, reconstruction: ``(T, H, W, C)`` in [0, 1].
      psnrs: ``(T,)`` per-frame PSNR in dB.
      title: figure title.
    """
    t = original.shape[0]
    picks = sorted({int(round(i)) for i in np.linspace(0, t - 1, min(count, t))})
    cols = len(picks)
    fig = plt.figure(figsize=(3.2 * max(cols, 2), 8.5))
    grid = fig.add_gridspec(3, cols)
    for c, k in enumerate(picks):
        show(fig.add_subplot(grid[0, c]), original[k], f"original, frame {k}")
        show(fig.add_subplot(grid[1, c]), reconstruction[k], f"reconstruction, {psnrs[k]:.2f} dB")
    ax = fig.add_subplot(grid[2, :])
    ax.plot(np.arange(t), psnrs, "o-", color="tab:red", markersize=3)
    ax.set_xlabel("frame")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"per-frame PSNR (mean {float(np.mean(psnrs)):.2f} dB)", fontsize=10)
    ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
