"""Hyperparameter sweeps: a search over a spec's values on Ray Tune (``graphnet sweep``).

A sweep file declares the search the way a spec declares a network::

    spec: fashion-mlp.yaml                    # relative to this file
    set: {train.epochs: 4}                    # fixed overrides, as --set
    search:                                   # spec paths, as --set
      train.optimizer.lr: {loguniform: [1.0e-4, 1.0e-1]}
      layers.dropout: {choice: [0.0, 0.2]}
    metric: val_error                         # of the weights each model file keeps; mode: min
    samples: 6
    scheduler: {type: asha, grace_period: 1, reduction_factor: 2}
    resources: {cpus: 1}
    output: runs/quick-sweep

The modules, top-down: ``models`` (the sweep file's pydantic models), ``load`` (loading with
located errors through the spec's own machinery, and checking every searched value against the
spec), ``trial`` (one trial: the training loop of ``graphnet run`` with the trial's values as
--set overrides), ``blas`` (BLAS threads per trial), ``state`` (the journal of the trials),
``results`` (model files, ranking, results.csv/.json, best.gnm), ``driver`` (the steps in
order) and ``ray``, the only module of graphnet that imports Ray, and only when a sweep runs.
"""

from __future__ import annotations

from .load import Plan, Sweep, check_sweep, load_sweep, looks_like_sweep, override_item, parse_sweep
from .models import Domain, SweepSpec

__all__ = [
    "Domain",
    "Plan",
    "Sweep",
    "SweepSpec",
    "check_sweep",
    "load_sweep",
    "looks_like_sweep",
    "override_item",
    "parse_sweep",
]
