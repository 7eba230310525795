"""``quantize``: a checkpoint -> ONNX (FP32) -> ONNX Runtime static int8 (QDQ), with mAP and latency both ways.

Files in ``quantize.results_dir`` (default ``<results_dir>/quantize/``):
``model_fp32.onnx`` (the export, batch 1), ``model_int8.onnx`` and
``quantize.json`` (val_mAP50 and batch-1 latency before and after, settings).

NVIDIA's quantize runs on a GPU (torchao / ModelOpt); this is the CPU path, so
``quantize.backend`` / ``device`` / ``mode`` are reported as replaced, not
silently ignored.  ``quantize.backend_kwargs`` tunes ONNX Runtime:
``per_channel`` (True), ``reduce_range`` (False), ``quant_format`` (QOperator,
or QDQ), ``calibration_images`` (64), ``optimize`` (True: ONNX Runtime's
pre-processing, shape inference and graph optimisation, first),
``latency_iterations`` (50).

Why QOperator by default: on these CPUs (tiny preset, 96x96, batch 1, one
thread; benchmarks/bench_quantize.py) QDQ ran at 0.8-1.0x the FP32 speed while
QOperator ran 1.6-2.3x faster, both within 0.004 val_mAP50 of FP32.  QDQ stays
available (``quant_format: QDQ``) for runtimes that consume Q/DQ pairs (TensorRT).
"""
from __future__ import annotations

import copy
import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from trainers.atomic_write import write_text_atomic
from trainers.errors import UserError

from .layers import layer_dicts, plan_nodes, quantizable_count

Log = Callable[[str], None]
RESULTS_FILE = "quantize.json"
KNOWN_KWARGS = {"per_channel": True, "reduce_range": False, "quant_format": "QOperator", "calibration_images": 64,
                "optimize": True, "latency_iterations": 50}
ALGORITHMS = {"minmax": "MinMax", "max": "MinMax", "entropy": "Entropy"}


@dataclass
class QuantizeResult:
    """Paths and numbers of one quantization (``fp32`` / ``int8``: val_mAP50 and batch-1 latency in ms)."""

    fp32_onnx: str
    int8_onnx: str
    results_file: str
    fp32: Dict[str, float] = field(default_factory=dict)
    int8: Dict[str, float] = field(default_factory=dict)
    settings: Dict[str, Any] = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        return self.fp32["latency_ms"] / self.int8["latency_ms"]

    @property
    def map50_drop(self) -> float:
        return self.fp32["val_mAP50"] - self.int8["val_mAP50"]

    def line(self) -> str:
        return (f"quantize: {self.int8_onnx}: val_mAP50 {self.fp32['val_mAP50']:.4f} -> {self.int8['val_mAP50']:.4f} "
                f"(drop {self.map50_drop:+.4f}), batch-1 latency {self.fp32['latency_ms']:.2f} -> "
                f"{self.int8['latency_ms']:.2f} ms ({self.speedup:.2f}x)")


def quantize_dir(cfg) -> Path:
    return Path(cfg.quantize.results_dir) if cfg.quantize.results_dir else Path(cfg.results_dir or ".") / "quantize"


def backend_options(quantize_cfg) -> Dict[str, Any]:
    kwargs = dict(quantize_cfg.backend_kwargs or {})
    unknown = sorted(set(kwargs) - set(KNOWN_KWARGS))
    if unknown:
        raise UserError(f"quantize.backend_kwargs: unknown {', '.join(unknown)} for ONNX Runtime; known: "
                        f"{', '.join(KNOWN_KWARGS)}")
    options = {**KNOWN_KWARGS, **kwargs}
    if str(options["quant_format"]) not in ("QDQ", "QOperator"):
        raise UserError(f"quantize.backend_kwargs.quant_format: {options['quant_format']!r}; use QDQ or QOperator")
    algorithm = str(quantize_cfg.algorithm)
    if algorithm not in ALGORITHMS:
        raise UserError(f"quantize.algorithm: {algorithm} is a GPU weight-only algorithm; ONNX Runtime static "
                        f"quantization calibrates with {', '.join(ALGORITHMS)}")
    return options


