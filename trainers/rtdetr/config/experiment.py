"""The root of an RT-DETR spec: every section of NVIDIA's ``ExperimentConfig`` plus ours.

Section order follows NVIDIA's spec templates, so generated templates read like
theirs.  ``benchmark`` and ``automl`` are our additions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

from .actions import BenchmarkConfig, EvaluateConfig, ExportConfig, InferenceConfig
from .automl import AutomlConfig
from .dataset import DatasetConfig
from .deploy import GenTrtEngineConfig, QuantizeConfig
from .distill import DistillConfig
from .fields import param, section
from .model import ModelConfig
from .train import TrainConfig


@dataclass
class WandBConfig:
    """Weights & Biases logging (accepted for TAO compatibility; we log to MLflow)."""

    enable: bool = param(True, description="Log to Weights & Biases.")
    project: str = param("TAO Toolkit", description="The W&B project.")
    entity: str = param("", description="The W&B entity.")
    group: str = param("", description="The W&B group.")
    tags: List[str] = param(["tao-toolkit"], automl_enabled=False, description="The W&B tags.")
    reinit: bool = param(False, description="Allow several runs in one process.")
    sync_tensorboard: bool = param(False, description="Sync TensorBoard logs.")
    save_code: bool = param(False, description="Save the code with the run.")
    name: str = param("TAO Toolkit Training", description="The run name.")
    run_id: str = param("", description="Resume this W&B run.")


@dataclass
class ExperimentConfig:
    """A whole RT-DETR experiment spec."""

    model_name: str = param("", description="The model name.")
    encryption_key: str = param("", description="Key for encrypted model files (unused by our formats).")
    results_dir: str = param("", description="The root folder for every action's results.")
    wandb: WandBConfig = section(WandBConfig, description="Weights & Biases logging.")
    model: ModelConfig = section(ModelConfig, description="The RT-DETR architecture and losses.")
    dataset: DatasetConfig = section(DatasetConfig, description="Data sources, loader and augmentation.")
    train: TrainConfig = section(TrainConfig, description="The training run.")
    evaluate: EvaluateConfig = section(EvaluateConfig, description="Evaluation.")
    inference: InferenceConfig = section(InferenceConfig, description="Inference.")
    export: ExportConfig = section(ExportConfig, description="ONNX export.")
    gen_trt_engine: GenTrtEngineConfig = section(GenTrtEngineConfig, description="TensorRT engine build.")
    quantize: QuantizeConfig = section(QuantizeConfig, required=True, description="Post-training quantization.")
    distill: DistillConfig = section(DistillConfig, description="Knowledge distillation.")
    benchmark: BenchmarkConfig = section(BenchmarkConfig, description="Latency benchmark (ours).")
    automl: AutomlConfig = section(AutomlConfig, description="Edits to the AutoML search space (ours).")
