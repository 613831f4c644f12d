"""Many-signal utilities: datasets of many signals and hypernetwork training/evaluation (to come).

- ``datasets``: image sets (CIFAR-10 pickles, folders of images, scikit-image's LFW faces) as uint8 stacks with
  labels, a deterministic train/validation split, and step-indexed fixed-shape batches (multi-host aware).
- ``training``: training settings, the pure full-image train step (coordinate jitter), ``lax.scan`` chunks and the
  loop (the engine's ``train_many``); ``presets``: the ``cpu`` and ``gpu_paper`` training presets.
- ``distributed``: data parallelism over a mesh of every device of every process (``jax.distributed``).
- ``training_run``: a training run and its folder (``experiments/train_hypernetwork.py``).

Words: a *datapoint* is one signal (e.g. one CIFAR-10 image); a *hypernetwork* maps a datapoint to the
parameters of an INR (a plain pytree shaped like ``model_components`` INR params) that represents it.
"""
