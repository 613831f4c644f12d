"""Many-signal utilities: datasets of many signals and hypernetwork training/evaluation (to come).

- ``datasets``: image sets (CIFAR-10 pickles, folders of images, scikit-image's LFW faces) as uint8 stacks with
  labels, a deterministic train/validation split, and step-indexed fixed-shape batches (multi-host aware).

Words: a *datapoint* is one signal (e.g. one CIFAR-10 image); a *hypernetwork* maps a datapoint to the
parameters of an INR (a plain pytree shaped like ``model_components`` INR params) that represents it.
"""
