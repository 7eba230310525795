"""The hand-written RT-DETR augmentations: boxes stay valid and in the image, seeds fix everything."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from trainers.rtdetr.data import transforms as T
from trainers.rtdetr.data.collate import BatchCollate
from trainers.rtdetr.data.policy import StopEpochPolicy

from .helpers import boxes_valid


def sample(width=120, height=80, seed=0):
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    boxes = torch.tensor([[10, 10, 50, 40], [60, 20, 118, 78], [0, 0, 120, 80]], dtype=torch.float32)
    target = {"boxes": boxes, "labels": torch.tensor([0, 1, 2]), "image_id": 1,
              "orig_size": torch.tensor([width, height])}
    return image, target


def pixel_boxes_inside(image, boxes):
    width, height = image.size
    b = boxes.numpy()
    return bool(np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1]) and np.all(b[:, :2] >= 0)
                and np.all(b[:, 2] <= width + 1e-4) and np.all(b[:, 3] <= height + 1e-4))


@pytest.mark.parametrize("op", [
    T.RandomPhotometricDistort(p=1.0), T.RandomZoomOut(p=1.0), T.RandomIoUCrop(p=1.0),
    T.RandomHorizontalFlip(p=1.0), T.Resize([64, 96]), T.LetterboxResize([64, 64]), T.SanitizeBoxes(1),
])
def test_every_op_keeps_boxes_valid_and_inside_the_image(op):
    for seed in range(30):
        torch.manual_seed(seed)
        image, target = op(*sample(seed=seed))
        assert pixel_boxes_inside(image, T.SanitizeBoxes(1)(image, target)[1]["boxes"])
        assert len(target["boxes"]) == len(target["labels"])


@pytest.mark.parametrize("preserve_aspect_ratio", [False, True])
def test_the_full_training_pipeline_gives_the_contracted_item(preserve_aspect_ratio):
    ops = T.train_transforms(spatial_size=[64, 96], preserve_aspect_ratio=preserve_aspect_ratio)
    for seed in range(40):
        torch.manual_seed(seed)
        image, target = ops(*sample(seed=seed))
        assert image.shape == (3, 64, 96) and image.dtype == torch.float32
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        assert target["size"].tolist() == [96, 64]
        assert boxes_valid(target["boxes"]) and target["labels"].dtype == torch.int64
        assert len(target["boxes"]) == len(target["labels"])


def test_same_seed_same_augmentation():
    ops = T.train_transforms(spatial_size=[48, 48])
    results = []
    for _ in range(2):
        torch.manual_seed(7)
        results.append([ops(*sample(seed=s)) for s in range(5)])
    for (image_a, target_a), (image_b, target_b) in zip(*results):
        assert torch.equal(image_a, image_b) and torch.equal(target_a["boxes"], target_b["boxes"])


def test_flip_mirrors_boxes():
    image, target = T.RandomHorizontalFlip(p=1.0)(*sample())
    assert target["boxes"][0].tolist() == [70, 10, 110, 40]


def test_zoom_out_places_the_image_on_a_black_canvas_up_to_four_times_larger():
    torch.manual_seed(3)
    original, target = sample()
    image, zoomed = T.RandomZoomOut(p=1.0)(original, target)
    assert 120 <= image.size[0] <= 480 and 80 <= image.size[1] <= 320
    left, top = (zoomed["boxes"][0] - target["boxes"][0])[:2].int().tolist()
    assert image.crop((left, top, left + 120, top + 80)).tobytes() == original.tobytes()
    assert image.getpixel((0, 0)) == (0, 0, 0) or (left, top) == (0, 0)


def test_iou_crop_keeps_only_boxes_whose_centre_is_inside():
    torch.manual_seed(0)
    crops = 0
    for seed in range(50):
        image, target = T.RandomIoUCrop(p=1.0)(*sample(seed=seed))
        if image.size != (120, 80):
            crops += 1
            assert 0.3 * 120 <= image.size[0] and 0.3 * 80 <= image.size[1]
            assert len(target["boxes"]) >= 1
    assert crops > 20  # 6 of 7 options crop


def test_iou_crop_leaves_images_without_boxes_alone():
    image, target = sample()
    target = dict(target, boxes=torch.zeros((0, 4)), labels=torch.zeros(0, dtype=torch.int64))
    assert T.RandomIoUCrop(p=1.0)(image, target)[0] is image


def test_letterbox_normalises_by_the_padded_canvas_and_maps_back_with_norm_size():
    image, target = sample(width=120, height=60)
    image, target = T.LetterboxResize([64, 64])(image, target)
    assert image.size == (64, 64) and image.getpixel((10, 50)) == (0, 0, 0)  # bottom is padding
    tensor, target = T.ToTensor()(image, target)
    # predicted normalised cx,cy,w,h * norm_size -> original pixels
    cx, cy, w, h = target["boxes"][0].tolist()
    nw, nh = target["norm_size"].tolist()
    assert np.allclose([(cx - w / 2) * nw, (cy - h / 2) * nh, (cx + w / 2) * nw, (cy + h / 2) * nh],
                       [10, 10, 50, 40], atol=0.5)


def test_photometric_distortion_changes_colours_not_geometry():
    torch.manual_seed(1)
    image, target = sample()
    out, out_target = T.RandomPhotometricDistort(p=1.0)(image, target)
    assert out.size == image.size and out.tobytes() != image.tobytes()
    assert torch.equal(out_target["boxes"], target["boxes"])


def test_hue_shift_by_half_a_turn_and_back_is_identity_on_grey():
    grey = Image.new("RGB", (4, 4), (128, 128, 128))
    assert T.adjust_hue(grey, 0.5).getpixel((0, 0)) == (128, 128, 128)


def test_stop_epoch_turns_off_strong_ops_and_multi_scale():
    policy = StopEpochPolicy(stop_epoch=2)
    ops = T.train_transforms(spatial_size=[32, 32], distortion_prob=1.0, zoom_out_prob=1.0, iou_crop_prob=1.0,
                             policy=policy)
    collate = BatchCollate([16, 48], policy)
    image, target = sample()
    reference = T.Compose([T.RandomHorizontalFlip(), T.Resize([32, 32]), T.SanitizeBoxes(1), T.ToTensor()])
    collate.set_epoch(2)  # the collate and the transforms share one policy
    for seed in range(5):
        torch.manual_seed(seed)
        late = ops(image, target)
        torch.manual_seed(seed)
        assert torch.equal(late[0], reference(image, target)[0])
        assert collate([late, late])[0].shape[-1] == 32
    policy.set_epoch(1)
    sizes = set()
    for seed in range(20):
        torch.manual_seed(seed)
        item = ops(image, target)
        sizes.add(collate([item, item])[0].shape[-1])
    assert sizes == {16, 48}


def test_multi_scale_collate_resizes_the_batch_to_a_random_square_with_nearest():
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    batch = [(images[i], {"size": torch.tensor([4, 4])}) for i in range(2)]
    out, targets = BatchCollate([8])(batch)
    assert out.shape == (2, 3, 8, 8) and targets[0]["size"].tolist() == [8, 8]
    assert torch.equal(out[:, :, ::2, ::2], images)  # nearest: every pixel doubled
    plain, _ = BatchCollate()(batch)
    assert torch.equal(plain, images)
