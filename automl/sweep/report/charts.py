"""The sweep's charts, drawn by Optuna's matplotlib evaluators on the rebuilt study (Agg backend, PNG files).

Each chart is a :class:`Chart`: its PNG, or when it cannot be drawn honestly
(too few completed trials, nothing measured) a one-line note the report shows
instead.  A chart that fails to draw never stops the report: it becomes a note.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import matplotlib

matplotlib.use("Agg")   # files only, never a display (before pyplot is imported anywhere)
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402

from trainers.atomic_write import write_atomic  # noqa: E402

from .study import TRIAL_ID_ATTR, completed  # noqa: E402
from .sweep_folder import SweepFolder  # noqa: E402

MIN_TRIALS_FOR_IMPORTANCE = 3    # fANOVA on fewer completed trials ranks noise
IMPORTANCE_SEED = 0
FIGURE_SIZE = (8.0, 4.5)
DPI = 100


@dataclass
class Chart:
    """One figure of the report: ``path`` (a PNG) or ``note`` (why there is none)."""

    key: str
    title: str
    path: Optional[Path] = None
    note: str = ""


def save_figure(figure, path: Path) -> Path:
    """The figure as a PNG, written atomically, then closed (pyplot keeps figures alive otherwise)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(figure)
    return write_atomic(path, lambda handle: handle.write(buffer.getvalue()))


def _draw(key: str, title: str, out_dir: Path, plot: Callable[[], object]) -> Chart:
    """Run an Optuna plot function and save its figure; any failure becomes the chart's note."""
    try:
        # Optuna's plots switch pyplot to its ggplot style for good: the context puts the style back after.
        with warnings.catch_warnings(), plt.style.context("default"):
            warnings.simplefilter("ignore")   # Optuna's ExperimentalWarning on every matplotlib plot
            axes = plot()
            figure = _figure_of(axes)
            figure.set_size_inches(*FIGURE_SIZE)
            return Chart(key, title, path=save_figure(figure, out_dir / f"{key}.png"))
    except Exception as error:   # a chart is never worth losing the report
        plt.close("all")
        first_line = (str(error).splitlines() or [""])[0]
        return Chart(key, title, note=f"could not be drawn ({type(error).__name__}: {first_line})")


def _figure_of(axes):
    if hasattr(axes, "figure"):
        return axes.figure
    return axes.flat[0].figure   # an array of axes (one subplot per parameter)


def optimisation_history(study: optuna.Study, folder: SweepFolder, out_dir: Path) -> Chart:
    title = "Optimisation history"
    done = len(completed(study))
    if done == 0:
        return Chart("history", title, note="no trial completed, so there is no history to draw")
    return _draw("history", title, out_dir,
                 lambda: optuna.visualization.matplotlib.plot_optimization_history(study, target_name=folder.metric))


def parallel_coordinates(study: optuna.Study, folder: SweepFolder, out_dir: Path) -> Chart:
    title = "Parallel coordinates"
    done = len(completed(study))
    if done < 2:
        return Chart("parallel", title, note=f"needs at least 2 completed trials (this sweep has {done})")
    if not any(trial.params for trial in completed(study)):
        return Chart("parallel", title, note="the completed trials sampled no parameters")
    return _draw("parallel", title, out_dir,
                 lambda: optuna.visualization.matplotlib.plot_parallel_coordinate(study, target_name=folder.metric))


def parameter_importances(study: optuna.Study, folder: SweepFolder, out_dir: Path) -> Chart:
    title = "Parameter importances (fANOVA)"
    done = len(completed(study))
    if done < MIN_TRIALS_FOR_IMPORTANCE:
        return Chart("importances", title,
                     note=f"needs at least {MIN_TRIALS_FOR_IMPORTANCE} completed trials (this sweep has {done}), "
                          f"so no importances are shown")
    varied = {name for trial in completed(study) for name, d in trial.distributions.items()
              if not d.single()}
    if not varied:
        return Chart("importances", title, note="no parameter varied across the completed trials")
    values = {trial.value for trial in completed(study)}
    if len(values) == 1:   # fANOVA has no variance to split
        return Chart("importances", title, note=f"every completed trial scored the same {folder.metric} "
                                                f"({values.pop():.4g}), so no parameter explains anything")
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED)
    return _draw("importances", title, out_dir,
                 lambda: optuna.visualization.matplotlib.plot_param_importances(
                     study, evaluator=evaluator, target_name=folder.metric))


def pareto_front(study: Optional[optuna.Study], folder: SweepFolder, out_dir: Path) -> Chart:
    """Accuracy against latency: Optuna's front (latency on x), the latency budget as a dashed line."""
    title = "Accuracy against latency (Pareto front)"
    if study is None:
        return Chart("pareto", title, note="latency was not measured in this sweep (trials.csv has no "
                                            "latency_ms), so there is no accuracy-latency front; run the sweep "
                                            "with --objective map50-latency to get one")
    if not completed(study):
        return Chart("pareto", title, note="no completed trial has both a score and a latency")
    budget = folder.latency_budget()

    def plot():
        constraints = (lambda trial: [trial.values[1] - budget]) if budget else None
        axes = optuna.visualization.matplotlib.plot_pareto_front(
            study, target_names=["latency (ms)", folder.metric], targets=lambda t: (t.values[1], t.values[0]),
            constraints_func=constraints)
        for trial in completed(study):
            axes.annotate(str(trial.user_attrs.get(TRIAL_ID_ATTR, trial.number)).split("_")[-1],
                          (trial.values[1], trial.values[0]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        if budget:
            axes.axvline(budget, color="tab:red", linestyle="--", linewidth=1.2, label=f"budget {budget:g} ms")
            axes.legend(loc="best", fontsize=8)
        return axes

    return _draw("pareto", title, out_dir, plot)
