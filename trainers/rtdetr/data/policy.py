"""The stop-epoch policy: strong augmentation and multi-scale end at one epoch.

RT-DETRv2's "dynamic data augmentation": from ``stop_epoch`` on, photometric
distortion, zoom-out, IoU crop and multi-scale resizing are switched off so
the last epochs train on images like the ones seen at evaluation.

The epoch lives in a one-element shared-memory tensor.  DataLoader workers
hold copies of the dataset and the collate function; with
``persistent_workers`` a plain attribute set in the trainer's process would
never reach them, while a shared tensor is seen by every worker (fork or
spawn) as soon as the trainer calls :meth:`set_epoch` before iterating.
"""
from __future__ import annotations

from typing import Optional

import torch


class StopEpochPolicy:
    """``strong_augmentation`` is True while ``epoch < stop_epoch`` (None: never stops)."""

    def __init__(self, stop_epoch: Optional[int] = None):
        self.stop_epoch = None if stop_epoch is None else int(stop_epoch)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    @property
    def strong_augmentation(self) -> bool:
        return self.stop_epoch is None or self.epoch < self.stop_epoch
