"""Every broken spec in broken/ gets one clear line naming the key and why, exit code 2, no traceback.

Each file starts with comments: ``# expect: <fragment of the message>`` and
optionally ``# overrides: key=value ...`` and ``# action: <action>``.
"""
from pathlib import Path

import pytest

from automl import cli

BROKEN = Path(__file__).resolve().parent / "broken"


def header(path: Path, key: str) -> str:
    for line in path.read_text().splitlines():
        if line.startswith(f"# {key}: "):
            return line[len(f"# {key}: "):]
    return ""


def test_the_corpus_is_large_enough():
    assert len(list(BROKEN.glob("*.yaml"))) >= 30


@pytest.mark.parametrize("name", sorted(p.name for p in BROKEN.glob("*.yaml")))
def test_broken_spec_gets_a_clear_message(name, capsys):
    path = BROKEN / name
    expected = header(path, "expect")
    assert expected, f"{name} has no '# expect:' line"
    argv = ["validate", "--skill", "rtdetr", "-e", str(path), "--action", header(path, "action") or "train"]
    argv += header(path, "overrides").split()
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert err.startswith("tao-automl validate: error: ")
    assert expected in err, err
