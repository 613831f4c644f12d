"""What INRs are used for, each application a module: a library function that takes images (or a signal), fits
INRs with the one engine (:func:`inr_utils.engine.train_many` via :func:`inr_utils.fitting.fit` /
:func:`inr_utils.sweeps.fit_many`, or a custom pure train step run by it) and returns arrays and scores; the
``experiments/`` scripts only wire flags, figures and tables around them.

Modules are listed in ``docs/applications/README.md``.
"""
