"""RT-DETR data: COCO loading and validation, image sources, augmentation, batching.

- :mod:`.categories` CategoryMap (dataset ids <-> contiguous labels)
- :mod:`.sources` folders, images.tar.gz archives, HDF5 frames -> RGB images
- :mod:`.coco` COCO json -> validated records + load report
- :mod:`.transforms` the official training augmentations (no torchvision)
- :mod:`.collate` batching with multi-scale
- :mod:`.build` the spec -> datasets and loaders
- :mod:`.convert` Pascal VOC / YOLO -> COCO, train/val split
"""
from .build import build_category_map, build_dataloader, build_dataset, set_epoch
from .categories import CategoryMap
from .collate import BatchCollate
from .dataset import CocoDetectionDataset, ImageFolderDataset

__all__ = ["build_category_map", "build_dataloader", "build_dataset", "set_epoch", "CategoryMap",
           "BatchCollate", "CocoDetectionDataset", "ImageFolderDataset"]
