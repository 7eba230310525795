"""The one place that reads the spec's ``dataset.*`` keys and builds datasets and loaders.

Everything else in this package takes plain typed arguments; this module maps
an :class:`~trainers.rtdetr.config.ExperimentConfig` onto them:

- :func:`build_category_map` (cfg) -> CategoryMap
- :func:`build_dataset` (cfg, split, ...) -> dataset with ``.report`` and ``.category_map``
- :func:`build_dataloader` (cfg, split, ...) -> torch DataLoader
- :func:`set_epoch` (loader, epoch): stop-epoch policy and the sampler's shuffling
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Callable, List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from trainers.errors import UserError

from .categories import CategoryMap
from .coco import CocoSource, category_map_from_files, forget_parsed_json, load_split
from .collate import BatchCollate
from .dataset import CocoDetectionDataset, ImageFolderDataset
from .policy import EpochShuffleSampler, StopEpochPolicy
from .report import LoadReport
from .transforms import eval_transforms, train_transforms

SPLITS = ("train", "val", "test", "infer", "quant_calibration")
Log = Optional[Callable[[str], None]]


def coco_sources(cfg, split: str) -> List[CocoSource]:
    """The split's ``{image_dir, json_file}`` entries (``train`` is a list, the others one entry)."""
    key = f"{split}_data_sources"
    value = getattr(cfg.dataset, key)
    entries = value if isinstance(value, (list, tuple)) else [value]
    sources = []
    for index, entry in enumerate(entries):
        where = f"dataset.{key}[{index}]" if isinstance(value, (list, tuple)) else f"dataset.{key}"
        json_file, image_dir = getattr(entry, "json_file", ""), getattr(entry, "image_dir", "")
        if not json_file or not image_dir:
            raise UserError(f"{where}: needs both image_dir and json_file (got {image_dir!r}, {json_file!r})")
        sources.append(CocoSource(json_file=str(json_file), image_dir=str(image_dir)))
    return sources


def build_category_map(cfg, log: Log = print) -> CategoryMap:
    """Labels <-> dataset ids for this experiment, checked against ``dataset.num_classes``.

    ``remap_mscoco_category``: COCO's 80 classes.  Otherwise the union of the
    categories of every training source; without training sources (evaluate
    only) those of the test, then the validation source.
    """
    if cfg.dataset.remap_mscoco_category:
        category_map = CategoryMap.mscoco()
    else:
        for split in ("train", "test", "val"):
            try:
                sources = coco_sources(cfg, split)
            except UserError:
                continue
            report = LoadReport(f"{split} categories")
            category_map = category_map_from_files([s.json_file for s in sources], report)
            if report.notes and log is not None:
                log(report.summary())
            break
        else:
            raise UserError("dataset: no data source with a json_file to read the categories from")
    category_map.check_num_classes(cfg.dataset.num_classes)
    return category_map


