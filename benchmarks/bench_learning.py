"""Learning speed: val_mAP50 against training wall time, ours vs transformers' RTDetrForObjectDetection.

Both sides are the tiny preset (tests/learning/tiny_preset.py: resnet_18-shaped
vd backbone, 128 wide, 3 decoder layers, 50 queries, 50 denoising queries) at
128x128, trained from scratch (each with its own initialisation, same seed) on
the drawn shapes set (tests/learning/synthetic_shapes.py, sparse category ids)
with the same batches in the same order (our data pipeline, batch 8), the same
fused AdamW and parameter groups (norms and biases without weight decay), warmup + cosine
schedule and gradient clipping.  Both are scored every ``--eval-every`` steps by
the same post-processor and pycocotools evaluation (engine/coco_eval.py).

The two runs are interleaved in chunks of ``--eval-every`` steps in one process
so that load from other processes hits both alike.  Wall time counts the
training steps only (forward, loss, backward, clip, optimizer and lr step);
loading batches and evaluating are timed apart, being the same work for both.

    python benchmarks/bench_learning.py [--steps 600] [--eval-every 50] [--threads 2]
    python benchmarks/bench_learning.py --steps 100 --eval-every 50      # quick look

Prints a table (steps, wall seconds, val_mAP50 per side), the wall time each
side needed to reach ``--target`` (0.79) and ours / transformers.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.learning.synthetic_shapes import CATEGORIES, write_shapes_dataset  # noqa: E402
from tests.learning import tiny_preset  # noqa: E402

SIZE = 128
BATCH = 8


def transformers_model(num_labels: int) -> nn.Module:
    """RTDetrForObjectDetection at the tiny preset's size (BatchNorm training, as ours with freeze_norm false)."""
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrResNetConfig

    model_spec = tiny_preset.MODEL
    width = model_spec["hidden_dim"]
    backbone = RTDetrResNetConfig(embedding_size=64, hidden_sizes=[64, 128, 256, 512], depths=[2, 2, 2, 2],
                                  layer_type="basic", out_indices=[2, 3, 4])
    config = RTDetrConfig(backbone_config=backbone, encoder_in_channels=[128, 256, 512], encoder_hidden_dim=width,
                          d_model=width, encoder_ffn_dim=model_spec["dim_feedforward"],
                          decoder_ffn_dim=model_spec["dim_feedforward"],
                          encoder_attention_heads=model_spec["nheads"], decoder_attention_heads=model_spec["nheads"],
                          decoder_layers=model_spec["dec_layers"], num_queries=model_spec["num_queries"],
                          num_denoising=model_spec["dn_number"], num_labels=num_labels,
                          decoder_in_channels=[width] * 3, hidden_expansion=model_spec["expansion"],
                          freeze_backbone_batch_norms=False)
    return RTDetrForObjectDetection(config)


