"""Training input from an :class:`hypernetwork_utils.datasets.ImageSet`: a deterministic train/validation split
and :class:`Batches`, the batch of any global step as a pure function of the step (fixed shapes, so a jitted step
compiles once; resuming at step k gives the batches an uninterrupted run sees; each process of a multi-host run
takes its rows of the global batch).
"""

from __future__ import annotations

import numpy as np

from hypernetwork_utils.datasets import ImageSet, to_float
from inr_utils.errors import InputError

__all__ = ["Batches", "train_val_split"]


def train_val_split(images: ImageSet, val_count: int | None = None, val_fraction: float = 0.1, seed: int = 0
                    ) -> tuple[ImageSet, ImageSet]:
    """Splits a set into disjoint training and validation sets covering it, the same for the same seed.

    The validation images are the first ``val_count`` of ``numpy.random.default_rng(seed).permutation(N)``;
    both parts keep the original order (indices ascending), so the split depends on N and the seed only.

    Args:
      images: the set (N images).
      val_count: number of validation images, 1 to N - 1; default ``round(val_fraction * N)`` (at least 1).
      val_fraction: used when ``val_count`` is None; in (0, 1).
      seed: non-negative seed of the permutation.

    Returns:
      ``(train, val)`` with ``N - val_count`` and ``val_count`` images.

    Raises:
      InputError: the counts leave either part empty.
    """
    n = len(images)
    if val_count is None:
        if not 0.0 < val_fraction < 1.0:
            raise InputError(f"validation fraction must lie in (0, 1), got {val_fraction}")
        val_count = max(1, round(val_fraction * n))
    if not 1 <= val_count < n:
        raise InputError(f"cannot hold out {val_count} of {n} images for validation; pass a validation count from 1 "
                         f"to {n - 1}" + (" (or more images)" if n < 2 else ""))
    order = np.random.default_rng(seed).permutation(n)
    return images.subset(np.sort(order[val_count:])), images.subset(np.sort(order[:val_count]))


class Batches:
    """Shuffled fixed-size batches as a pure function of the global step, for a jitted training step.

    Epoch ``e = step // steps_per_epoch`` visits the images in the order
    ``numpy.random.default_rng([seed, e]).permutation(N)``; step ``s`` takes positions
    ``[(s % steps_per_epoch) * B, ... + B)`` of it. The last ``N % B`` images of each permutation are dropped so
    that every batch has the same shape (one compilation); a different permutation each epoch drops different
    ones. Nothing depends on earlier calls: resuming at step ``k`` gives the batches an uninterrupted run sees.

    Several processes (multi-host data parallelism) each build a ``Batches`` over the same images with the same
    seed and their own ``process_index``: process ``p`` of ``P`` gets rows ``[p * B / P, (p + 1) * B / P)`` of the
    global batch, so the processes' rows, concatenated in process order, are the global batch (what
    ``jax.make_array_from_process_local_data`` assembles).

    Args:
      images: an :class:`ImageSet` (uint8, returned as float32 ``v / 255``), or an array ``(N, H, W, C)`` (uint8
        likewise; float returned as float32).
      batch_size: B, the global batch size (over all processes), 1 to N, divisible by ``process_count``.
      seed: non-negative shuffling seed.
      process_index: this process, 0 to ``process_count - 1`` (``jax.process_index()``).
      process_count: number of processes P (``jax.process_count()``).

    Attributes:
      steps_per_epoch: ``N // B``.
      local_batch_size: ``B / P``, the rows this process gets.
    """

    def __init__(self, images: ImageSet | np.ndarray, batch_size: int, seed: int = 0, process_index: int = 0,
                 process_count: int = 1):
        array = images.images if isinstance(images, ImageSet) else np.asarray(images)
        if array.ndim != 4:
            raise ValueError(f"images must be (N, H, W, C), got shape {array.shape}")
        n = array.shape[0]
        if batch_size < 1 or n < batch_size:
            raise InputError(f"batch size {batch_size} does not fit {n} training images; use a batch size from 1 to "
                             f"{n}" + (" or more images" if n < batch_size else ""))
        if seed < 0:
            raise InputError(f"the shuffling seed must be non-negative, got {seed}")
        if process_count < 1 or not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} is not in [0, process_count={process_count})")
        if batch_size % process_count:
            raise InputError(f"batch size {batch_size} is not divisible by the {process_count} processes; use a "
                             f"multiple of {process_count}")
        self.images = array
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.process_index = int(process_index)
        self.process_count = int(process_count)
        self.local_batch_size = self.batch_size // self.process_count
        self.steps_per_epoch = n // self.batch_size
        self._cached: tuple[int, np.ndarray] | None = None

    @property
    def num_images(self) -> int:
        """N."""
        return int(self.images.shape[0])

    def epoch(self, step: int) -> int:
        """The epoch of global step ``step`` (steps count from 0)."""
        return int(step) // self.steps_per_epoch

    def permutation(self, epoch: int) -> np.ndarray:
        """int64 ``(N,)``: the order in which epoch ``epoch`` visits the images."""
        if self._cached is None or self._cached[0] != epoch:
            self._cached = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.num_images))
        return self._cached[1]

    def global_indices(self, step: int) -> np.ndarray:
        """int64 ``(B,)``: image indices of the whole batch of global step ``step`` (over all processes)."""
        if step < 0:
            raise ValueError(f"step must be non-negative, got {step}")
        start = (int(step) % self.steps_per_epoch) * self.batch_size
        return self.permutation(self.epoch(step))[start:start + self.batch_size]

    def indices(self, step: int) -> np.ndarray:
        """int64 ``(B / P,)``: image indices of this process's rows of the batch of step ``step`` (with one
        process: the whole batch)."""
        start = self.process_index * self.local_batch_size
        return self.global_indices(step)[start:start + self.local_batch_size]

    def batch(self, step: int) -> np.ndarray:
        """float32 ``(B / P, H, W, C)`` in [0, 1]: this process's images of step ``step``."""
        return to_float(self.images[self.indices(step)])

    def chunk(self, step: int, num_steps: int) -> np.ndarray:
        """float32 ``(num_steps, B / P, H, W, C)``: the batches of steps ``step .. step + num_steps - 1`` stacked
        (the input of a ``lax.scan`` over that many steps); ``chunk(s, k)[i] == batch(s + i)``."""
        if num_steps < 1:
            raise ValueError(f"num_steps must be positive, got {num_steps}")
        indices = np.stack([self.indices(step + i) for i in range(num_steps)])
        return to_float(self.images[indices])
