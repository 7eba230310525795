"""``tao-automl report RESULTS_DIR``: (re)build a sweep's report.html, e.g. after an interrupted sweep.

    tao-automl report runs/raccoon_sweep
    tao-automl report runs/x --mlflow-uri http://10.0.0.1:5000 --skill rtdetr

Writes ``RESULTS_DIR/automl/report.html`` (self-contained) and its PNGs in
``RESULTS_DIR/automl/report/``, and adds both to the sweep's MLflow parent run.
"""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="build a sweep's report.html (charts, winner's curves and sample predictions)",
        description="Build RESULTS_DIR/automl/report.html from the files a finished or interrupted sweep left: "
                    "optimisation history, parallel coordinates, parameter importances, the accuracy-latency "
                    "front, and the winner's precision-recall curves, confusion matrix and sample predictions.")
    parser.add_argument("results_dir", metavar="RESULTS_DIR", help="the sweep's results_dir (holding automl/)")
    parser.add_argument("--skill", default="rtdetr", help="the sweep's skill (default rtdetr)")
    parser.add_argument("--mlflow-uri", dest="mlflow_uri", default=None,
                        help="the sweep's --mlflow-uri when it was not the default SQLite file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from automl.sweep.report import build_report

    report = build_report(args.results_dir, skill=args.skill, tracking_uri=args.mlflow_uri)
    for note in report.notes:
        print(f"note: {note}")
    print(f"report: {report.html} ({len(report.images)} images in {report.html.parent / 'report'})")
    return 0
