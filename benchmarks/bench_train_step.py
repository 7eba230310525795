"""One training step (forward, loss, backward, AdamW step) and the eval forward: ours vs transformers.

Both models hold the same weights (ours imported from the transformers one
through `import-weights`), see the same batch and targets, and run
alternately in one process so that machine noise hits both alike.  Peak
memory of a training step is measured in a fresh subprocess per side.

    python benchmarks/bench_train_step.py [--steps 15] [--threads 2]

Prints median seconds per step and the ratio transformers / ours for the
tiny config and for resnet_18 at 320x320 with batch 4.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHANNELS_LAST = False   # --channels-last
CONFIGS = {
    "tiny": dict(backbone=dict(embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                               layer_type="basic", out_indices=[2, 3, 4]),
                 model=dict(encoder_hidden_dim=32, d_model=32, encoder_ffn_dim=64, decoder_ffn_dim=64,
                            encoder_attention_heads=2, decoder_attention_heads=2, decoder_layers=2, num_queries=10,
                            num_denoising=4, num_labels=3, decoder_in_channels=[32] * 3, hidden_expansion=0.5),
                 size=128, batch=2),
    "r18_320_b4": dict(backbone=dict(embedding_size=64, hidden_sizes=[64, 128, 256, 512], depths=[2, 2, 2, 2],
                                     layer_type="basic", out_indices=[2, 3, 4]),
                       model=dict(encoder_hidden_dim=256, d_model=256, encoder_ffn_dim=1024, decoder_ffn_dim=1024,
                                  encoder_attention_heads=8, decoder_attention_heads=8, decoder_layers=3,
                                  num_queries=300, num_denoising=100, num_labels=80, decoder_in_channels=[256] * 3,
                                  hidden_expansion=0.5),
                       size=320, batch=4),
}


def build_pair(name: str, folder: Path):
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrResNetConfig

    from trainers.rtdetr import load_model
    from trainers.rtdetr.weights import import_weights

    spec = CONFIGS[name]
    backbone = RTDetrResNetConfig(**spec["backbone"])
    in_channels = [backbone.hidden_sizes[i - 1] for i in backbone.out_indices]
    torch.manual_seed(0)
    hf = RTDetrForObjectDetection(RTDetrConfig(backbone_config=backbone, encoder_in_channels=in_channels,
                                               **spec["model"]))
    hf.save_pretrained(folder / name, safe_serialization=True)
    import_weights("hf", str(folder / name), folder / f"{name}.pth")
    # ours as the trainer runs it: channels-last on CUDA only (trainer.py), so NCHW here unless asked
    ours = load_model(folder / f"{name}.pth")
    return hf, (ours.to_channels_last() if CHANNELS_LAST else ours), spec


def batch_for(spec, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(spec["batch"], 3, spec["size"], spec["size"], generator=gen)
    classes = spec["model"]["num_labels"]
    targets = []
    for _ in range(spec["batch"]):
        n = 3
        centre = torch.rand(n, 2, generator=gen) * 0.6 + 0.2
        wh = torch.rand(n, 2, generator=gen) * 0.3 + 0.05
        targets.append({"labels": torch.randint(0, classes, (n,), generator=gen), "boxes": torch.cat([centre, wh], 1)})
    return images, targets


def make_steps(hf, ours, spec, with_eval: bool = True):
    from trainers.rtdetr.config.model import ModelConfig
    from trainers.rtdetr.model import build_criterion

    criterion = build_criterion(ModelConfig(num_queries=spec["model"]["num_queries"],
                                            num_select=spec["model"]["num_queries"]), spec["model"]["num_labels"])
    # The same optimizer on both sides: fused AdamW, transformers' Trainer default (optim="adamw_torch_fused"
    # for torch >= 2.8) and about 5x faster on CPU than the per-parameter loop torch picks for CPU tensors.
    hf_opt = torch.optim.AdamW(hf.parameters(), lr=1e-5, fused=True) if hf is not None else None
    our_opt = torch.optim.AdamW(ours.parameters(), lr=1e-5, fused=True) if ours is not None else None
    images, targets = batch_for(spec)
    hf_targets = [{"class_labels": t["labels"], "boxes": t["boxes"]} for t in targets]

    def hf_train():
        hf.train()
        loss = hf(pixel_values=images, labels=hf_targets).loss
        hf_opt.zero_grad(set_to_none=True)
        loss.backward()
        hf_opt.step()

    def our_train():
        ours.train()
        loss = sum(criterion(ours(images, targets), targets).values())
        our_opt.zero_grad(set_to_none=True)
        loss.backward()
        our_opt.step()

    if not with_eval:
        return {"train": (hf_train, our_train)}
    # Each side's eval forward as its own inference path runs it: ours folds RepVGG branches and
    # BatchNorms into the convs and uses channels-last memory (tao-automl evaluate/inference do the same).
    deployed = copy.deepcopy(ours).fuse_for_deploy().to(memory_format=torch.channels_last)
    images_cl = images.contiguous(memory_format=torch.channels_last)

    @torch.no_grad()
    def hf_eval():
        hf.eval()
        hf(pixel_values=images)

    @torch.no_grad()
    def our_eval():
        deployed(images_cl)

    return {"train": (hf_train, our_train), "eval": (hf_eval, our_eval)}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _rss_mib() -> float:
    """Current resident set size (VmRSS) of this process in MiB; Linux /proc."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class RssSampler:
    """Samples VmRSS every ``interval`` seconds in a background thread; ``peak`` is the highest seen.

    ru_maxrss cannot serve: it is a lifetime maximum, usually already reached
    while loading the model, so it hides what the training steps add.
    """

    def __init__(self, interval: float = 0.002):
        self.interval, self.peak = interval, _rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mib())
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mib())


