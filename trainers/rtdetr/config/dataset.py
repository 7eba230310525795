"""``dataset.*``: COCO data sources, loader settings and augmentation (NVIDIA TAO's keys).

Defaults, bounds and AutoML flags are copied from NVIDIA's packaged RT-DETR
``train.schema.json`` (tao-skill-bank ``tao-train-rtdetr``).  Keys marked "ours"
are additions our trainer reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

from .fields import INF, param, section

MULTI_SCALES = [480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800]


@dataclass
class DataSourceConfig:
    """One COCO data source: a folder of images and its annotation file."""

    image_dir: str = param("", description="The folder that holds the images.")
    json_file: str = param("", description="The COCO annotation file (.json) of those images.")


@dataclass
class InferDataSourceConfig:
    """Images to run inference on, and the class names to print."""

    image_dir: List[str] = param([""], automl_enabled=False,
                                 description="The folders that hold the inference images.")
    classmap: str = param("", description="A .txt file with one class name a line.")


@dataclass
class AugmentationConfig:
    """Training augmentation (RT-DETR's photometric distortion, zoom-out, IoU crop, multi-scale resize)."""

    multi_scales: List[int] = param(MULTI_SCALES, automl_enabled=False,
                                    description="Square sizes drawn for each training batch (multi-scale training).")
    train_spatial_size: List[int] = param([640, 640], automl_enabled=False,
                                          description="Training input size [height, width].")
    eval_spatial_size: List[int] = param([640, 640], automl_enabled=False,
                                         description="Evaluation input size [height, width].")
    distortion_prob: float = param(0.8, minimum=0.0, maximum=1.0, automl_enabled=True,
                                   description="Probability of the random photometric distortion.")
    iou_crop_prob: float = param(0.8, minimum=0.0, maximum=1.0, automl_enabled=True,
                                 description="Probability of the random IoU crop.")
    zoom_out_prob: float = param(0.5, minimum=0.0, maximum=1.0,
                                 description="Probability of the random zoom-out (ours; RT-DETR's reference pipeline).")
    stop_epoch: int = param(-1, minimum=-1, maximum=INF,
                            description="From this epoch on, train without distortion, zoom-out and IoU crop "
                                        "(ours; -1: never stop).")
    preserve_aspect_ratio: bool = param(False, description="Resize keeping the aspect ratio (pad the rest).")


@dataclass
class DatasetConfig:
    """Data sources and loader settings."""

    train_data_sources: List[DataSourceConfig] = param(
        [DataSourceConfig()], automl_enabled=False,
        description="The training data sources: a list of {image_dir, json_file}.")
    val_data_sources: DataSourceConfig = section(
        DataSourceConfig, description="The validation data source: {image_dir, json_file}.")
    test_data_sources: DataSourceConfig = section(
        DataSourceConfig, description="The test data source used by evaluate: {image_dir, json_file}.")
    infer_data_sources: InferDataSourceConfig = section(
        InferDataSourceConfig, description="The data source for inference: {image_dir: [folders], classmap}.")
    quant_calibration_data_sources: DataSourceConfig = section(
        DataSourceConfig, description="The data source for quantization calibration: {image_dir, json_file}.")
    batch_size: int = param(4, minimum=1, maximum=INF, automl_enabled=True,
                            description="The batch size for training and validation.")
    workers: int = param(8, minimum=1, maximum=INF, automl_enabled=True,
                         no_effect="data-loader workers change loading speed, not the trained model",
                         description="The number of parallel workers processing data.")
    remap_mscoco_category: bool = param(False, description="Remap the 91 COCO category ids to 80 contiguous ids.")
    pin_memory: bool = param(True, description="Allocate page-locked memory for faster host-to-GPU copies.")
    dataset_type: str = param("serialized", enum=["serialized", "default"],
                              description="How the dataset is held in memory across workers.")
    num_classes: int = param(80, minimum=1, maximum=INF, math_cond=">0",
                             description="The number of classes: max(category_id) + 1 for 1-based COCO ids.")
    eval_class_ids: List[int] = param([1], automl_enabled=False,
                                      description="The class ids reported separately by the evaluator.")
    augmentation: AugmentationConfig = section(AugmentationConfig, description="Training augmentation.")
