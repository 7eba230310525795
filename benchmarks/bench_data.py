"""Does the data loader keep up with training?  Loader images/s vs images/s a training step consumes.

The loader is measured as training uses it: the official augmentation at
``train_spatial_size`` (photometric distortion, zoom-out, IoU crop, flip,
resize) and the multi-scale collate, with ``--workers`` processes, over whole
epochs after the first batch (worker start-up is not counted).  The training
step is forward + loss + backward + AdamW step of the RT-DETR model on a fixed
batch at the same resolution.  The two are measured one after the other, so
on a CPU-only machine they do not compete for cores; the goal is a ratio of at
least 3 on the machine that trains.

    python benchmarks/bench_data.py                      # raccoon example, 640x640
    python benchmarks/bench_data.py --workers 8 --device cuda --backbone resnet_50
    python benchmarks/bench_data.py --no-model           # loader only
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainers.rtdetr.config import experiment_from_dict  # noqa: E402
from trainers.rtdetr.data import build_dataloader, set_epoch  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=ROOT / "examples" / "raccoon" / "images")
    parser.add_argument("--json", type=Path, default=ROOT / "examples" / "raccoon" / "annotations" / "train.json")
    parser.add_argument("--size", type=int, default=640, help="train_spatial_size (square)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--epochs", type=int, default=2, help="loader epochs to time")
    parser.add_argument("--no-multi-scale", action="store_true", help="collate without multi-scale")
    parser.add_argument("--no-model", action="store_true", help="time the loader only")
    parser.add_argument("--backbone", default="resnet_18", help="model.backbone for the training step")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps (after one warm-up)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args()


def spec(args: argparse.Namespace):
    augmentation = {"train_spatial_size": [args.size, args.size]}
    if args.no_multi_scale:
        augmentation["multi_scales"] = []
    return experiment_from_dict({
        "model": {"backbone": args.backbone},
        "dataset": {"train_data_sources": [{"image_dir": str(args.images), "json_file": str(args.json)}],
                    "batch_size": args.batch_size, "workers": max(args.workers, 1), "num_classes": 2,
                    "augmentation": augmentation},
    })


def loader_images_per_second(cfg, workers: int, epochs: int) -> float:
    cfg.dataset.workers = workers
    loader = build_dataloader(cfg, "train", seed=0, log=print if workers == 0 else None)
    if workers == 0:
        loader = build_dataloader(cfg, "train", dataset=loader.dataset, seed=0, log=None)
    images, seconds = 0, 0.0
    for epoch in range(epochs):
        set_epoch(loader, epoch)
        start = None
        for batch, _ in loader:
            if start is None:  # the first batch pays for worker start-up and prefetch
                start = time.perf_counter()
                continue
            images += len(batch)
        seconds += time.perf_counter() - start
    return images / seconds


def training_images_per_second(cfg, args: argparse.Namespace) -> float:
    from trainers.rtdetr.model import build_criterion, build_model

    device = torch.device(args.device)
    num_classes = int(cfg.dataset.num_classes)
    model = build_model(cfg.model, num_classes).to(device).train()
    criterion = build_criterion(cfg.model, num_classes).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
    cfg.dataset.workers = 0
    cfg.dataset.augmentation.multi_scales = []
    images, targets = next(iter(build_dataloader(cfg, "train", seed=0, log=None)))
    images = images.to(device)
    targets = [{k: (v.to(device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets]

    def step():
        outputs = model(images, targets)
        loss = sum(criterion(outputs, targets).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up: allocations, cudnn autotune
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    return args.steps * len(images) / (time.perf_counter() - start)


def main() -> int:
    args = parse_args()
    cfg = spec(args)
    scales = "off" if args.no_multi_scale else f"{cfg.dataset.augmentation.multi_scales}"
    print(f"data: {args.json} | {args.size}x{args.size}, batch {args.batch_size}, multi-scale {scales}, "
          f"torch {torch.__version__}, {len(os.sched_getaffinity(0))} CPUs")
    single = loader_images_per_second(spec(args), 0, 1)
    print(f"loader, main process only:   {single:7.1f} images/s")
    loader = loader_images_per_second(spec(args), args.workers, args.epochs) if args.workers > 0 else single
    print(f"loader, {args.workers} workers:            {loader:7.1f} images/s")
    if args.no_model:
        return 0
    try:
        trained = training_images_per_second(cfg, args)
    except ImportError as error:
        print(f"training step: model not available ({error})")
        return 1
    ratio = loader / trained
    print(f"training step ({args.backbone}, {args.device}): {trained:7.2f} images/s")
    print(f"loader / training = {ratio:.1f}x (goal >= 3x): {'OK' if ratio >= 3 else 'LOADER TOO SLOW'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
