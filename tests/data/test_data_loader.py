"""The DataLoader the trainer gets: batches, seeds, the stop epoch across persistent workers."""
from __future__ import annotations

import torch
from torch.utils.data import DistributedSampler

from trainers.rtdetr.data import build_dataloader, build_dataset, set_epoch

from .helpers import boxes_valid, simple_split, spec


def small_spec(tmp_path, workers=0, **augmentation):
    json_file = simple_split(tmp_path, count=8, size=(64, 48))
    aug = {"train_spatial_size": [32, 32], "multi_scales": [64, 96], **augmentation}
    return spec(train=[(tmp_path / "images", json_file)], val=(tmp_path / "images", json_file),
                workers=workers, batch_size=2, num_classes=2, augmentation=aug)


def epoch_batches(loader, epoch):
    set_epoch(loader, epoch)
    return [(images.clone(), [t["boxes"].clone() for t in targets]) for images, targets in loader]


def test_train_batches_follow_the_contract(tmp_path):
    loader = build_dataloader(small_spec(tmp_path), "train", log=None)
    assert not loader.pin_memory or torch.cuda.is_available()
    batches = epoch_batches(loader, 0)
    assert len(batches) == 4  # 8 images, batch 2
    for images, boxes in batches:
        assert images.dtype == torch.float32 and images.shape[:2] == (2, 3)
        assert images.shape[-1] == images.shape[-2] and images.shape[-1] in (64, 96)
        assert all(boxes_valid(b) for b in boxes)


def test_same_seed_same_batches_with_worker_processes(tmp_path):
    cfg = small_spec(tmp_path, workers=2)
    first = epoch_batches(build_dataloader(cfg, "train", log=None, seed=3), 0)
    second = epoch_batches(build_dataloader(cfg, "train", log=None, seed=3), 0)
    other = epoch_batches(build_dataloader(cfg, "train", log=None, seed=4), 0)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, second))
    assert not all(a[0].shape == c[0].shape and torch.equal(a[0], c[0]) for a, c in zip(first, other))


def test_augmentation_does_not_depend_on_the_number_of_workers_or_on_resuming(tmp_path):
    cfg = small_spec(tmp_path, workers=2)
    in_workers = build_dataloader(cfg, "train", log=None, seed=5)
    cfg.dataset.workers = 0
    in_process = build_dataloader(cfg, "train", log=None, seed=5)
    for epoch in (0, 1):
        a, b = epoch_batches(in_process, epoch), epoch_batches(in_workers, epoch)
        assert all(torch.equal(x[0], y[0]) for x, y in zip(a, b))
    resumed = build_dataloader(cfg, "train", log=None, seed=5)  # a fresh loader starting at epoch 1
    assert all(torch.equal(x[0], y[0]) for x, y in zip(epoch_batches(resumed, 1), b))


def test_the_stop_epoch_reaches_persistent_workers(tmp_path):
    cfg = small_spec(tmp_path, workers=2, stop_epoch=1)
    loader = build_dataloader(cfg, "train", log=None)
    assert loader.persistent_workers
    early = {images.shape[-1] for _ in range(3) for images, _ in epoch_batches(loader, 0)}
    late = {images.shape[-1] for images, _ in epoch_batches(loader, 1)}
    assert early - {32} and late == {32}  # multi-scale on, then off: the train_spatial_size only


def test_validation_is_ordered_and_not_augmented(tmp_path):
    loader = build_dataloader(small_spec(tmp_path), "val", log=None)
    ids = [t["image_id"] for _, targets in loader for t in targets]
    assert ids == list(range(100, 108))
    images, _ = next(iter(loader))
    assert images.shape == (2, 3, 640, 640)  # eval_spatial_size default


def test_a_distributed_sampler_can_be_passed(tmp_path):
    cfg = small_spec(tmp_path)
    dataset = build_dataset(cfg, "train", log=None)
    sampler = DistributedSampler(dataset, num_replicas=2, rank=1, shuffle=True, seed=0)
    loader = build_dataloader(cfg, "train", dataset=dataset, sampler=sampler, log=None)
    set_epoch(loader, 5)
    assert sampler.epoch == 5 and sum(len(t) for _, t in loader) == 4


def test_inference_reads_folders_and_the_classmap(tmp_path):
    json_file = simple_split(tmp_path, count=3)
    (tmp_path / "images" / "zero.jpg").write_bytes(b"")
    (tmp_path / "label_map.txt").write_text("thing\n")
    cfg = spec(train=[(tmp_path / "images", json_file)],
               infer_data_sources={"image_dir": [str(tmp_path / "images")], "classmap": str(tmp_path / "label_map.txt")})
    dataset = build_dataset(cfg, "infer", log=None)
    assert len(dataset) == 3 and dataset.category_map.names == ["thing"]
    assert dataset.report.summary() == "infer: 3 images, 0 boxes; skipped 1 image unreadable (zero.jpg)"
    image, target = dataset[0]
    assert image.shape == (3, 640, 640) and target["file_name"].endswith("img_0.png")
    assert target["orig_size"].tolist() == [64, 48]


def test_sizes_the_model_cannot_take_are_refused_at_start(tmp_path):
    import pytest

    from trainers.errors import UserError

    with pytest.raises(UserError, match=r"multi_scales: sizes must be positive multiples of 32; \[600\]"):
        build_dataloader(small_spec(tmp_path, multi_scales=[640, 600]), "train", log=None)
    with pytest.raises(UserError, match=r"train_spatial_size: expected \[height, width\], positive multiples of 32"):
        build_dataset(small_spec(tmp_path, train_spatial_size=[640, 500]), "train", log=None)
