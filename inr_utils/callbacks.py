"""Callbacks run on the host between compiled training chunks (see :func:`inr_utils.engine.train_many`).

Each is a callable ``callback(info: ChunkInfo) -> None`` working on any number of models (``info.metrics``
``(chunk_steps, N)``; a single-model view's ``(chunk_steps,)`` works too). An evaluator adds values to
``info.extra`` for the callbacks after it, so put it first: :class:`FullSignalEvaluator` (in
:mod:`inr_utils.evaluation`), :class:`History`, :class:`ProgressBar`, :class:`PeriodicCheckpoint`,
:class:`TensorBoardLog`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from inr_utils.checkpoints import save_checkpoint
from inr_utils.engine import ChunkInfo

__all__ = ["History", "HISTORY_FIELDS", "ProgressBar", "PeriodicCheckpoint", "TensorBoardLog"]

HISTORY_FIELDS = ("step", "loss", "batch_psnr", "full_psnr", "elapsed_s")


def _as_models(x: Any) -> np.ndarray:
    """Per-step metrics ``(steps,)`` or ``(steps, N)`` -> float64 ``(steps, N)``."""
    x = np.asarray(x, np.float64)
    return x[:, None] if x.ndim == 1 else x


class History:
    """Per-step metrics (loss, batch PSNR) of every model, its evaluations and the chunks' wall times.

    Args:
      rows: a single model's history as rows of :data:`HISTORY_FIELDS` (``full_psnr`` NaN where not
        evaluated, ``elapsed_s`` NaN except at chunk ends), e.g. read back by :meth:`from_csv`.

    Attributes (numpy, filled as training runs):
      steps: ``(S,)`` global step of each recorded step (1-based).
      loss, batch_psnr: ``(S, N)``.
      eval_steps: ``(E,)`` steps at which ``full_psnr`` ``(E, N)`` was evaluated.
      chunk_steps, chunk_elapsed_s: ``(K,)`` step and elapsed seconds at the end of each chunk.
    """

    def __init__(self, rows: Sequence[dict[str, float]] | None = None):
        self._steps: list[np.ndarray] = []
        self._loss: list[np.ndarray] = []
        self._psnr: list[np.ndarray] = []
        self._evals: list[tuple[int, np.ndarray]] = []
        self._chunks: list[tuple[int, float]] = []
        rows = list(rows or [])
        if rows:
            self._steps.append(np.asarray([int(r["step"]) for r in rows], np.int64))
            self._loss.append(_as_models([r["loss"] for r in rows]))
            self._psnr.append(_as_models([r["batch_psnr"] for r in rows]))
            for r in rows:
                if not np.isnan(r.get("full_psnr", np.nan)):
                    self._evals.append((int(r["step"]), np.asarray([r["full_psnr"]], np.float64)))
                if not np.isnan(r.get("elapsed_s", np.nan)):
                    self._chunks.append((int(r["step"]), float(r["elapsed_s"])))

    def __call__(self, info: ChunkInfo) -> None:
        loss = _as_models(info.metrics["loss"])
        self._steps.append(np.arange(info.step - loss.shape[0] + 1, info.step + 1))
        self._loss.append(loss)
        self._psnr.append(_as_models(info.metrics["psnr"]))
        if "full_psnr" in info.extra:
            self._evals.append((info.step, np.atleast_1d(np.asarray(info.extra["full_psnr"], np.float64))))
        self._chunks.append((info.step, info.elapsed_s))

    @property
    def steps(self) -> np.ndarray:
        return np.concatenate(self._steps) if self._steps else np.zeros(0, np.int64)

    @property
    def loss(self) -> np.ndarray:
        return np.concatenate(self._loss) if self._loss else np.zeros((0, 0))

    @property
    def batch_psnr(self) -> np.ndarray:
        return np.concatenate(self._psnr) if self._psnr else np.zeros((0, 0))

    @property
    def eval_steps(self) -> np.ndarray:
        return np.asarray([s for s, _ in self._evals], np.int64)

    @property
    def full_psnr(self) -> np.ndarray:
        return np.stack([p for _, p in self._evals]) if self._evals else np.zeros((0, 0))

    @property
    def chunk_steps(self) -> np.ndarray:
        return np.asarray([s for s, _ in self._chunks], np.int64)

    @property
    def chunk_elapsed_s(self) -> np.ndarray:
        return np.asarray([t for _, t in self._chunks], np.float64)

    def select(self, keep: Sequence[int]) -> History:
        """A copy holding only the models ``keep`` (e.g. to drop padding models)."""
        out = History()
        keep = np.asarray(keep)
        out._steps = list(self._steps)
        out._loss = [x[:, keep] for x in self._loss]
        out._psnr = [x[:, keep] for x in self._psnr]
        out._evals = [(s, p[keep]) for s, p in self._evals]
        out._chunks = list(self._chunks)
        return out

    def model(self, i: int) -> History:
        """Model i's history (one model)."""
        return self.select([i])

    def rows_of(self, i: int = 0) -> list[dict[str, float]]:
        """Model i's history as rows of :data:`HISTORY_FIELDS`."""
        if not self._steps:
            return []
        rows = [{"step": int(s), "loss": float(l_), "batch_psnr": float(p), "full_psnr": float("nan"),
                 "elapsed_s": float("nan")}
                for s, l_, p in zip(self.steps, self.loss[:, i], self.batch_psnr[:, i], strict=True)]
        index = {row["step"]: row for row in rows}
        for step, psnrs in self._evals:
            if step in index:
                index[step]["full_psnr"] = float(psnrs[i])
        for step, elapsed in self._chunks:
            if step in index:
                index[step]["elapsed_s"] = elapsed
        return rows

    @property
    def rows(self) -> list[dict[str, float]]:
        """Model 0's rows (the rows of a single fit)."""
        return self.rows_of(0)

    def column(self, name: str, model: int = 0) -> np.ndarray:
        """One field of :data:`HISTORY_FIELDS` for one model as a float array ``(num_rows,)``."""
        return np.asarray([row[name] for row in self.rows_of(model)], dtype=np.float64)

    def to_csv(self, model: int = 0) -> str:
        """Model ``model``'s rows as CSV text (empty cells for NaN)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows_of(model):
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


class ProgressBar:
    """A tqdm bar over steps. One model: its loss, batch PSNR and (when evaluated) full-signal PSNR; several:
    the mean and best batch PSNR over models (and the mean full-signal PSNR)."""

    def __init__(self, total_steps: int, initial_step: int = 0, disable: bool = False, num_models: int = 1,
                 desc: str | None = None):
        desc = desc or ("fitting" if num_models == 1 else f"fitting {num_models} models")
        self.bar = tqdm(total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True, disable=disable,
                        desc=desc)
        self.num_models = num_models
        self._full: Any = None

    def __call__(self, info: ChunkInfo) -> None:
        self._full = info.extra.get("full_psnr", self._full)
        loss, psnr = _as_models(info.metrics["loss"])[-1], _as_models(info.metrics["psnr"])[-1]
        if self.num_models == 1:
            postfix = {"loss": f"{loss[0]:.2e}", "psnr": f"{psnr[0]:.2f}"}
            if self._full is not None:
                postfix["full_psnr"] = f"{np.ravel(self._full)[0]:.2f}"
        else:
            postfix = {"psnr mean": f"{np.nanmean(psnr):.2f}", "best": f"{np.nanmax(psnr):.2f}"}
            if self._full is not None:
                postfix["full mean"] = f"{np.nanmean(self._full):.2f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(info.step - self.bar.n)

    def close(self) -> None:
        self.bar.close()


class PeriodicCheckpoint:
    """Saves a checkpoint (one model's state + config) whenever training crosses a multiple of ``every`` steps.
    A single-model callback: give it a :meth:`ChunkInfo.model` view (:func:`inr_utils.engine.single_model`)."""

    def __init__(self, directory: str | Path, config: dict[str, Any], every: int):
        self.directory, self.config, self.every = Path(directory), config, every
        self.last_saved: int | None = None

    def __call__(self, info: ChunkInfo) -> None:
        if self.every <= 0:
            return
        previous = info.step - len(info.metrics["loss"])
        if info.step // self.every > previous // self.every:
            self.last_saved = save_checkpoint(self.directory, info.state, self.config)


class TensorBoardLog:
    """Writes a training to TensorBoard event files (``tensorboardX``; view with ``tensorboard --logdir RUN``).

    Per step: ``train/loss`` and ``train/psnr`` (the batch's). At every evaluation (a chunk after which an
    evaluator put ``full_psnr`` into ``info.extra``): ``val/psnr`` and, given ``image_of``, the image
    ``image_of(info.state)`` (float ``(H, W, C)`` in [0, 1], C = 1 or 3) as ``reconstruction``.
    A single-model callback: give it one model's view (:func:`inr_utils.engine.single_model`).
    """

    def __init__(self, writer: Any, image_of: Callable[[Any], np.ndarray] | None = None):
        self.writer, self.image_of = writer, image_of

    @classmethod
    def create(cls, folder: str | Path, image_of: Callable[[Any], np.ndarray] | None = None) -> TensorBoardLog:
        """A log writing into ``folder`` (created; a resumed run adds a new event file beside the old ones)."""
        from tensorboardX import SummaryWriter  # imported here: only trainings that log need it

        return cls(SummaryWriter(str(folder)), image_of)

    def __call__(self, info: ChunkInfo) -> None:
        loss, batch_psnr = np.ravel(info.metrics["loss"]), np.ravel(info.metrics["psnr"])
        first = info.step - len(loss) + 1
        for i, (value, p) in enumerate(zip(loss, batch_psnr, strict=True)):
            self.writer.add_scalar("train/loss", float(value), first + i)
            self.writer.add_scalar("train/psnr", float(p), first + i)
        if "full_psnr" in info.extra:
            self.writer.add_scalar("val/psnr", float(np.ravel(info.extra["full_psnr"])[0]), info.step)
            if self.image_of is not None:
                image = np.clip(np.asarray(self.image_of(info.state), np.float32), 0.0, 1.0)
                self.writer.add_image("reconstruction", image, info.step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