def peak_memory_child(folder: str, name: str, side: str, steps: int) -> None:
    """Run in a fresh subprocess that loads one side only: RSS (MiB) just before and at the peak of training steps."""
    import gc

    from transformers import RTDetrForObjectDetection

    from trainers.rtdetr import load_model

    spec = CONFIGS[name]
    if side == "transformers":
        hf, ours = RTDetrForObjectDetection.from_pretrained(Path(folder) / name), None
    else:
        hf, ours = None, load_model(Path(folder) / f"{name}.pth")
        ours = ours.to_channels_last() if CHANNELS_LAST else ours
    step = make_steps(hf, ours, spec, with_eval=False)["train"][0 if side == "transformers" else 1]
    gc.collect()
    before = _rss_mib()
    with RssSampler() as sampler:
        for _ in range(steps):
            step()
    print(json.dumps({"before_mib": before, "peak_mib": sampler.peak}))


def peak_memory(folder: Path, name: str, side: str, steps: int) -> dict:
    layout = ["--channels-last"] if CHANNELS_LAST else []
    out = subprocess.run([sys.executable, __file__, "--memory-child", str(folder), name, side, "--steps", str(steps),
                          *layout],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS))
    parser.add_argument("--memory-child", nargs=3, metavar=("FOLDER", "CONFIG", "SIDE"))
    parser.add_argument("--channels-last", action="store_true",
                        help="train ours channels-last (the trainer does on CUDA only: on CPU its gradients are off)")
    args = parser.parse_args()
    global CHANNELS_LAST
    CHANNELS_LAST = args.channels_last
    torch.set_num_threads(args.threads)
    if args.memory_child:
        peak_memory_child(*args.memory_child, steps=args.steps)
        return
    layout = "channels_last (--channels-last)" if CHANNELS_LAST else "NCHW, as the trainer runs it on CPU"
    print(f"train: ours {layout}; transformers in its default layout (NCHW)")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            hf, ours, spec = build_pair(name, Path(tmp))
            for kind, (hf_fn, our_fn) in make_steps(hf, ours, spec).items():
                hf_fn(), our_fn()  # warm-up
                hf_times, our_times = [], []
                for _ in range(args.steps):
                    hf_times.append(timed(hf_fn))
                    our_times.append(timed(our_fn))
                hf_med, our_med = statistics.median(hf_times), statistics.median(our_times)
                print(f"{name:12s} {kind:5s}  transformers {hf_med * 1000:8.1f} ms  ours {our_med * 1000:8.1f} ms  "
                      f"speed-up x{hf_med / our_med:.2f}")
            mem = {side: peak_memory(Path(tmp), name, side, 3) for side in ("transformers", "ours")}
            growth = {side: m["peak_mib"] - m["before_mib"] for side, m in mem.items()}
            print(f"{name:12s} train peak RSS  transformers {mem['transformers']['peak_mib']:.0f} MiB "
                  f"(+{growth['transformers']:.0f} in steps)  ours {mem['ours']['peak_mib']:.0f} MiB "
                  f"(+{growth['ours']:.0f} in steps)  growth ratio ours/transformers "
                  f"{growth['ours'] / max(growth['transformers'], 1e-9):.2f}")

if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
