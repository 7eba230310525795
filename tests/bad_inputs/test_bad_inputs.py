"""Every bad input gets exit code 2 and one line naming the file, key or value; nothing half-written; no code run.

Each case of :mod:`.corpus` goes through the real command line (``automl.cli.main``)
in a folder of its own.  Beyond the message, the folder must hold no temporary
file (``*.tmp``), no output a successful run would write (checkpoints, ONNX,
results.json, annotated images, an imported checkpoint), and no marker left by
a pickle payload or a YAML ``!!python`` tag.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from automl import cli

from .corpus import CASES, MARKER

# What a successful command writes: none of it may exist after a refused input.
OUTPUT_PATTERNS = ("*.pth", "*.onnx", "*.engine", "results.json", "metrics.jsonl", "*.csv", "*.jpg", "*.png",
                   "*.txt", "mlflow.db", "best_spec.yaml")


def test_the_corpus_covers_every_class_with_at_least_50_cases():
    kinds = Counter(kind for kind, _ in CASES.values())
    assert len(CASES) >= 50, len(CASES)
    for kind in ("spec", "schema", "annotations", "images", "archive", "pickle", "checkpoint", "sweep"):
        assert kinds[kind] >= 3, kinds


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_gets_one_line_and_exit_code_2(name, world, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TAO_AUTOML_CACHE", str(tmp_path / "cache"))
    kind, build = CASES[name]
    argv, fragment = build(world, tmp_path)
    inputs_before = {p for p in tmp_path.rglob("*")}

    try:
        code = cli.main(argv)
    except SystemExit as exit_:   # argparse refuses a flag before main's handler runs (python -m exits the same)
        code = exit_.code
    err = capsys.readouterr().err

    lines = err.strip().splitlines()
    assert code == 2, f"exit code {code}; stderr:\n{err[-2000:]}"
    assert len(lines) == 1, f"expected one line, got:\n{err[-2000:]}"
    assert lines[0].startswith("tao-automl") and ": error: " in lines[0], lines[0]
    assert fragment in lines[0], f"{fragment!r} not named in: {lines[0]}"
    assert not (tmp_path / MARKER).exists(), "code from the input ran"
    written = {p for p in tmp_path.rglob("*") if p not in inputs_before}
    leftovers = [p for p in written if p.name.endswith(".tmp") or (p.is_file() and p.parent.name != "in"
                 and any(p.match(pattern) for pattern in OUTPUT_PATTERNS))]
    assert not leftovers, f"half-done output: {sorted(map(str, leftovers))}"
    extracted = tmp_path / "cache" / "extracted"
    if extracted.is_dir():
        assert not any(extracted.iterdir()), "a refused archive left an extraction behind"
    assert not Path("/tmp/tao_automl_escape.png").exists()


@pytest.mark.parametrize("path", sorted((Path(__file__).parent / "cases" / "left_out").glob("*.json")),
                         ids=lambda p: p.name)
def test_schema_metadata_the_space_cannot_use_is_named_with_its_reason(path, capsys):
    """Well-formed schemas whose metadata makes a parameter unusable: ``space`` runs (NVIDIA's schemas carry such
    quirks) and says which key is left out, or which metadata is ignored, and why - never silently."""
    code = cli.main(["space", "--skill", "rtdetr", "--schema", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    line = next(line for line in out.splitlines() if "train.optim.lr" in line)
    assert "left out" in out.lower() or "ignored" in line, out