def build_dataset(cfg, split: str, category_map: Optional[CategoryMap] = None,
                  policy: Optional[StopEpochPolicy] = None, cache_root: Optional[Path] = None,
                  log: Log = print, seed: Optional[int] = None) -> Dataset:
    """The split's dataset; its load report is printed once through ``log`` (None: silent).

    ``train`` gets the augmentation of ``dataset.augmentation`` at
    ``train_spatial_size``; other splits are only resized to
    ``eval_spatial_size``.  ``infer`` reads every image under
    ``infer_data_sources.image_dir`` (its ``category_map`` comes from
    ``classmap`` when given, else stays as passed).  Training augmentation
    draws from (``seed``, default ``train.seed``; epoch; item), so it does not
    depend on the number of workers; a negative seed leaves it to the workers.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    aug = cfg.dataset.augmentation
    eval_ops = eval_transforms(_spatial_size(aug.eval_spatial_size, "eval_spatial_size"), aug.preserve_aspect_ratio)
    if split == "infer" or (split == "quant_calibration" and not cfg.dataset.quant_calibration_data_sources.json_file):
        sources = cfg.dataset.infer_data_sources if split == "infer" else cfg.dataset.quant_calibration_data_sources
        image_dirs = sources.image_dir if isinstance(sources.image_dir, (list, tuple)) else [sources.image_dir]
        dataset = ImageFolderDataset([str(d) for d in image_dirs], eval_ops, cache_root)
        classmap = getattr(sources, "classmap", "")
        dataset.category_map = CategoryMap.from_label_map(classmap) if classmap else category_map
        if log is not None:
            dataset.report.split = split
            log(dataset.report.summary().replace(", 0 boxes", ""))
        return dataset

    if category_map is None:
        category_map = build_category_map(cfg, log)
    if split == "train":
        if seed is None:
            seed = getattr(getattr(cfg, "train", None), "seed", None)
        policy = policy or StopEpochPolicy(stop_epoch_of(cfg), seed=seed)
        ops = train_transforms(
            spatial_size=_spatial_size(aug.train_spatial_size, "train_spatial_size"),
            distortion_prob=float(aug.distortion_prob),
            zoom_out_prob=float(getattr(aug, "zoom_out_prob", 0.5)),
            iou_crop_prob=float(aug.iou_crop_prob),
            preserve_aspect_ratio=bool(aug.preserve_aspect_ratio),
            policy=policy,
        )
    else:
        ops = eval_ops
    try:
        table, readers, report = load_split(split, coco_sources(cfg, split), category_map, cache_root)
    finally:
        forget_parsed_json()
    if log is not None:
        log(report.summary())
    dataset = CocoDetectionDataset(table, readers, ops, policy)
    dataset.report, dataset.category_map = report, category_map
    return dataset


def build_dataloader(cfg, split: str, dataset: Optional[Dataset] = None, sampler: Optional[Sampler] = None,
                     seed: Optional[int] = None, category_map: Optional[CategoryMap] = None,
                     log: Log = print) -> DataLoader:
    """A DataLoader over :func:`build_dataset` (or ``dataset``).

    Train: shuffled in an order fixed by (seed, epoch) (or by the ``sampler``
    passed, such as DistributedSampler),
    multi-scale collate until the stop epoch, last incomplete batch dropped
    when there are at least two batches.  Workers persist between epochs and
    are seeded from ``seed`` (default ``train.seed``) through a torch
    generator; pinned memory only when CUDA is present.
    """
    if dataset is None:
        dataset = build_dataset(cfg, split, category_map=category_map, log=log, seed=seed)
    training = split == "train"
    policy = getattr(dataset, "policy", None) if training else None
    multi_scales = _multi_scales(cfg.dataset.augmentation.multi_scales) if training else []
    collate = BatchCollate(multi_scales, policy)
    workers = max(0, min(int(cfg.dataset.workers), available_cpus()))
    if seed is None:
        seed = int(getattr(getattr(cfg, "train", None), "seed", 0))
    generator = torch.Generator()
    generator.manual_seed(seed if seed >= 0 else int(torch.initial_seed()))
    batch_size = int(cfg.dataset.batch_size)
    if training and sampler is None:
        sampler = EpochShuffleSampler(len(dataset), seed if seed >= 0 else int(torch.initial_seed()) % 2**31)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=bool(cfg.dataset.pin_memory) and torch.cuda.is_available(),
        drop_last=training and len(dataset) >= 2 * batch_size,
        persistent_workers=workers > 0,
        worker_init_fn=seed_worker,
        generator=generator,
    )


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Call before iterating an epoch: the stop-epoch policy, and a DistributedSampler's shuffle."""
    for holder in (loader.dataset, loader.collate_fn, loader.sampler):
        if hasattr(holder, "set_epoch"):
            holder.set_epoch(epoch)


def seed_worker(worker_id: int) -> None:
    """numpy and random follow torch's per-worker seed; one intra-op thread per worker."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    torch.set_num_threads(1)


def stop_epoch_of(cfg) -> Optional[int]:
    """``dataset.augmentation.stop_epoch``; -1 (or absent) means strong augmentation never stops."""
    value = getattr(cfg.dataset.augmentation, "stop_epoch", -1)
    return None if value is None or int(value) < 0 else int(value)


# RT-DETR's coarsest feature map is stride 32 and the encoder upsamples by exact
# factors of 2, so every input side must be a multiple of 32 (checked here, at
# start, rather than by the model in the first step).
SIZE_MULTIPLE = 32


def _spatial_size(value: Any, key: str) -> List[int]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and v > 0 and v % SIZE_MULTIPLE == 0 for v in value)):
        raise UserError(f"dataset.augmentation.{key}: expected [height, width], positive multiples of "
                        f"{SIZE_MULTIPLE}, got {value!r}")
    return [int(v) for v in value]


def _multi_scales(value: Any) -> List[int]:
    scales = list(value or [])
    bad = [s for s in scales if not isinstance(s, int) or s <= 0 or s % SIZE_MULTIPLE]
    if bad:
        raise UserError(f"dataset.augmentation.multi_scales: sizes must be positive multiples of {SIZE_MULTIPLE}; "
                        f"{bad} are not")
    return scales


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity: a container's or taskset's share, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
