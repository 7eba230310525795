"""report.html: one self-contained page (inline CSS, images as data: URIs) that opens anywhere.

The PNGs are also files beside it (``report/*.png``); the page embeds them so
it can be mailed or attached to an MLflow run alone.  No JavaScript is needed
to read it; a tiny inline script only records, on ``<body data-rendered>``,
whether every image decoded (``ok``) once the page has loaded, which the
headless-browser test reads.
"""
from __future__ import annotations

import base64
import datetime
import math
import re
from html import escape
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Sequence

from .charts import Chart
from .sweep_folder import SweepFolder
from .winner import WinnerFigures

SECTIONS = (("summary", "Summary"), ("winner", "Winner"), ("search", "Search"),
            ("winner-quality", "Winner on the validation set"), ("trials", "Trials"),
            ("settings", "Settings and search space"), ("files", "Files"))
HIDDEN_COLUMNS = {"trial_dir"}   # long absolute paths; the Files section says where trials live

STYLE = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:0;color:#1f2328;
background:#f6f8fa;line-height:1.45}
header{background:#24292f;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px;font-weight:600}
header p{margin:4px 0 0;color:#c9d1d9;font-size:13px}
nav{padding:8px 32px;background:#fff;border-bottom:1px solid #d0d7de;font-size:14px}
nav a{margin-right:16px;color:#0969da;text-decoration:none}
main{max-width:1180px;margin:0 auto;padding:8px 32px 40px}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:4px 20px 16px;margin:18px 0}
h2{font-size:18px;border-bottom:1px solid #d8dee4;padding-bottom:6px}
h3{font-size:15px;margin:14px 0 6px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;min-width:130px;background:#f6f8fa}
.card b{display:block;font-size:20px}
.card span{font-size:12px;color:#57606a}
.figures{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:16px}
figure{margin:0;border:1px solid #d8dee4;border-radius:6px;padding:8px;background:#fff}
figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{font-size:13px;color:#57606a;margin-top:6px}
.samples{display:grid;grid-template-columns:repeat(auto-fit,minmax(240px,1fr));gap:12px}
.note{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:8px 12px;font-size:14px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;white-space:nowrap}
th{background:#f6f8fa}
tr:nth-child(even) td{background:#fbfcfd}
tr.winner td{background:#dafbe1}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:12px;background:#eff1f3;padding:1px 4px;border-radius:4px}
"""

RENDER_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (image) { return !(image.complete && image.naturalWidth > 0); });
  document.body.setAttribute("data-rendered", broken.length ? "broken" : "ok");
  document.body.setAttribute("data-images", images.length + " loaded " + (images.length - broken.length));
});
"""


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def render_report(folder: SweepFolder, charts: Sequence[Chart], winner: WinnerFigures,
                  notes: Sequence[str] = ()) -> str:
    """The whole page as a string."""
    best = folder.best()
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Sweep report: {escape(folder.results_dir.name)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<header><h1>Sweep report: {escape(folder.results_dir.name)}</h1>"
        f"<p>{escape(str(folder.results_dir))} &middot; generated "
        f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}</p></header>",
        "<nav>" + "".join(f'<a href="#{key}">{escape(title)}</a>' for key, title in SECTIONS) + "</nav><main>",
        _summary(folder, best, notes),
        _winner(folder, best),
        _search(charts),
        _winner_quality(winner),
        _trials(folder, best),
        _settings(folder),
        _files(folder, charts, winner),
        f"</main><script>{RENDER_SCRIPT}</script></body></html>",
    ]
    return "\n".join(parts)


def _section(key: str, body: str) -> str:
    title = dict(SECTIONS)[key]
    return f'<section id="{key}"><h2>{escape(title)}</h2>{body}</section>'


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def _cards(items: Iterable[tuple]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><b>{escape(str(value))}</b><span>{escape(label)}</span></div>'
        for label, value in items) + "</div>"


def _summary(folder: SweepFolder, best, notes: Sequence[str]) -> str:
    counts: Dict[str, int] = {}
    for record in folder.records:
        counts[record.status] = counts.get(record.status, 0) + 1
    items = [("trials", len(folder.records))] + sorted(counts.items())
    items.append((f"best {folder.metric}", "-" if best is None else _short(best.best_value)))
    algorithm = folder.settings.get("algorithm")
    text = (f"<p>Optimised <code>{escape(folder.metric)}</code> ({'higher' if folder.mode == 'max' else 'lower'} "
            f"is better)" + (f" with <code>{escape(str(algorithm))}</code>" if algorithm else "") + ".</p>")
    return _section("summary", _cards(items) + text + "".join(_note(n) for n in notes))


def _winner(folder: SweepFolder, best) -> str:
    if best is None:
        return _section("winner", _note(f"No trial produced a {folder.metric}, so there is no winner."))
    rows = [("trial", best.trial_id), (f"best {folder.metric}", _short(best.best_value)),
            ("at epoch", best.best_epoch), ("epochs run", best.epochs_run), ("status", best.status)]
    latency = folder.latency(best)
    if latency is not None:
        rows.append(("latency (ms)", _short(latency)))
    rows += [(name, _short(value)) for name, value in sorted(best.values.items())]
    table = "<table>" + "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    retrain = (f"<p>Retrain it: <code>tao-automl train --skill rtdetr -e {escape(str(folder.best_spec))}</code></p>"
               if folder.best_spec.is_file() else "")
    return _section("winner", table + "</table>" + retrain)


def _figure(chart: Chart, caption: str = "") -> str:
    if chart.path is None:
        return f"<figure><h3>{escape(chart.title)}</h3>{_note(chart.title + ': ' + chart.note)}</figure>"
    return (f'<figure id="chart-{chart.key}"><h3>{escape(chart.title)}</h3>'
            f'<img src="{data_uri(chart.path)}" alt="{escape(chart.title)}" data-file="report/{chart.path.name}">'
            + (f"<figcaption>{escape(caption)}</figcaption>" if caption else "") + "</figure>")


CAPTIONS = {
    "history": "Each completed trial's best value in the order trials started, and the best so far.",
    "parallel": "One line per completed trial through its sampled values; colour is the objective.",
    "importances": "How much of the objective's variance each parameter explains (fANOVA, seeded).",
    "pareto": "Completed trials by latency and score; the front is highlighted, the dashed line is the budget.",
    "precision_recall": "pycocotools' interpolated precision at 101 recall points, IoU 0.5, up to 100 detections.",
    "confusion": "Columns: true class; rows: predicted. Background row: missed boxes; background column: false alarms.",
}


def _search(charts: Sequence[Chart]) -> str:
    search = [c for c in charts if c.key in ("history", "parallel", "importances", "pareto")]
    return _section("search", '<div class="figures">' + "".join(_figure(c, CAPTIONS.get(c.key, "")) for c in search)
                    + "</div>")


def _winner_quality(winner: WinnerFigures) -> str:
    if winner.note:
        return _section("winner-quality", _note(winner.note))
    body = f"<p>{winner.num_images} validation images; detections kept at score &ge; {winner.score_threshold:g} " \
           f"(the spec's <code>inference.conf_threshold</code>) for the matrix and the images.</p>"
    body += '<div class="figures">' + "".join(_figure(c, CAPTIONS.get(c.key, "")) for c in winner.charts) + "</div>"
    if winner.per_class:
        body += "<h3>Per class</h3><table><tr><th>class</th><th>id</th><th>boxes</th><th>AP50</th></tr>" + "".join(
            f"<tr><td>{escape(str(r['name']))}</td><td class=\"num\">{r['category_id']}</td>"
            f"<td class=\"num\">{r['num_gt']}</td><td class=\"num\">{_short(r['AP50'])}</td></tr>"
            for r in winner.per_class) + "</table>"
    if winner.samples:
        body += ("<h3>Sample predictions</h3>"
                 "<p>White: ground truth. Coloured: the winner's detections (class, score).</p>")
        body += '<div class="samples">' + "".join(
            f'<figure><img src="{data_uri(p)}" alt="validation image {i + 1}" data-file="report/{p.name}">'
            f"<figcaption>{escape(p.name)}</figcaption></figure>" for i, p in enumerate(winner.samples)) + "</div>"
    return _section("winner-quality", body)


def _trials(folder: SweepFolder, best) -> str:
    columns = [c for c in folder.columns if c not in HIDDEN_COLUMNS]
    front = set(folder.pareto_ids or [])
    header = "".join(f"<th>{escape(c)}</th>" for c in columns) + ("<th>Pareto</th>" if front else "")
    rows = []
    for row in folder.rows:
        css = ' class="winner"' if best is not None and row.get("trial_id") == best.trial_id else ""
        cells = "".join(_cell(row.get(c, "")) for c in columns)
        if front:
            cells += f"<td>{'front' if row.get('trial_id') in front else ''}</td>"
        rows.append(f'<tr{css} data-trial="{escape(row.get("trial_id", ""))}">{cells}</tr>')
    body = (f"<p>As in <code>trials.csv</code> (numbers shown to 4 significant digits; the winner is green).</p>"
            f'<div class="scroll"><table id="trials-table"><tr>{header}</tr>{"".join(rows)}</table></div>')
    return _section("trials", body)


def _cell(text: str) -> str:
    number = _float(text)
    if number is None:
        return f"<td>{escape(text)}</td>"
    return f'<td class="num" data-value="{escape(text)}">{escape(_short(number))}</td>'


def _settings(folder: SweepFolder) -> str:
    body = ""
    shown = {k: _without_credentials(v) for k, v in folder.settings.items() if v not in (None, "", [], {})}
    if shown:
        body += "<h3>Sweep settings</h3><table>" + "".join(
            f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>"
            for k, v in sorted(shown.items())) + "</table>"
    parameters = (folder.space or {}).get("parameters") or []
    if parameters:
        body += "<h3>Search space</h3><table><tr><th>parameter</th><th>type</th><th>range or choices</th>" \
                "<th>scale</th></tr>"
        for p in parameters:
            span = (", ".join(map(str, p["choices"])) if "choices" in p else f"[{p.get('low')}, {p.get('high')}]")
            body += (f"<tr><td>{escape(str(p.get('name')))}</td><td>{escape(str(p.get('type')))}</td>"
                     f"<td>{escape(span)}</td><td>{'log' if p.get('log') else 'linear'}</td></tr>")
        body += "</table>"
    if not body:
        body = _note("The sweep's settings and search space are kept in its MLflow parent run, which could not be "
                     "read; the parameters below are the columns of trials.csv.") + "<p>" + ", ".join(
            f"<code>{escape(n)}</code>" for n in folder.parameter_names) + "</p>"
    return _section("settings", body)


def _files(folder: SweepFolder, charts: Sequence[Chart], winner: WinnerFigures) -> str:
    a = folder.automl_dir
    entries = [("this report", folder.report_file), ("its images", folder.report_dir),
               ("trials table", a / "trials.csv"), ("trial folders", a / "trials"),
               ("winner checkpoint", folder.best_checkpoint), ("winner spec", folder.best_spec),
               ("ONNX model", a / "export" / "model.onnx"),
               ("TensorRT engine", a / "gen_trt_engine" / "model.engine"), ("Pareto front", a / "pareto.csv"),
               ("MLflow database", a / "mlflow.db")]
    rows = "".join(f"<tr><th>{escape(label)}</th><td><code>{escape(str(path))}</code></td></tr>"
                   for label, path in entries if path.exists() or path in (folder.report_file, folder.report_dir))
    mlflow = (f"<p>MLflow: <code>tao-automl ui {escape(str(folder.results_dir))}</code> (parent run "
              f"<code>{escape(folder.parent_run_id)}</code> holds this report as an artifact).</p>"
              if folder.parent_run_id else "")
    rebuild = f"<p>Rebuild this report: <code>tao-automl report {escape(str(folder.results_dir))}</code></p>"
    return _section("files", f"<table>{rows}</table>{mlflow}{rebuild}")


def _without_credentials(value: Any) -> Any:
    """A URL's ``user:password@`` masked (e.g. an MLflow server URI); secret keys are masked already."""
    return re.sub(r"(://)[^/@\s]+@", r"\1*****@", value) if isinstance(value, str) else value


def _float(text: Any) -> Optional[float]:
    if isinstance(text, bool):
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _short(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
