"""Many-signal utilities: datasets of many signals (``datasets``) and hypernetwork training/evaluation (to come).

Words: a *datapoint* is one signal (e.g. one CIFAR-10 image); a *hypernetwork* maps a datapoint to the
parameters of an INR (a plain pytree shaped like ``model_components`` INR params) that represents it.
"""
