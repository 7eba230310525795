"""Batch-1 inference on CPU: our PyTorch eager forward vs ONNX Runtime vs transformers' eager model.

The three hold the same weights: a transformers ``RTDetrForObjectDetection``
(RT-DETR R18: ResNet-18-vd, hidden 256, 3 decoder layers, 300 queries, 80
classes, random weights, built offline) is imported into our checkpoint with
``import-weights`` and exported with ``tao-automl export``'s code.  Each size
(640 and a small one) is timed in rounds that run every side once, so machine
noise hits all alike; the median of the rounds is reported.

Sides:
- ``ours eager``: ``model(images)``, the model as trained (no fusion);
- ``ours deploy``: the PyTorch predictor (RepVGG/BatchNorm fused, channels-last, top-k included);
- ``onnxruntime``: the exported .onnx (top-k included), ORT_ENABLE_ALL, same thread count;
- ``transformers``: ``RTDetrForObjectDetection(pixel_values)`` in eval mode.

    python benchmarks/bench_inference.py [--threads 2] [--rounds 10] [--sizes 640 320]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

R18 = dict(backbone=dict(embedding_size=64, hidden_sizes=[64, 128, 256, 512], depths=[2, 2, 2, 2],
                         layer_type="basic", out_indices=[2, 3, 4]),
           model=dict(encoder_hidden_dim=256, d_model=256, encoder_ffn_dim=1024, decoder_ffn_dim=1024,
                      encoder_attention_heads=8, decoder_attention_heads=8, decoder_layers=3, num_queries=300,
                      num_denoising=100, num_labels=80, decoder_in_channels=[256] * 3, hidden_expansion=0.5))


def build_models(folder: Path):
    """The transformers model and our checkpoint with the same weights."""
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrResNetConfig

    from trainers.rtdetr.weights import import_weights

    backbone = RTDetrResNetConfig(**R18["backbone"])
    in_channels = [backbone.hidden_sizes[i - 1] for i in backbone.out_indices]
    torch.manual_seed(0)
    hf = RTDetrForObjectDetection(RTDetrConfig(backbone_config=backbone, encoder_in_channels=in_channels,
                                               **R18["model"])).eval()
    # transformers initialises BatchNorm scales near 0 (std 0.01): activations then vanish through the encoder,
    # every query scores alike and top-k ties decide the output.  Unit scales give a working random network.
    with torch.no_grad():
        for module in hf.modules():
            if "BatchNorm" in type(module).__name__ and getattr(module, "weight", None) is not None:
                module.weight.fill_(1.0)
        # Spread the query-selection scores too: near-tied encoder scores let runtimes differing by 1e-6 pick
        # different queries at the top-k cut, and the export's ONNX Runtime check would compare other detections.
        hf.model.enc_score_head.weight.mul_(20.0)
    hf.save_pretrained(folder / "hf", safe_serialization=True)
    import_weights("hf", str(folder / "hf"), folder / "r18.pth")
    return hf, folder / "r18.pth"


def sides_for(size: int, hf, checkpoint: Path, folder: Path, threads: int):
    """name -> a zero-argument callable running one batch-1 forward at ``size``."""
    from trainers.rtdetr import load_model
    from trainers.rtdetr.export import export_onnx
    from trainers.rtdetr.runtime import load_predictor

    images = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(size))
    array = images.numpy()
    eager = load_model(checkpoint)
    deploy = load_predictor(checkpoint)
    report = export_onnx(checkpoint, folder / f"r18_{size}.onnx", input_height=size, input_width=size, log=None)
    print(f"  {report.line()}")
    onnx = load_predictor(report.onnx_file, num_threads=threads)

    @torch.inference_mode()
    def ours_eager():
        eager(images)

    @torch.inference_mode()
    def transformers_eager():
        hf(pixel_values=images)

    return {"ours eager": ours_eager, "ours deploy": lambda: deploy.predict(array),
            "onnxruntime": lambda: onnx.predict(array), "transformers": transformers_eager}


def time_rounds(sides, rounds: int, warmup: int = 2):
    for _ in range(warmup):
        for run in sides.values():
            run()
    times = {name: [] for name in sides}
    for _ in range(rounds):
        for name, run in sides.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="*", default=[640, 320])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        folder = Path(tmp)
        hf, checkpoint = build_models(folder)
        table = []
        for size in args.sizes:
            print(f"{size}x{size}, batch 1, {args.threads} threads, median of {args.rounds} rounds")
            medians = time_rounds(sides_for(size, hf, checkpoint, folder, args.threads), args.rounds)
            table.append((size, medians))
    print()
    print(f"{'size':>5}  {'side':<13} {'ms':>8}  {'ours eager / side':>17}")
    for size, medians in table:
        base = medians["ours eager"]
        for name, seconds in medians.items():
            print(f"{size:>5}  {name:<13} {seconds * 1000:>8.1f}  {base / seconds:>16.2f}x")


if __name__ == "__main__":
    np.random.seed(0)
    main()
