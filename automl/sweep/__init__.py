"""Sweeps: Ray Tune trials of the plain trainer, proposed by Optuna, tracked in MLflow.

- :mod:`.settings`: what the spec's ``automl`` section and the flags ask for;
- :mod:`.searchers` / :mod:`.schedulers`: the Optuna sampler and the Ray scheduler of each algorithm;
- :mod:`.trial`: one trial (its spec, the trainer as a child process of :mod:`.child`, epochs to Tune);
- :mod:`.callback`: the driver's bookkeeping (:mod:`.records` trials.csv, :mod:`.tracking` MLflow);
- :mod:`.runner`: :func:`run_sweep`, from spec to the end of the trials (:mod:`.driver_claim`: one driver a
  folder); :mod:`.finish`: the winner kept, exported and reported.
"""
from .runner import SweepOutcome, run_sweep
from .settings import SweepSettings, settings_from

__all__ = ["SweepOutcome", "SweepSettings", "run_sweep", "settings_from"]
