"""The sweep report (report.html + PNGs) built from a realistic finished-sweep folder, without Ray.

The folder is what a sweep leaves: trials.csv written by records.TrialsTable,
trial folders (spec.yaml, train/metrics.jsonl), best/model_best.pth (a tiny
RT-DETR checkpoint as the trainer writes it) with its validation set,
best_spec.yaml, pareto.csv and an MLflow parent run holding the search space and
settings.  Two folders are reported: a full sweep with latency and MLflow (built
through ``tao-automl report``), and a two-trial sweep without either.
"""
from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List

import numpy as np
import pytest
import yaml
from PIL import Image

from automl.cli import main as cli_main
from automl.sweep.pareto import pareto_front, write_pareto
from automl.sweep.records import TrialsTable
from automl.sweep.report import build_report, report_after_sweep
from automl.sweep.report.html import SECTIONS
from automl.sweep.settings import SweepSettings
from tests.deploy.conftest import INPUT, _ground_truth, _images, tiny_checkpoint
from tests.model.test_export_and_checkpoints import TINY

LR, WD = "train.optim.lr", "train.optim.weight_decay"
# trial id -> (status, lr, weight decay, best val_mAP50, epochs run, latency ms)
TRIALS = {
    "t0001_00000": ("completed", 1.0e-3, 1.0e-4, 0.42, 2, 45.5),    # over the 40 ms budget
    "t0001_00001": ("completed", 3.0e-4, 5.0e-4, 0.55, 2, 33.0),
    "t0001_00002": ("pruned", 5.0e-5, 2.0e-4, 0.08, 1, 22.0),
    "t0001_00003": ("completed", 2.0e-3, 1.0e-5, 0.31, 2, 19.5),
    "t0001_00004": ("failed", 8.0e-4, 3.0e-5, None, 0, None),
    "t0001_00005": ("completed", 6.0e-4, 7.0e-5, 0.47, 2, 27.0),
}
WINNER = "t0001_00001"
SPACE = {"parameters": [{"name": LR, "type": "float", "log": True, "low": 1.0e-5, "high": 1.0e-2},
                        {"name": WD, "type": "float", "log": True, "low": 1.0e-6, "high": 1.0e-3}]}


@pytest.fixture(scope="module")
def winner_files(tmp_path_factory) -> SimpleNamespace:
    """The winner's checkpoint and its validation set, made once.

    The deploy tests' tiny checkpoint (trainer-style payload, sparse category ids
    201/305/412) and images whose ground truth is the model's own confident
    boxes: the precision-recall curves and the confusion matrix then have
    something on them, as a trained winner's would.
    """
    root = tmp_path_factory.mktemp("report_winner")
    checkpoint = tiny_checkpoint(root / "model_best.pth")
    folder = root / "images"
    coco = root / "val.json"
    coco.write_text(json.dumps(_ground_truth(checkpoint, folder, _images(folder))))
    source = {"image_dir": str(folder), "json_file": str(coco)}
    spec = {"results_dir": str(root / "run"), "model": dict(TINY),
            "dataset": {"train_data_sources": [source], "val_data_sources": source, "num_classes": 3,
                        "batch_size": 4, "workers": 1,
                        "augmentation": {"eval_spatial_size": [INPUT, INPUT], "train_spatial_size": [INPUT, INPUT]}},
            "train": {"num_epochs": 2, "optim": {"lr": 1e-3, "weight_decay": 1e-4}},
            "inference": {"conf_threshold": 0.5}}
    epochs = [{"epoch": 0, "loss": 9.5, "val_mAP": 0.1, "val_mAP50": 0.2, "val_mAP75": 0.05}]
    return SimpleNamespace(spec=spec, checkpoint=checkpoint, epochs=epochs)


