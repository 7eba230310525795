"""``train.*``: the training run, the optimizer, EMA (NVIDIA TAO's keys).

Defaults, bounds and AutoML flags come from NVIDIA's packaged RT-DETR
``train.schema.json``.  ``active_when`` records which settings a value needs to
have any effect, so a sweep does not spend trials on it otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

from .fields import INF, param, section

LR_SCHEDULERS = ("MultiStep", "StepLR", "cosine")


@dataclass
class CudnnConfig:
    """cuDNN flags."""

    benchmark: bool = param(False, description="Let cuDNN pick the fastest kernels (non-deterministic).")
    deterministic: bool = param(True, description="Ask cuDNN for deterministic kernels.")


@dataclass
class EMAConfig:
    """Exponential moving average of the weights (used when train.enable_ema is true)."""

    decay: float = param(0.999, minimum=0.0, maximum=1.0, math_cond="> 0.0", automl_enabled=True,
                         active_when={"train.enable_ema": [True]},
                         description="The decay of the weight average.")
    every_n_steps: int = param(1, minimum=1, maximum=INF, active_when={"train.enable_ema": [True]},
                               description="Update the average every N optimizer steps.")
    validate_original_weights: bool = param(False, description="Validate the raw weights instead of the average.")
    cpu_offload: bool = param(False, description="Keep the average on the CPU.")


@dataclass
class OptimConfig:
    """Optimizer and learning-rate schedule."""

    optimizer: str = param("AdamW", enum=["AdamW", "SGD"], description="The optimizer.")
    monitor_name: str = param("val_loss", enum=["val_loss", "train_loss"],
                              description="The metric monitored by the scheduler and checkpoints.")
    lr: float = param(0.0001, minimum=0.0, maximum=1.0, math_cond="> 0.0", automl_enabled=True,
                      description="The initial learning rate for training the model, excluding the backbone.")
    lr_backbone: float = param(1e-05, minimum=0.0, maximum=1.0, math_cond="> 0.0", automl_enabled=True,
                               description="The initial learning rate of the backbone.")
    momentum: float = param(0.9, minimum=0.0, maximum=1.0, math_cond="> 0.0", automl_enabled=True,
                            active_when={"train.optim.optimizer": ["SGD"]},
                            description="The momentum of SGD (AdamW does not use it).")
    weight_decay: float = param(0.0001, minimum=0.0, maximum=1.0, math_cond="> 0.0", automl_enabled=True,
                                description="The weight decay coefficient.")
    lr_scheduler: str = param("MultiStep", enum=list(LR_SCHEDULERS),
                              description="The learning-rate schedule (cosine is ours).")
    lr_steps: List[int] = param([1000], automl_enabled=False,
                                active_when={"train.optim.lr_scheduler": ["MultiStep"]},
                                description="The steps at which MultiStep decays the learning rate.")
    lr_step_size: int = param(1000, minimum=1, maximum=10000, math_cond="> 0", automl_enabled=True,
                              active_when={"train.optim.lr_scheduler": ["StepLR"]},
                              description="The period of the StepLR decay, in steps.")
    lr_decay: float = param(0.1, minimum=0.0, maximum=1.0, math_cond="> 0.0", automl_enabled=True,
                            active_when={"train.optim.lr_scheduler": ["MultiStep", "StepLR"]},
                            description="The factor MultiStep and StepLR multiply the learning rate by.")
    warmup_steps: int = param(0, minimum=0, maximum=INF,
                              description="Linear learning-rate warm-up over this many optimizer steps.")


@dataclass
class TrainConfig:
    """The training run."""

    num_gpus: int = param(1, minimum=1, popular=True, description="The number of GPUs per node.")
    gpu_ids: List[int] = param([0], automl_enabled=False, popular=True, description="The GPU ids to use.")
    num_nodes: int = param(1, minimum=1, popular=True, description="The number of nodes.")
    seed: int = param(1234, minimum=-1, maximum=INF, description="The random seed (-1: do not seed).")
    cudnn: CudnnConfig = section(CudnnConfig, description="cuDNN flags.")
    num_epochs: int = param(10, minimum=1, maximum=INF, popular=True, description="The number of training epochs.")
    checkpoint_interval: int = param(1, minimum=1, popular=True,
                                     description="Save a checkpoint every N units (see checkpoint_interval_unit).")
    checkpoint_interval_unit: str = param("epoch", enum=["epoch", "step"],
                                          description="The unit of checkpoint_interval.")
    validation_interval: int = param(1, minimum=1, popular=True, description="Validate every N epochs.")
    resume_training_checkpoint_path: str = param("", description="Resume training from this checkpoint.")
    resume_with_spec_hyperparameters: bool = param(
        False, automl_enabled=False,
        description="On resume, use the spec's learning rates and weight decay instead of the checkpoint's "
                    "(population based training continues a donor's weights with new values).")
    results_dir: str = param("", description="Where training writes its results (default: <results_dir>/train).")
    freeze: List[str] = param([], automl_enabled=False, description="Names of modules whose weights are frozen.")
    pretrained_model_path: str = param("", description="Initialise the whole model from this checkpoint.")
    clip_grad_norm: float = param(0.1, math_cond="> 0.0", description="Clip the gradient norm to this value.")
    grad_accumulation_steps: int = param(1, minimum=1, maximum=INF,
                                         description="Accumulate gradients over N batches per optimizer step (ours).")
    is_dry_run: bool = param(False, description="Build everything, run no training step.")
    enable_ema: bool = param(False, description="Keep an exponential moving average of the weights.")
    ema: EMAConfig = section(EMAConfig, description="The weight average.")
    optim: OptimConfig = section(OptimConfig, description="Optimizer and learning-rate schedule.")
    precision: str = param("fp32", enum=["bf16", "fp32", "fp16"], description="The training precision.")
    distributed_strategy: str = param("ddp", enum=["ddp", "fsdp"], description="The multi-GPU strategy.")
    activation_checkpoint: bool = param(True, description="Recompute activations in the backward pass to save memory.")
