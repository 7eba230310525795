"""A tiny detector, loss, post-processor and data that follow the model and data contracts.

Contracts (the real ones live in trainers/rtdetr/model and trainers/rtdetr/data):
``model(images, targets)`` / ``model(images)`` -> {"pred_logits" [B,Q,C], "pred_boxes" [B,Q,4] cxcywh 0..1};
``criterion(outputs, targets)`` -> dict of scalar losses; ``postprocessor(outputs, sizes [B,2] (w,h))`` ->
per image {"scores", "labels", "boxes" xyxy pixels}; loader items ``(images [B,3,H,W], targets)``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainers.rtdetr.config import ExperimentConfig
from trainers.rtdetr.engine.trainer import Parts

NUM_QUERIES = 4
CATEGORY_IDS = [5, 9]
SIZE = 16


class ToyDetector(nn.Module):
    def __init__(self, num_classes: int = 2, batch_norm: bool = True, dropout: float = 0.1):
        super().__init__()
        norm = nn.BatchNorm2d(8) if batch_norm else nn.Identity()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), norm, nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.decoder = nn.Sequential(nn.Linear(8, 32), nn.LayerNorm(32), nn.ReLU(), nn.Dropout(dropout))
        self.class_head = nn.Linear(32, NUM_QUERIES * num_classes)
        self.box_head = nn.Linear(32, NUM_QUERIES * 4)
        self.num_classes = num_classes

    def forward(self, images, targets=None):
        features = self.decoder(self.backbone(images))
        batch = images.shape[0]
        return {"pred_logits": self.class_head(features).view(batch, NUM_QUERIES, self.num_classes),
                "pred_boxes": self.box_head(features).view(batch, NUM_QUERIES, 4).sigmoid()}


class ToyCriterion(nn.Module):
    """Query i predicts ground-truth object i (no matching needed for a test)."""

    def __init__(self, nan_at_call: int = -1):
        super().__init__()
        self.calls = 0
        self.nan_at_call = nan_at_call

    def forward(self, outputs, targets):
        assert outputs["pred_logits"].dtype == torch.float32   # the engine casts before the loss
        cls, box = [], []
        for logits, boxes, target in zip(outputs["pred_logits"], outputs["pred_boxes"], targets):
            n = len(target["labels"])
            onehot = torch.zeros_like(logits)
            onehot[torch.arange(n), target["labels"]] = 1.0
            cls.append(nn.functional.binary_cross_entropy_with_logits(logits, onehot))
            box.append(nn.functional.l1_loss(boxes[:n], target["boxes"]))
        losses = {"loss_cls": torch.stack(cls).mean(), "loss_bbox": 5.0 * torch.stack(box).mean()}
        self.calls += 1
        if self.calls == self.nan_at_call:
            losses["loss_bbox"] = losses["loss_bbox"] * float("nan")
        return losses


class ToyPostProcessor(nn.Module):
    def forward(self, outputs, sizes):
        scores, labels = outputs["pred_logits"].sigmoid().max(-1)
        cx, cy, w, h = outputs["pred_boxes"].unbind(-1)
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * sizes.repeat(1, 2)[:, None]
        return [{"scores": s, "labels": l, "boxes": b} for s, l, b in zip(scores, labels, boxes)]


class ToyDataset(Dataset):
    """Images with one or two boxes; training items get a random flip from torch's global generator."""

    def __init__(self, count: int, train: bool, first_id: int = 1):
        generator = torch.Generator().manual_seed(first_id)
        self.images = torch.rand(count, 3, SIZE, SIZE, generator=generator)
        self.targets = []
        for index in range(count):
            n = 1 + index % 2
            centres = 0.25 + 0.5 * torch.rand(n, 2, generator=generator)
            sizes = 0.1 + 0.2 * torch.rand(n, 2, generator=generator)
            self.targets.append({"labels": torch.tensor([index % 2, 1][:n]), "boxes": torch.cat([centres, sizes], 1),
                                 "image_id": first_id + index, "orig_size": torch.tensor([SIZE * 4, SIZE * 2])})
        self.train = train
        self.epochs_seen = []

    def set_epoch(self, epoch):
        self.epochs_seen.append(epoch)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image, target = self.images[index], dict(self.targets[index])
        if self.train and torch.rand(()) < 0.5:
            image = image.flip(-1)
            boxes = target["boxes"].clone()
            boxes[:, 0] = 1 - boxes[:, 0]
            target["boxes"] = boxes
        return image, target

    def coco(self):
        w, h = SIZE * 4, SIZE * 2
        images = [{"id": t["image_id"], "width": w, "height": h, "file_name": f"{t['image_id']}.png"}
                  for t in self.targets]
        annotations = []
        for t in self.targets:
            for label, (cx, cy, bw, bh) in zip(t["labels"].tolist(), t["boxes"].tolist()):
                annotations.append({"id": len(annotations) + 1, "image_id": t["image_id"],
                                    "category_id": CATEGORY_IDS[label],
                                    "bbox": [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h],
                                    "area": bw * w * bh * h, "iscrowd": 0})
        return {"images": images, "annotations": annotations,
                "categories": [{"id": c, "name": f"class{c}"} for c in CATEGORY_IDS]}


def collate(batch):
    return torch.stack([image for image, _ in batch]), [target for _, target in batch]


def toy_parts(train_images: int = 8, batch_size: int = 2, nan_at_call: int = -1, batch_norm: bool = True,
              shuffle: bool = True, dropout: float = 0.1) -> Parts:
    torch.manual_seed(0)
    train_set, val_set = ToyDataset(train_images, train=True), ToyDataset(4, train=False, first_id=100)
    return Parts(model=ToyDetector(batch_norm=batch_norm, dropout=dropout),
                 criterion=ToyCriterion(nan_at_call), postprocessor=ToyPostProcessor(),
                 train_loader=DataLoader(train_set, batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                                         generator=torch.Generator().manual_seed(0)),
                 val_loader=DataLoader(val_set, batch_size=2, collate_fn=collate),
                 val_ground_truth=val_set.coco(), category_ids=list(CATEGORY_IDS),
                 class_names=[f"class{c}" for c in CATEGORY_IDS])


def toy_config(results_dir, **train_overrides) -> ExperimentConfig:
    cfg = ExperimentConfig()
    cfg.results_dir = str(results_dir)
    cfg.train.num_epochs = 3
    cfg.train.seed = 42
    cfg.train.optim.lr = 1e-2
    cfg.train.optim.lr_backbone = 1e-3
    for key, value in train_overrides.items():
        target = cfg.train
        *path, last = key.split("__")
        for part in path:
            target = getattr(target, part)
        setattr(target, last, value)
    return cfg
