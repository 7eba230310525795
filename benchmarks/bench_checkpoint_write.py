"""An epoch's checkpoint writing: the same state saved under three names, serialized three times or once.

At the end of an epoch that is a new best, with ``checkpoint_interval`` 1 (the default), the trainer
writes model_epoch_NNN.pth, model_best.pth and model_latest.pth, all the same training state.  This
times both ways side by side, alternating rounds in one process:

- three: ``save_checkpoint`` once per name (each one serialized and fsynced), as before;
- once: ``save_checkpoint(payload, epoch, best, latest)``, which serializes and syncs the first and
  links the other two to it (a copy where the filesystem has no hard links).

    python benchmarks/bench_checkpoint_write.py [CHECKPOINT] [--rounds 5]

CHECKPOINT: a trainer checkpoint (default: the tiny preset of the sweep tests, trained one epoch here:
the size a test trial writes, 136 MB with its optimizer state and EMA).  Prints the median seconds of
each way, their ratio, and the bytes each leaves on disk.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from automl.sweep.finish import disk_usage  # noqa: E402
from trainers.rtdetr.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402

NAMES = ("model_epoch_000.pth", "model_best.pth", "model_latest.pth")


def tiny_checkpoint(folder: Path) -> Path:
    """One epoch of the sweep tests' tiny preset through the real trainer; its model_latest.pth."""
    from automl.spec import load_spec
    from tests.sweep.tiny_sweep import tiny_sweep_spec
    from trainers.rtdetr.engine.trainer import train

    spec_path = tiny_sweep_spec(folder, epochs=1)
    spec = yaml.safe_load(spec_path.read_text())
    spec.pop("automl")
    spec_path.write_text(yaml.safe_dump(spec))
    train(load_spec("rtdetr", spec_path, [], "train"), log=lambda _line: None)
    return folder / "results" / "train" / "model_latest.pth"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_checkpoint_write_") as scratch:
        scratch = Path(scratch)
        source = args.checkpoint or tiny_checkpoint(scratch / "tiny")
        payload = load_checkpoint(source)
        for key in ("format", "format_version"):
            payload.pop(key, None)
        ways = {
            "three": lambda out: [save_checkpoint(payload, out / name) for name in NAMES],
            "once": lambda out: save_checkpoint(payload, *(out / name for name in NAMES)),
        }
        seconds = {way: [] for way in ways}
        disk = {}
        for _ in range(args.rounds):
            for way, write in ways.items():
                out = scratch / way
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                started = time.perf_counter()
                write(out)
                seconds[way].append(time.perf_counter() - started)
                disk[way] = disk_usage(out)
        print(f"{source} ({source.stat().st_size / 1e6:.0f} MB), saved as {', '.join(NAMES)}; "
              f"median of {args.rounds} alternating rounds")
        for way in ways:
            print(f"  {way:<5}: {statistics.median(seconds[way]):6.3f} s, {disk[way] / 1e6:6.0f} MB on disk")
        print(f"  three / once: {statistics.median(seconds['three']) / statistics.median(seconds['once']):.2f}x "
              f"the time, {disk['three'] / disk['once']:.2f}x the disk")


if __name__ == "__main__":
    main()