def make_sweep(root: Path, winner_files: SimpleNamespace, trials: Dict[str, tuple] = TRIALS, *, latency: bool = True,
               mlflow: bool = True, budget: float = 40.0) -> Path:
    """A results_dir as a finished sweep leaves it; returns the results_dir."""
    results = root / "results"
    automl = results / "automl"
    table = TrialsTable(automl / "trials.csv")
    for trial_id, (status, lr, wd, value, epochs, latency_ms) in trials.items():
        folder = automl / "trials" / trial_id
        (folder / "train").mkdir(parents=True)
        spec = json.loads(json.dumps(winner_files.spec))
        spec["train"]["optim"].update(lr=lr, weight_decay=wd)
        spec["results_dir"] = str(folder)
        (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        lines = [{**winner_files.epochs[0], "epoch": e, "val_mAP50": (value or 0.0) * (e + 1) / max(epochs, 1)}
                 for e in range(epochs)]
        (folder / "train" / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        record = table.get(trial_id)
        record.status, record.trial_dir, record.epochs_run = status, str(folder), epochs
        record.values = {LR: lr, WD: wd}
        if latency and latency_ms is not None:
            record.latency_ms, record.latency_runtime = latency_ms, "onnxruntime-cpu"
        record.best_value, record.best_epoch = value, (None if value is None else epochs - 1)
        record.wall_seconds = 10.0 + epochs
        record.reason = "the trainer exited with code 1" if status == "failed" else ""
    table.save()
    winner = automl / "trials" / WINNER
    shutil.copy2(winner_files.checkpoint, winner / "train" / "model_best.pth")
    (automl / "best").mkdir()
    shutil.copy2(winner_files.checkpoint, automl / "best" / "model_best.pth")
    best_spec = yaml.safe_load((winner / "spec.yaml").read_text())
    best_spec["results_dir"] = str(results)
    (automl / "best_spec.yaml").write_text(yaml.safe_dump(best_spec, sort_keys=False))
    if latency:   # a two-objective sweep's front file, written as the sweep writes it
        write_pareto(pareto_front(list(table.records.values())), automl / "pareto.csv")
    if mlflow:
        tracker = start_tracking(results, winner_files, latency=latency, budget=budget, trials=len(trials))
        tracker.finish_sweep(best={"trial_id": WINNER, "value": trials[WINNER][3], "epoch": 1}, artifacts=[])
    return results


def sweep_settings(results: Path, *, latency: bool = False, budget: float = 40.0, trials: int = len(TRIALS)):
    extra = dict(objective="map50-latency", latency_budget_ms=budget) if latency else {}
    return SweepSettings(results_dir=results.resolve(), algorithm="asha", max_trials=trials, max_epochs=2, **extra)


def start_tracking(results: Path, winner_files: SimpleNamespace, **settings_args):
    """The sweep's MLflow parent run, as run_sweep starts it (spec, search space, settings)."""
    from automl.sweep.tracking import SweepTracker

    settings = sweep_settings(results, **settings_args)
    tracker = SweepTracker(settings.tracking_uri)
    tracker.start_sweep(str(settings.results_dir), run_name="sweep results", spec=winner_files.spec, space=SPACE,
                        settings=settings.to_json())
    return tracker


class PageParser(HTMLParser):
    """Section ids, <img> attributes and the trials table's cells of a report page."""

    def __init__(self):
        super().__init__()
        self.sections: List[str] = []
        self.images: List[Dict[str, str]] = []
        self.rows: List[List[Dict[str, str]]] = []
        self.text: List[str] = []
        self._in_table = False
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs.get("id", ""))
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "table" and attrs.get("id") == "trials-table":
            self._in_table = True
        elif self._in_table and tag == "tr":
            self.rows.append([])
        elif self._in_table and tag in ("td", "th"):
            self._cell = {"tag": tag, "value": attrs.get("data-value"), "text": ""}
            self.rows[-1].append(self._cell)

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        elif tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell["text"] += data


def parse(html_file: Path) -> PageParser:
    parser = PageParser()
    parser.feed(html_file.read_text())
    parser.close()
    return parser


def decode_png(src: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    raw = base64.b64decode(src[len(prefix):], validate=True)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) > 2000, "a real, non-trivial PNG"
    image = Image.open(io.BytesIO(raw))
    image.load()
    return image


@pytest.fixture(scope="module")
def full_report(winner_files, tmp_path_factory) -> SimpleNamespace:
    """A six-trial sweep with latency, pareto.csv and MLflow, reported by ``tao-automl report``."""
    results = make_sweep(tmp_path_factory.mktemp("report_full"), winner_files)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = cli_main(["report", str(results)])
    html = results / "automl" / "report.html"
    return SimpleNamespace(results=results, code=code, output=output.getvalue(), html=html, page=parse(html))


@pytest.fixture(scope="module")
def few_report(winner_files, tmp_path_factory) -> SimpleNamespace:
    """One completed and one pruned trial, no latency measured, no MLflow: built in code."""
    few = {WINNER: TRIALS[WINNER], "t0001_00002": TRIALS["t0001_00002"]}
    results = make_sweep(tmp_path_factory.mktemp("report_few"), winner_files, trials=few, latency=False, mlflow=False)
    report = build_report(results, log=lambda line: None)
    return SimpleNamespace(results=results, report=report, page=parse(report.html))


def test_report_has_every_section_and_only_embedded_valid_pngs(full_report):
    page, automl = full_report.page, full_report.results / "automl"
    assert full_report.code == 0 and f"report: {full_report.html}" in full_report.output
    assert page.sections == [key for key, _ in SECTIONS]
    files = {image["data-file"] for image in page.images}
    assert {"report/history.png", "report/parallel.png", "report/importances.png", "report/pareto.png",
            "report/precision_recall.png", "report/confusion_matrix.png", "report/sample_1.png"} <= files
    assert len(page.images) == len(files) == 10   # 4 search charts, PR, confusion, 4 validation images
    for image in page.images:
        decoded = decode_png(image["src"])
        assert min(decoded.size) >= 64
        on_disk = automl / image["data-file"]
        assert on_disk.is_file() and Image.open(on_disk).size == decoded.size
    assert sorted(p.name for p in (automl / "report").glob("*.png")) == sorted(Path(f).name for f in files)
    text = "".join(page.text)
    assert "t0001_00001" in text and "tao-automl report" in text and "needs at least" not in text


def test_trials_table_shows_every_row_and_number_of_trials_csv(full_report):
    with open(full_report.results / "automl" / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    header, *body = full_report.page.rows
    columns = [cell["text"] for cell in header]
    assert "latency_ms" in columns and "best_val_mAP50" in columns and LR in columns
    assert len(body) == len(rows) == len(TRIALS)
    compared = 0
    for csv_row, cells in zip(rows, body):
        shown = dict(zip(columns, cells))
        assert shown["trial_id"]["text"] == csv_row["trial_id"] and shown["status"]["text"] == csv_row["status"]
        for column in columns:
            if column not in csv_row or csv_row[column] in ("",) or shown[column]["value"] is None:
                continue
            assert shown[column]["value"] == csv_row[column]
            assert float(shown[column]["text"]) == pytest.approx(float(csv_row[column]), rel=1e-3)
            compared += 1
    assert compared >= 5 * len(TRIALS)
    marked = {cells[0]["text"] for cells in body if cells[columns.index("Pareto")]["text"] == "front"}
    assert marked == {"t0001_00001", "t0001_00003", "t0001_00005"}   # pareto.csv's trials


def test_report_uses_the_space_from_mlflow_and_is_logged_to_the_parent_run(full_report):
    from mlflow.tracking import MlflowClient

    assert "note:" not in full_report.output   # the space came from MLflow, nothing was inferred
    client = MlflowClient(tracking_uri=f"sqlite:///{full_report.results / 'automl' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tao-automl")
    (parent,) = client.search_runs([experiment.experiment_id])
    logged = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "report.html" in logged and "report" in logged
    pngs = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/pareto.png" in pngs and "report/confusion_matrix.png" in pngs


def test_winner_section_names_the_winner_and_its_latency(full_report):
    text = "".join(full_report.page.text)
    assert f"Retrain it: tao-automl train --skill rtdetr -e {full_report.results / 'automl' / 'best_spec.yaml'}" in text
    assert "latency (ms)33" in text
    assert "rectangle" in text and "ellipse" in text   # per-class AP50 rows, by class name


def test_without_latency_there_is_no_pareto_chart_but_a_note(few_report):
    files = {image["data-file"] for image in few_report.page.images}
    assert "report/pareto.png" not in files
    assert not (few_report.results / "automl" / "report" / "pareto.png").exists()
    assert "latency was not measured" in "".join(few_report.page.text)
    assert any("inferred" in note for note in few_report.report.notes)   # no MLflow: ranges from the values seen


def test_too_few_completed_trials_give_notes_instead_of_charts(few_report):
    files = {image["data-file"] for image in few_report.page.images}
    assert "report/importances.png" not in files and "report/parallel.png" not in files
    text = "".join(few_report.page.text)
    assert "needs at least 3 completed trials (this sweep has 1)" in text
    assert "needs at least 2 completed trials (this sweep has 1)" in text
    assert {"report/history.png", "report/precision_recall.png", "report/confusion_matrix.png"} <= files
    assert few_report.page.sections == [key for key, _ in SECTIONS]


def test_report_command_on_a_folder_without_trials_csv_is_one_line_and_exit_2(tmp_path, capsys):
    assert cli_main(["report", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    error = captured.err.strip()
    assert len(error.splitlines()) == 1 and "trials.csv" in error and error.startswith("tao-automl report: error:")
    assert not (tmp_path / "automl" / "report.html").exists()


def test_confusion_matrix_counts_hits_wrong_classes_misses_and_false_alarms():
    from automl.sweep.report.confusion import ConfusionMatrix

    matrix = ConfusionMatrix(num_classes=2, iou_threshold=0.5, score_threshold=0.5)
    truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], dtype=float)
    predicted = np.array([[0, 0, 10, 10],        # class 0 found as 0
                          [21, 21, 31, 31],      # class 1 found as 0 (IoU 0.68)
                          [60, 60, 70, 70],      # nothing there: a false alarm of class 1
                          [40, 40, 50, 50]])     # would hit the third box, but scored below the threshold
    matrix.add_image(predicted, [0, 0, 1, 1], [0.9, 0.8, 0.7, 0.4], truth, [0, 1, 1])
    # rows: predicted 0, 1, background; columns: true 0, 1, background
    assert matrix.matrix.tolist() == [[1, 1, 0], [0, 0, 1], [0, 1, 0]]
    matrix.add_image(np.array([[0, 0, 10, 10]]), [1], [0.9], np.array([[5, 5, 15, 15]]), [1])   # IoU 0.14: no match
    assert matrix.matrix.tolist() == [[1, 1, 0], [0, 0, 2], [0, 2, 0]]


def test_a_failing_report_is_one_warning_line_and_never_stops_the_sweep(tmp_path):
    lines: List[str] = []
    settings = SweepSettings(results_dir=tmp_path)   # no trials.csv: the report cannot be built
    assert report_after_sweep("rtdetr", settings, log=lines.append) == []
    assert len(lines) == 1 and lines[0].startswith("warning: the sweep report was not written")


@pytest.mark.slow
def test_the_end_of_a_sweep_writes_the_report_and_logs_it_to_the_parent_run(winner_files, tmp_path):
    """finish.finish (what every sweep ends with) writes the report after the winner's export and hands it
    to the tracker with the sweep's other files."""
    from mlflow.tracking import MlflowClient

    from automl.sweep.finish import finish

    results = make_sweep(tmp_path, winner_files, mlflow=False)
    tracker = start_tracking(results, winner_files, latency=True)
    settings = sweep_settings(results, latency=True)
    lines: List[str] = []
    outcome = finish("rtdetr", {}, settings, TrialsTable(settings.automl_dir / "trials.csv"), tracker, lines.append)
    assert outcome.best.trial_id == WINNER
    assert f"report: {settings.automl_dir / 'report.html'}" in lines, lines
    assert parse(settings.automl_dir / "report.html").sections == [key for key, _ in SECTIONS]
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    assert "report.html" in {a.path for a in client.list_artifacts(tracker.parent_id)}
    assert "report/history.png" in {a.path for a in client.list_artifacts(tracker.parent_id, "report")}


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("headless Chromium not found (Debian: apt-get install chromium; .ci/run installs it)")


@pytest.mark.slow
def test_report_renders_in_headless_chromium(full_report, tmp_path):
    browser = _chromium()
    page = full_report.html.resolve().as_uri()
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run(common + ["--dump-dom", page], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-rendered="ok"' in dom.stdout, "the inline script saw an image that did not decode"
    assert 'data-images="10 loaded 10"' in dom.stdout
    shot = tmp_path / "report.png"
    done = subprocess.run(common + [f"--screenshot={shot}", "--window-size=1280,2400", page],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    image = Image.open(shot).convert("L")
    low, high = image.getextrema()
    assert high - low > 100, "the screenshot is blank"
    histogram = image.histogram()
    assert max(histogram) / sum(histogram) < 0.9, "one colour covers almost the whole screenshot"
    keep = Path(tempfile.gettempdir()) / "tao-automl-report-screenshot.png"
    shutil.copy2(shot, keep)   # for a person to look at
