"""The epoch clock of the training data: stop-epoch policy and per-item random seeds.

RT-DETRv2's "dynamic data augmentation": from ``stop_epoch`` on, photometric
distortion, zoom-out, IoU crop and multi-scale resizing are switched off so
the last epochs train on images like the ones seen at evaluation.

The epoch lives in a one-element shared-memory tensor.  DataLoader workers
hold copies of the dataset and the collate function; with
``persistent_workers`` a plain attribute set in the trainer's process would
never reach them, while a shared tensor is seen by every worker (fork or
spawn) as soon as the trainer calls :meth:`set_epoch` before iterating.

With a ``seed``, every item's augmentation (and every batch's multi-scale
size) draws from a generator seeded by (seed, epoch, item): the same images
come out whatever the number of workers, and a run resumed at epoch k
augments exactly as the uninterrupted run did (persistent workers would
otherwise carry their random state on from wherever they were).
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Sequence

import torch


class StopEpochPolicy:
    """``strong_augmentation`` is True while ``epoch < stop_epoch`` (None: never stops)."""

    def __init__(self, stop_epoch: Optional[int] = None, seed: Optional[int] = None):
        self.stop_epoch = None if stop_epoch is None else int(stop_epoch)
        self.seed = None if seed is None or int(seed) < 0 else int(seed)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    @property
    def strong_augmentation(self) -> bool:
        return self.stop_epoch is None or self.epoch < self.stop_epoch

    @contextlib.contextmanager
    def seeded(self, *keys: int) -> Iterator[None]:
        """Run the block on torch's CPU generator seeded by (seed, epoch, keys), then restore it.

        Without a seed the block just uses the current generator (a worker's own stream).
        """
        if self.seed is None:
            yield
            return
        value = self.seed * 1_000_003 + self.epoch
        for key in keys:
            value = (value * 1_000_033 + int(key)) % (2**63 - 1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(value)
            yield


def batch_key(indices: Sequence[int]) -> int:
    """One integer for a batch's image ids (order-sensitive), to seed its multi-scale draw."""
    value = 17
    for index in indices:
        value = (value * 1_000_037 + int(index)) % (2**61 - 1)
    return value


class EpochShuffleSampler(torch.utils.data.Sampler):
    """A random order of ``range(size)`` that is a function of (seed, epoch) only.

    torch's RandomSampler draws from the loader's generator, whose state also
    depends on whether worker processes persist (a fresh iterator draws the
    workers' base seed from it first), so the order would change with
    ``workers``.  Like DistributedSampler, this one is told the epoch.
    """

    def __init__(self, size: int, seed: int = 0):
        self.size, self.seed, self.epoch = int(size), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator()
        generator.manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())
