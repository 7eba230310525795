"""Does distillation pay?  The same student trained alone vs distilled, same data, epochs, steps and seed.

A teacher (the tiny preset, tests/learning/tiny_preset.py) trains
``--teacher-epochs`` on the drawn shapes (tests/learning/synthetic_shapes.py,
the set tests/distill/test_distill_helps.py uses); then for every seed the
student trains ``--epochs`` alone and ``--epochs`` with the teacher
(``tao-automl distill``'s code path), and the script prints both val_mAP50 and
the difference.  Extra ``distill`` spec overrides go after ``--distill``.

    python benchmarks/bench_distill.py [--seeds 0,1,2] [--teacher-epochs 15] [--epochs 5] [--threads 1]
    python benchmarks/bench_distill.py --seeds 0 --distill "distill.bindings=[{student_module_name: srcs, \
teacher_module_name: srcs, criterion: IOU, weight: 1.0}]"

Run time on 2 quiet cores, one thread, defaults: about 1.5 min for the
teacher, then about 1.5 min a seed.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.learning.synthetic_shapes import write_shapes_dataset  # noqa: E402
from tests.learning.tiny_preset import shapes_spec, write_spec  # noqa: E402


def config(data, root: Path, name: str, args, epochs: int, seed: int, overrides=(), action: str = "train"):
    from automl.spec import load_spec

    spec = shapes_spec(data, root / name, size=args.size, epochs=epochs, batch_size=args.batch, seed=seed)
    spec["train"]["validation_interval"] = epochs
    return load_spec("rtdetr", write_spec(spec, root / f"{name}.yaml"), list(overrides), action)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--teacher-epochs", type=int, default=15)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--train-images", type=int, default=128)
    parser.add_argument("--val-images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--teacher", help="a trained teacher checkpoint (skips training one; same --size data)")
    parser.add_argument("--distill", nargs="*", default=[],
                        help="distill spec overrides (default: none, i.e. srcs IOU binding)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from trainers.rtdetr.distill import run_distill
    from trainers.rtdetr.engine.trainer import train

    quiet = lambda _line: None  # noqa: E731
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        data = write_shapes_dataset(root / "shapes", args.train_images, args.val_images, size=args.size, seed=7)
        teacher = args.teacher
        if not teacher:
            started = time.perf_counter()
            summary = train(config(data, root, "teacher", args, args.teacher_epochs, 1234), log=quiet)
            teacher = summary["best_checkpoint"]
            print(f"teacher: {args.teacher_epochs} epochs, val_mAP50 {summary['val_mAP50']:.3f} "
                  f"({time.perf_counter() - started:.0f}s)", flush=True)
        overrides = [f"distill.pretrained_teacher_model_path={teacher}", *args.distill]
        print(f"student: {args.epochs} epochs; distill overrides {args.distill}", flush=True)
        gains = []
        for seed in (int(s) for s in args.seeds.split(",")):
            started = time.perf_counter()
            alone = train(config(data, root, f"alone{seed}", args, args.epochs, seed), log=quiet)["val_mAP50"]
            middle = time.perf_counter()
            distilled = run_distill(config(data, root, f"distilled{seed}", args, args.epochs, seed, overrides,
                                           "distill"), log=quiet)["val_mAP50"]
            gains.append(distilled - alone)
            print(f"seed {seed}: alone {alone:.3f} ({middle - started:.0f}s)  distilled {distilled:.3f} "
                  f"({time.perf_counter() - middle:.0f}s)  gain {distilled - alone:+.3f}", flush=True)
        print(f"gain: min {min(gains):+.3f}  mean {sum(gains) / len(gains):+.3f}")


if __name__ == "__main__":
    main()