class TransformersAsOurs(nn.Module):
    """transformers' model behind our interface, so one loop, post-processor and evaluator serve both."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images, targets=None):
        out = self.model(pixel_values=images)
        return {"pred_logits": out.logits, "pred_boxes": out.pred_boxes}

    def loss(self, images, targets) -> torch.Tensor:
        labels = [{"class_labels": t["labels"], "boxes": t["boxes"]} for t in targets]
        return self.model(pixel_values=images, labels=labels).loss


class Side:
    """One model under training: its optimizer, schedule, clock and eval curve."""

    def __init__(self, name: str, model: nn.Module, loss_fn, backbone_prefix: str, steps: int):
        from trainers.rtdetr.engine.optim import WarmupDecaySchedule, build_param_groups

        self.name, self.model, self.loss_fn = name, model, loss_fn
        groups = build_param_groups(model, lr=tiny_preset.LR, lr_backbone=tiny_preset.LR,
                                    weight_decay=tiny_preset.WEIGHT_DECAY, backbone_prefix=backbone_prefix)
        # fused: transformers' Trainer default (adamw_torch_fused) and ~5x faster on CPU than the per-parameter loop
        self.optimizer = torch.optim.AdamW(groups, lr=tiny_preset.LR, betas=(0.9, 0.999),
                                           weight_decay=tiny_preset.WEIGHT_DECAY, fused=True)
        self.schedule = WarmupDecaySchedule(self.optimizer, kind="cosine", iters_per_epoch=steps, num_epochs=1,
                                            warmup_steps=tiny_preset.WARMUP_STEPS)
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.train_seconds, self.eval_seconds, self.steps = 0.0, 0.0, 0
        self.curve: List[Dict[str, float]] = []
        self.last_loss = math.nan

    def step(self, images: torch.Tensor, targets) -> None:
        started = time.perf_counter()
        self.model.train()
        loss = self.loss_fn(images, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trainable, tiny_preset.CLIP_GRAD_NORM)
        self.optimizer.step()
        self.schedule.step()
        self.train_seconds += time.perf_counter() - started
        self.steps += 1
        self.last_loss = float(loss.detach())

    def evaluate(self, val_loader, ground_truth, category_ids) -> float:
        from trainers.rtdetr.engine.evaluation import evaluate_model
        from trainers.rtdetr.model import PostProcessor

        started = time.perf_counter()
        metrics = evaluate_model(self.model, PostProcessor(num_select=tiny_preset.NUM_QUERIES), val_loader,
                                 ground_truth, category_ids, torch.device("cpu"), "fp32")
        self.eval_seconds += time.perf_counter() - started
        self.curve.append({"steps": self.steps, "seconds": self.train_seconds, "val_mAP50": metrics["val_mAP50"],
                           "loss": self.last_loss})
        return metrics["val_mAP50"]

    def seconds_to(self, target: float) -> Optional[float]:
        reached = [point["seconds"] for point in self.curve if point["val_mAP50"] >= target]
        return reached[0] if reached else None


def batches(loader, start_epoch: int = 0):
    """Endless batches of the training loader, epoch after epoch (the order is fixed by seed and epoch)."""
    from trainers.rtdetr.data import set_epoch

    epoch = start_epoch
    while True:
        set_epoch(loader, epoch)
        yield from loader
        epoch += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--train-images", type=int, default=512)
    parser.add_argument("--val-images", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--target", type=float, default=0.79)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from automl.spec import load_spec
    from trainers.rtdetr.data import build_category_map, build_dataloader
    from trainers.rtdetr.model import build_criterion, build_model

    with tempfile.TemporaryDirectory() as tmp:
        data = write_shapes_dataset(Path(tmp) / "shapes", args.train_images, args.val_images, size=SIZE,
                                    seed=args.seed)
        spec = tiny_preset.shapes_spec(data, Path(tmp) / "results", size=SIZE, epochs=1, batch_size=BATCH,
                                       seed=args.seed)
        cfg = load_spec("rtdetr", tiny_preset.write_spec(spec, Path(tmp) / "spec.yaml"), ["dataset.workers=1"],
                        "train")
        category_map = build_category_map(cfg, log=None)
        num_classes = len(category_map)
        # One loader per side (a loader with persistent workers serves one iterator at a time); both follow
        # the same seed, so they yield identical batches (order and flips are drawn from seed, epoch and item).
        train_loaders = {name: build_dataloader(cfg, "train", category_map=category_map, log=None)
                         for name in ("ours", "transformers")}
        val_loader = build_dataloader(cfg, "val", category_map=category_map, log=None)
        ground_truth, category_ids = str(data["val"]), list(category_map.category_ids)

        torch.manual_seed(args.seed)
        ours_model = build_model(cfg.model, num_classes)
        criterion = build_criterion(cfg.model, num_classes)
        ours = Side("ours", ours_model, lambda im, tg: sum(criterion(ours_model(im, tg), tg).values()),
                    "backbone.", args.steps)
        torch.manual_seed(args.seed)
        hf_model = TransformersAsOurs(transformers_model(num_labels=num_classes))
        hf = Side("transformers", hf_model, hf_model.loss, "model.model.backbone.", args.steps)
        sides = [ours, hf]
        params = {s.name: sum(p.numel() for p in s.model.parameters()) for s in sides}
        print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, interop {torch.get_num_interop_threads()}"
              f", cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}; {args.train_images} train / "
              f"{args.val_images} val images {SIZE}x{SIZE}, classes {[c for c, _ in CATEGORIES]}, batch {BATCH}, "
              f"{args.steps} steps; parameters ours {params['ours'] / 1e6:.2f}M, "
              f"transformers {params['transformers'] / 1e6:.2f}M", flush=True)

        streams = {name: batches(loader) for name, loader in train_loaders.items()}
        load_seconds = 0.0
        print(f"{'steps':>6} | {'ours s':>8} {'mAP50':>6} {'loss':>7} | {'transf. s':>9} {'mAP50':>6} {'loss':>7}",
              flush=True)
        done = 0
        while done < args.steps:
            chunk = min(args.eval_every, args.steps - done)
            for side in sides:
                for _ in range(chunk):
                    started = time.perf_counter()
                    images, targets = next(streams[side.name])
                    load_seconds += time.perf_counter() - started
                    side.step(images, targets)
                side.evaluate(val_loader, ground_truth, category_ids)
            done += chunk
            o, h = ours.curve[-1], hf.curve[-1]
            print(f"{done:6d} | {o['seconds']:8.1f} {o['val_mAP50']:6.3f} {o['loss']:7.3f} | "
                  f"{h['seconds']:9.1f} {h['val_mAP50']:6.3f} {h['loss']:7.3f}   (load {os.getloadavg()[0]:.1f})",
                  flush=True)

        print(f"step time: ours {ours.train_seconds / ours.steps * 1000:.0f} ms, transformers "
              f"{hf.train_seconds / hf.steps * 1000:.0f} ms (x{hf.train_seconds / ours.train_seconds:.2f}); "
              f"eval total ours {ours.eval_seconds:.0f}s, transformers {hf.eval_seconds:.0f}s; "
              f"batch loading {load_seconds:.0f}s (both)")
        best = {s.name: max(s.curve, key=lambda p: p["val_mAP50"]) for s in sides}
        for side in sides:
            point = best[side.name]
            print(f"{side.name:12s} best val_mAP50 {point['val_mAP50']:.3f} at step {point['steps']} "
                  f"({point['seconds']:.0f}s)")
        target = args.target
        ours_t, hf_t = ours.seconds_to(target), hf.seconds_to(target)
        if hf_t is None:   # transformers never got there: compare at the best it reached
            target = best["transformers"]["val_mAP50"]
            ours_t, hf_t = ours.seconds_to(target), hf.seconds_to(target)
            print(f"transformers did not reach {args.target}; comparing at its best, {target:.3f}")
        if target <= 0:
            print("neither side learned anything measurable yet; run more --steps")
        elif ours_t is None:
            print(f"time to val_mAP50 {target:.3f}: transformers {hf_t:.0f}s, ours did not reach it")
        else:
            ratio = ours_t / hf_t
            print(f"time to val_mAP50 {target:.3f}: ours {ours_t:.0f}s, transformers {hf_t:.0f}s, "
                  f"ours / transformers {ratio:.2f} (goal <= 0.60: {'met' if ratio <= 0.60 else 'not met'})")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
