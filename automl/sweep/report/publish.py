"""report.html and its PNGs as artifacts of the sweep's MLflow parent run (``tao-automl report``).

After a sweep the runner logs them with the sweep's other files; a report
rebuilt later finds the parent run by its ``tao_automl.sweep_id`` tag and adds
them there (artifacts may be added to a finished run).
"""
from __future__ import annotations

from typing import Callable

from .sweep_folder import SweepFolder


def log_report_artifacts(folder: SweepFolder, log: Callable[[str], None]) -> None:
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=folder.tracking_uri)
        client.log_artifact(folder.parent_run_id, str(folder.report_file))
        client.log_artifacts(folder.parent_run_id, str(folder.report_dir), "report")
    except Exception as error:   # the report on disk is what matters; MLflow is a copy
        log(f"warning: report not logged to MLflow run {folder.parent_run_id} ({type(error).__name__}: "
            f"{' '.join(str(error).split())[:200]})")
