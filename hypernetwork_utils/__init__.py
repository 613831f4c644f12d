"""Many-signal utilities: datasets of many signals and hypernetwork training and evaluation.

- ``datasets``: image sets (folders of images, scikit-image's LFW faces, ``--data`` specs) as uint8 stacks with
  labels; ``cifar10``: CIFAR-10's official pickles; ``batches``: a deterministic train/validation split and
  step-indexed fixed-shape batches (multi-host aware).
- ``training``: training settings, the pure full-image train step (coordinate jitter), ``lax.scan`` chunks and the
  loop (the engine's ``train_many``); ``presets``: the ``cpu`` and ``gpu_paper`` training presets.
- ``distributed``: data parallelism over a mesh of every device of every process (``jax.distributed``).
- ``training_run``: a training run and its folder (``experiments/train_hypernetwork.py``).
- ``evaluation``: encode, render and score hypernetworks; ``runs``: a run folder read back and evaluated
  (``experiments/evaluate_hypernetwork.py``); ``figures``: its figures.
- ``meta_learning``: meta-learned INR initialisation (MAML / functa shift modulations, Meta-SGD inner rates, the
  outer step, adaptation curves); ``meta_run``: a meta-learning run and its folder (``experiments/meta_learn.py``).

Words: a *datapoint* is one signal (e.g. one CIFAR-10 image); a *hypernetwork* maps a datapoint to the
parameters of an INR (a plain pytree shaped like ``model_components`` INR params) that represents it.
"""
