"""Single-signal INR utilities: data, grids, samplers, losses, metrics, training, rendering, plots, checkpoints.

Modules:
  errors       -- ``InputError``, the user-fixable problem type (CLIs print it and exit 2).
  images       -- load any PNG/JPEG to float ``(H, W, C)`` in [0, 1]; test images by name; resizing; atomic PNG
                  saving.
  grids        -- the sample-centre coordinate convention for signals of any dimension: ``grid``, ``make_grid``.
  samplers     -- ``PixelData``, ``signal_to_data`` and on-device samplers (random batch or window, full signal).
  losses       -- ``mse_loss``, ``l1_loss`` (registry ``LOSSES``).
  metrics      -- MSE, PSNR, SSIM.
  training     -- one model: ``TrainState``, ``make_train_step``, ``make_train_chunk`` (``lax.scan``), ``train``.
  engine       -- the training loop of every fit: N models along a model axis (one fit is N = 1), ``ChunkInfo``.
  optim        -- Adam with the peak lr and schedule in its state; learning-rate schedules (``LR_SCHEDULES``).
  initialization -- step-0 states of N models by one cached compiled program.
  evaluation   -- full-signal PSNR of N models on the device; checks of a finished run (collapse).
  callbacks    -- history, progress bar, periodic checkpoints (and the evaluator).
  devices      -- the model mesh; ``use_cpu_cores``.
  programs     -- the cache of compiled programs; compiler options.
  model_axis   -- what can share a model axis: compatible configs, stacked signals.
  rendering    -- chunked rendering at any resolution / over any region, of any dimension (``render_grid``).
  checkpoints  -- Orbax save/restore of state + config; a damaged checkpoint is skipped (older one) or named.
  plots        -- the summary figure; image panels and grids; atomic figure saving.
  config       -- ``FitConfig``; ``resolve_config``, the one merge of defaults, presets, files and flags.
  conditioning -- a model conditioned on its signal (INCODE) gets the signal's thumbnail in its constants.
  fitting      -- ``fit``: one fit in memory.
  fit_runs     -- ``run_fit``: one fit into a run folder (checkpoints, resume, renders, metrics, figure).
  cli          -- what every script in ``experiments/`` shares: flags, ``config_from_flags``, one-line errors.
  tables       -- result tables as CSV / Markdown.
  files        -- atomic file writes (text, PNGs, figures): a temporary file renamed into place.
  reports      -- run folders of multi-fit experiments (results tables, ``configs.json``); ``run_sweep`` (a
                  sweep's scores, table, figure and run folder).
  studies      -- experiments of many scored fits (``fit_and_score``, presets x images).
  partitions   -- partition-major training of partitioned INRs (Local-Global): ``PartitionLayout`` (interleaved
                  data, the balanced ``"partition"`` sampler, the grouped apply), ``render_partitioned``.
  croppable    -- ``auto_partition`` (grid and widths from a budget), ``crop``, ``extend``, ``fit_extension``.
  audio        -- WAV/FLAC/OGG to float ``(N, C)`` in [-1, 1] (soundfile) and back; the [0, 1] signal; SNR, PSNR.
  video        -- MP4/GIF/frame folders to float ``(T, H, W, C)`` (imageio + ffmpeg) and back; the built-in
                  pan-and-zoom clip; per-frame PSNR.
  signals      -- images, audio and video for ``experiments/fit_signal.py``: ``SignalSpec`` (``signal.json``),
                  ``load_signal``, the model of a mode (``plan_model``), the outputs of each kind.
  signal_plots -- waveform/spectrogram and video-frame figures.
  signal_crops -- ``crop_run``: a Local-Global run cropped, its kept region decoded and scored (``crop.py``).
  sweeps       -- ``fit_many``: N fits of equal shapes (seeds, learning rates, layer hyperparameters, images)
                  trained by one vmapped program, sharded over devices; ``sweep_grid``.

Words: a *signal* is the data an INR represents (an image, an audio clip, a video or volume: ``(*shape, C)``);
*coords* are its domain points in [-1, 1]^d (``(x, y)`` for images, see ``grids``); *values* are the signal at
the coords, in [0, 1]; a *target* is the values a loss compares against.
"""

from inr_utils.config import FitConfig
from inr_utils.errors import InputError
from inr_utils.fit_runs import run_fit
from inr_utils.fitting import FitResult, fit
from inr_utils.grids import Region, grid, make_grid
from inr_utils.images import default_image, load_image, save_image
from inr_utils.metrics import psnr, ssim
from inr_utils.rendering import render, render_grid
from inr_utils.samplers import signal_to_data

__all__ = ["FitConfig", "InputError", "FitResult", "fit", "run_fit", "Region", "grid", "make_grid", "default_image",
           "load_image", "save_image", "psnr", "ssim", "render", "render_grid", "signal_to_data"]
