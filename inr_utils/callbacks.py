"""Callbacks run on the host between compiled training chunks (see :func:`inr_utils.training.train`).

Each is a callable ``callback(info: ChunkInfo) -> None``; an evaluator adds scalars to ``info.extra`` for the
callbacks after it (so put the evaluator first).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from inr_utils.checkpoints import save_checkpoint
from inr_utils.metrics import psnr_from_mse
from inr_utils.samplers import PixelData
from inr_utils.training import ChunkInfo, merge_variables


class FullSignalEvaluator:
    """Every ``every`` steps, computes the PSNR of the INR over the whole training signal on the device and
    stores it as ``info.extra["full_psnr"]``.

    Args:
      apply_fn: ``model.apply``.
      data: the training signal.
      every: evaluation interval in steps (evaluations happen at chunk ends that cross a multiple of it,
        and always at the last step).
      chunk_pixels: pixels per forward pass (bounds memory).
    """

    def __init__(self, apply_fn: Callable, data: PixelData, every: int = 200, chunk_pixels: int = 1 << 16):
        self.every = every
        n = data.coords.shape[0]
        pad = (-n) % min(chunk_pixels, n)
        chunks = (n + pad) // min(chunk_pixels, n)
        coords = jnp.pad(data.coords, ((0, pad), (0, 0))).reshape(chunks, -1, data.coords.shape[-1])
        values = jnp.pad(data.values, ((0, pad), (0, 0))).reshape(chunks, -1, data.values.shape[-1])
        weights = (jnp.arange(n + pad) < n).astype(jnp.float32).reshape(chunks, -1, 1)

        @jax.jit
        def full_mse(params, constants):
            def chunk_sse(_, xs):
                c, v, w = xs
                pred = apply_fn(merge_variables(params, constants), c)
                return None, jnp.sum(w * jnp.square(pred - v))

            _, sse = jax.lax.scan(chunk_sse, None, (coords, values, weights))
            return jnp.sum(sse) / (n * data.values.shape[-1])

        self._full_mse = full_mse
        self._last_eval = None

    def __call__(self, info: ChunkInfo) -> None:
        crossed = self._last_eval is None or info.step // self.every > self._last_eval // self.every
        if crossed or info.step >= info.total_steps:
            mse = float(self._full_mse(info.state.params, info.state.constants))
            info.extra["full_psnr"] = float(psnr_from_mse(mse))
            self._last_eval = info.step


class ProgressBar:
    """A tqdm bar over steps showing loss, batch PSNR and (when evaluated) full-signal PSNR."""

    def __init__(self, total_steps: int, initial_step: int = 0, disable: bool = False):
        self.bar = tqdm(total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True, disable=disable,
                        desc="fitting")
        self._full_psnr: float | None = None

    def __call__(self, info: ChunkInfo) -> None:
        self._full_psnr = info.extra.get("full_psnr", self._full_psnr)
        postfix = {"loss": f"{info.metrics['loss'][-1]:.2e}", "psnr": f"{info.metrics['psnr'][-1]:.2f}"}
        if self._full_psnr is not None:
            postfix["full_psnr"] = f"{self._full_psnr:.2f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(info.step - self.bar.n)

    def close(self) -> None:
        self.bar.close()


HISTORY_FIELDS = ("step", "loss", "batch_psnr", "full_psnr", "elapsed_s")


class History:
    """Collects per-step metrics (loss, batch PSNR) and evaluation PSNRs; writes them as CSV.

    Attributes:
      rows: one dict per step with :data:`HISTORY_FIELDS` (``full_psnr`` is NaN where not evaluated).
    """

    def __init__(self, rows: list[dict[str, float]] | None = None):
        self.rows: list[dict[str, float]] = list(rows or [])

    def __call__(self, info: ChunkInfo) -> None:
        losses, psnrs = info.metrics["loss"], info.metrics["psnr"]
        first = info.step - len(losses) + 1
        for i, (loss, psnr) in enumerate(zip(losses, psnrs, strict=True)):
            self.rows.append({"step": first + i, "loss": float(loss), "batch_psnr": float(psnr),
                              "full_psnr": float("nan"), "elapsed_s": float("nan")})
        self.rows[-1]["full_psnr"] = info.extra.get("full_psnr", float("nan"))
        self.rows[-1]["elapsed_s"] = info.elapsed_s

    def column(self, name: str) -> np.ndarray:
        """One field over all rows as a float array ``(num_rows,)``."""
        return np.asarray([row[name] for row in self.rows], dtype=np.float64)

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: ("" if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()})
        return buffer.getvalue()

    @classmethod
    def from_csv(cls, path: str | Path, up_to_step: int | None = None) -> History:
        """Reads a CSV written by :meth:`to_csv`, keeping rows with ``step <= up_to_step``."""
        rows = []
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                parsed = {k: float(v) if v != "" else float("nan") for k, v in row.items()}
                parsed["step"] = int(parsed["step"])
                if up_to_step is None or parsed["step"] <= up_to_step:
                    rows.append(parsed)
        return cls(rows)


class PeriodicCheckpoint:
    """Saves a checkpoint (state + config) whenever training crosses a multiple of ``every`` steps."""

    def __init__(self, directory: str | Path, config: dict[str, Any], every: int):
        self.directory, self.config, self.every = Path(directory), config, every
        self.last_saved: int | None = None

    def __call__(self, info: ChunkInfo) -> None:
        if self.every <= 0:
            return
        previous = info.step - len(info.metrics["loss"])
        if info.step // self.every > previous // self.every:
            self.last_saved = save_checkpoint(self.directory, info.state, self.config)