def _input_size(cfg) -> Tuple[int, int]:
    size = list(cfg.dataset.augmentation.eval_spatial_size)
    return int(size[0]), int(size[1])


def _notices(quantize_cfg, log: Log) -> None:
    replaced = [f"{k} {getattr(quantize_cfg, k)}" for k, cpu in (("backend", None), ("mode", "static_ptq"),
                                                                   ("device", "cpu"))
                if cpu is None or str(getattr(quantize_cfg, k)) != cpu]
    log(f"notice: quantize on the CPU with ONNX Runtime static int8 ({', '.join(replaced)} are NVIDIA's GPU path)")


def quantize_onnx(fp32_path: Path, int8_path: Path, reader, quantize_cfg, options: Dict[str, Any], log: Log
                  ) -> Dict[str, Any]:
    """Static int8 of ``fp32_path`` into ``int8_path``; returns what was done (node counts, settings)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(dir=int8_path.parent) as scratch:
        source = fp32_path
        if options["optimize"]:
            source = Path(scratch) / "pre.onnx"
            quant_pre_process(str(fp32_path), str(source), skip_symbolic_shape=True)
        graph = onnx.load(str(source)).graph
        plan = plan_nodes(graph.node, list(quantize_cfg.layers or []), list(quantize_cfg.skip_names or []))
        log(f"quantize: {plan.summary(quantizable_count(graph.node))} (float: {', '.join(plan.float_modules)}"
            f"{', skip_names' if quantize_cfg.skip_names else ''})")
        out = Path(scratch) / "int8.onnx"
        quantize_static(
            str(source), str(out), reader,
            quant_format=QuantFormat.QDQ if options["quant_format"] == "QDQ" else QuantFormat.QOperator,
            op_types_to_quantize=["Conv", "MatMul", "Gemm"], per_channel=bool(options["per_channel"]),
            reduce_range=bool(options["reduce_range"]), activation_type=QuantType.QUInt8 if options[
                "quant_format"] == "QOperator" else QuantType.QInt8, weight_type=QuantType.QInt8,
            nodes_to_quantize=plan.nodes_to_quantize, nodes_to_exclude=plan.nodes_to_exclude,
            calibrate_method=getattr(CalibrationMethod, ALGORITHMS[str(quantize_cfg.algorithm)]),
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        model = onnx.load(str(out))
        # the runtime predictor reads classes and input size from the metadata; keep the export's
        del model.metadata_props[:]
        model.metadata_props.extend(onnx.load(str(fp32_path)).metadata_props)
        int8_path.parent.mkdir(parents=True, exist_ok=True)
        from trainers.atomic_write import write_atomic

        write_atomic(int8_path, lambda handle: handle.write(model.SerializeToString()))
    return {"excluded_nodes": len(plan.nodes_to_exclude),
            "selected_nodes": None if plan.nodes_to_quantize is None else len(plan.nodes_to_quantize)}


def measure(cfg, onnx_path: Path, iterations: int, threads: Optional[int] = None) -> Dict[str, float]:
    """val_mAP50 on dataset.val_data_sources and batch-1 p50 latency (ms) of an exported model."""
    from trainers.rtdetr.benchmark import measure_latency
    from trainers.rtdetr.data import build_dataloader
    from trainers.rtdetr.data.build import coco_sources
    from trainers.rtdetr.data.categories import CategoryMap
    from trainers.rtdetr.engine.coco_eval import coco_metrics
    from trainers.rtdetr.engine.evaluation import predict_coco_runtime
    from trainers.rtdetr.runtime import load_predictor

    with load_predictor(onnx_path, num_threads=threads) as predictor:
        info = predictor.info
        category_map = CategoryMap(info.category_ids, info.class_names)
        eval_cfg = copy.deepcopy(cfg)
        eval_cfg.dataset.augmentation.eval_spatial_size = [int(v) for v in info.input_size]
        loader = build_dataloader(eval_cfg, "val", category_map=category_map, log=None)
        detections, image_ids = predict_coco_runtime(predictor, loader, category_map.category_ids)
        latency = measure_latency(predictor, 1, tuple(info.input_size), warmup=5, iterations=iterations)
    metrics = coco_metrics(coco_sources(cfg, "val")[0].json_file, detections, image_ids=image_ids)
    return {"val_mAP50": float(metrics["val_mAP50"]), "val_mAP": float(metrics["val_mAP"]),
            "latency_ms": float(latency["p50_ms"])}


def quantize_model(model_path, cfg, log: Log = print, threads: Optional[int] = None) -> QuantizeResult:
    """For ``tao-automl quantize`` and a sweep's winner: ``model_path`` (.pth or an exported .onnx) -> int8 ONNX.

    Returns a :class:`QuantizeResult` (paths, val_mAP50 and latency before and after) and writes
    ``quantize.json`` beside the models.
    """
    from .calibration import CalibrationReader

    quantize_cfg = cfg.quantize
    options = backend_options(quantize_cfg)
    _notices(quantize_cfg, log)
    out_dir = quantize_dir(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = Path(str(model_path))
    if not model_path.is_file():
        raise UserError(f"quantize.model_path: {model_path}: file not found")
    if not cfg.dataset.quant_calibration_data_sources.image_dir:   # before the export, which takes a while
        raise UserError("dataset.quant_calibration_data_sources.image_dir: not set; give a folder of representative "
                        "images (a few dozen training or validation images)")
    started = time.perf_counter()
    if model_path.suffix.lower() == ".onnx":
        fp32_path = model_path
    else:
        from trainers.rtdetr.export.onnx_export import export_onnx

        height, width = _input_size(cfg)
        fp32_path = out_dir / "model_fp32.onnx"
        export_onnx(model_path, fp32_path, input_height=height, input_width=width, batch_size=1, log=log)
    import onnx

    fp32_size = _onnx_input_size(onnx.load(str(fp32_path)))
    reader = CalibrationReader(cfg, fp32_size, max_images=int(options["calibration_images"]))
    int8_path = out_dir / "model_int8.onnx"
    done = quantize_onnx(fp32_path, int8_path, reader, quantize_cfg, options, log)
    result = QuantizeResult(fp32_onnx=str(fp32_path), int8_onnx=str(int8_path),
                            results_file=str(out_dir / RESULTS_FILE),
                            settings={**options, **done, "algorithm": str(quantize_cfg.algorithm),
                                      "calibration_images_used": reader.count,
                                      "layers": layer_dicts(quantize_cfg.layers or []),
                                      "skip_names": list(quantize_cfg.skip_names or []),
                                      "quantize_seconds": time.perf_counter() - started})
    iterations = int(options["latency_iterations"])
    result.fp32 = measure(cfg, fp32_path, iterations, threads)
    result.int8 = measure(cfg, int8_path, iterations, threads)
    write_text_atomic(result.results_file, json.dumps({**asdict(result), "speedup": result.speedup,
                                                       "val_mAP50_drop": result.map50_drop}, indent=2))
    log(result.line())
    return result


def _onnx_input_size(model) -> Tuple[int, int]:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not dims[2].dim_value or not dims[3].dim_value:
        raise UserError("quantize.model_path: the ONNX input must be [B, 3, H, W] with a fixed H x W "
                        "(a file from tao-automl export)")
    return int(dims[2].dim_value), int(dims[3].dim_value)


def run_quantize(cfg, log: Log = print) -> QuantizeResult:
    path = str(cfg.quantize.model_path or "")
    if not path or path == "???":
        raise UserError("quantize.model_path: not set; give a checkpoint (.pth) or an exported .onnx")
    return quantize_model(path, cfg, log=log)
