"""The official RT-DETRv2 training augmentations, hand-written with Pillow and torch.

Why hand-written: the official recipe is a list of torchvision ``transforms.v2``
ops, but torchvision cannot be loaded next to the CPU build of torch used here
(its compiled ops do not match), see DESIGN.md decision 7.  Each class below
re-implements one torchvision op with the same parameters, defaults and
sampling (the docstrings name the op); random numbers come from torch's
global generator, which the DataLoader seeds per worker, so a seed fixes every
decision.

Every op is ``op(image, target) -> (image, target)`` with ``image`` an RGB
``PIL.Image`` and ``target["boxes"]`` float32 [N,4] (x0, y0, x1, y1) in pixels of
the current image, ``target["labels"]`` int64 [N].  Pixels stay uint8 until
:class:`ToTensor` divides them by 255 (no mean/std: the official recipe
normalises nothing else).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image, ImageEnhance

from .policy import StopEpochPolicy

Target = Dict[str, torch.Tensor]


def _uniform(low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand(()))


class RandomPhotometricDistort:
    """torchvision ``RandomPhotometricDistort``: each of brightness, contrast,
    saturation, hue and a channel shuffle happens with probability ``p``;
    contrast goes before or after saturation/hue at random.  Enhancements are
    Pillow's ``ImageEnhance`` (what torchvision's PIL backend calls too).
    """

    strong = True

    def __init__(self, p: float = 0.5, brightness=(0.875, 1.125), contrast=(0.5, 1.5),
                 saturation=(0.5, 1.5), hue=(-0.05, 0.05)):
        self.p, self.brightness, self.contrast, self.saturation, self.hue = p, brightness, contrast, saturation, hue

    def __call__(self, image: Image.Image, target: Target) -> Tuple[Image.Image, Target]:
        draw = lambda span: _uniform(*span) if float(torch.rand(())) < self.p else None  # noqa: E731
        brightness, contrast, saturation, hue = (draw(self.brightness), draw(self.contrast),
                                                 draw(self.saturation), draw(self.hue))
        contrast_before = bool(torch.rand(()) < 0.5)
        permutation = torch.randperm(3).tolist() if float(torch.rand(())) < self.p else None
        if brightness is not None:
            image = ImageEnhance.Brightness(image).enhance(brightness)
        if contrast is not None and contrast_before:
            image = ImageEnhance.Contrast(image).enhance(contrast)
        if saturation is not None:
            image = ImageEnhance.Color(image).enhance(saturation)
        if hue is not None:
            image = adjust_hue(image, hue)
        if contrast is not None and not contrast_before:
            image = ImageEnhance.Contrast(image).enhance(contrast)
        if permutation is not None and permutation != [0, 1, 2]:
            channels = image.split()
            image = Image.merge("RGB", [channels[i] for i in permutation])
        return image, target


def adjust_hue(image: Image.Image, hue_factor: float) -> Image.Image:
    """Shift hue by ``hue_factor`` of a turn in HSV, wrapping around (torchvision's PIL ``adjust_hue``)."""
    h, s, v = image.convert("HSV").split()
    shift = int(np.int32(hue_factor * 255).astype(np.uint8))
    h = h.point([(value + shift) % 256 for value in range(256)])
    return Image.merge("HSV", (h, s, v)).convert("RGB")


class RandomZoomOut:
    """torchvision ``RandomZoomOut``: with probability ``p``, place the image at a
    random spot of a canvas ``r`` times larger (``r`` uniform in ``side_range``)
    filled with ``fill``."""

    strong = True

    def __init__(self, p: float = 0.5, side_range: Tuple[float, float] = (1.0, 4.0), fill: int = 0):
        if side_range[0] < 1.0 or side_range[0] > side_range[1]:
            raise ValueError(f"side_range must satisfy 1 <= min <= max, got {side_range}")
        self.p, self.side_range, self.fill = p, side_range, fill

    def __call__(self, image: Image.Image, target: Target) -> Tuple[Image.Image, Target]:
        if float(torch.rand(())) >= self.p:
            return image, target
        width, height = image.size
        ratio = _uniform(*self.side_range)
        canvas_w, canvas_h = int(width * ratio), int(height * ratio)
        r = torch.rand(2)
        left, top = int((canvas_w - width) * r[0]), int((canvas_h - height) * r[1])
        canvas = Image.new("RGB", (canvas_w, canvas_h), (self.fill,) * 3)
        canvas.paste(image, (left, top))
        target = dict(target)
        target["boxes"] = target["boxes"] + torch.tensor([left, top, left, top], dtype=torch.float32)
        return canvas, target


class RandomIoUCrop:
    """torchvision ``RandomIoUCrop`` (SSD's crop) applied with probability ``p``
    (the official ``RandomIoUCrop`` wrapper).  An IoU threshold is drawn from
    ``sampler_options`` (1.0 means "leave the image"); up to ``trials`` crops
    of relative size in [min_scale, max_scale] and aspect in
    [min_aspect_ratio, max_aspect_ratio] are tried; a crop is accepted when a
    box centre lies inside it and one such box has IoU >= the threshold with
    it.  Boxes whose centre is outside the crop are dropped.

    One difference: torchvision loops forever on an image without boxes
    until it draws 1.0; here such images are left as they are.
    """

    strong = True

    def __init__(self, p: float = 0.8, min_scale: float = 0.3, max_scale: float = 1.0,
                 min_aspect_ratio: float = 0.5, max_aspect_ratio: float = 2.0,
                 sampler_options: Sequence[float] = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0), trials: int = 40):
        self.p, self.min_scale, self.max_scale = p, min_scale, max_scale
        self.min_aspect_ratio, self.max_aspect_ratio = min_aspect_ratio, max_aspect_ratio
        self.options, self.trials = list(sampler_options), trials

    def __call__(self, image: Image.Image, target: Target) -> Tuple[Image.Image, Target]:
        if float(torch.rand(())) >= self.p or len(target["boxes"]) == 0:
            return image, target
        crop = self.sample_crop(image.size, target["boxes"])
        if crop is None:
            return image, target
        left, top, right, bottom, keep = crop
        image = image.crop((left, top, right, bottom))
        target = dict(target)
        boxes = target["boxes"][keep] - torch.tensor([left, top, left, top], dtype=torch.float32)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, right - left)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, bottom - top)
        target["boxes"], target["labels"] = boxes, target["labels"][keep]
        return image, target

    def sample_crop(self, size: Tuple[int, int], boxes: torch.Tensor):
        """(left, top, right, bottom, kept-box mask) or None for "no crop"."""
        width, height = size
        centre_x = 0.5 * (boxes[:, 0] + boxes[:, 2])
        centre_y = 0.5 * (boxes[:, 1] + boxes[:, 3])
        while True:
            threshold = self.options[int(torch.randint(len(self.options), ()))]
            if threshold >= 1.0:
                return None
            for _ in range(self.trials):
                r = self.min_scale + (self.max_scale - self.min_scale) * torch.rand(2)
                new_w, new_h = int(width * r[0]), int(height * r[1])
                if new_h == 0 or not self.min_aspect_ratio <= new_w / new_h <= self.max_aspect_ratio:
                    continue
                r = torch.rand(2)
                left, top = int((width - new_w) * r[0]), int((height - new_h) * r[1])
                right, bottom = left + new_w, top + new_h
                if left == right or top == bottom:
                    continue
                inside = (left < centre_x) & (centre_x < right) & (top < centre_y) & (centre_y < bottom)
                if not bool(inside.any()):
                    continue
                crop = torch.tensor([[left, top, right, bottom]], dtype=torch.float32)
                if float(box_iou(boxes[inside], crop).max()) < threshold:
                    continue
                return left, top, right, bottom, inside


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of xyxy boxes a [N,4] and b [M,4] -> [N,M]."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    top_left = torch.max(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


class SanitizeBoxes:
    """torchvision ``SanitizeBoundingBoxes(min_size=1)``: clamp boxes to the image,
    then drop those narrower or lower than ``min_size`` pixels (and their labels)."""

    strong = False

    def __init__(self, min_size: float = 1.0):
        self.min_size = min_size

    def __call__(self, image: Image.Image, target: Target) -> Tuple[Image.Image, Target]:
        width, height = image.size
        boxes = target["boxes"].clone()
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        keep = ((boxes[:, 2] - boxes[:, 0]) >= self.min_size) & ((boxes[:, 3] - boxes[:, 1]) >= self.min_size)
        target = dict(target)
        target["boxes"], target["labels"] = boxes[keep], target["labels"][keep]
        return image, target


class RandomHorizontalFlip:
    """torchvision ``RandomHorizontalFlip`` (p 0.5)."""

    strong = False

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image: Image.Image, target: Target) -> Tuple[Image.Image, Target]:
        if float(torch.rand(())) >= self.p:
            return image, target
        width = image.size[0]
        target = dict(target)
        boxes = target["boxes"]
        target["boxes"] = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), target


class Resize:
    """torchvision ``Resize([h, w])``: bilinear, antialiased (Pillow's resize), aspect ratio not kept.

    Sets ``target["norm_size"]`` (w, h) = the input size: what normalised box
    coordinates 1.0 span in the image this op received (the original at evaluation).
    """

    strong = False

    def __init__(self, size: Sequence[int]):
        self.height, self.width = int(size[0]), int(size[1])

    def __call__(self, image: Image.Image, target: Target) -> Tuple[Image.Image, Target]:
        width, height = image.size
        target = dict(target)
        scale = torch.tensor([self.width / width, self.height / height] * 2, dtype=torch.float32)
        target["boxes"] = target["boxes"] * scale
        target["norm_size"] = torch.tensor([width, height], dtype=torch.float32)
        return image.resize((self.width, self.height), Image.Resampling.BILINEAR), target


class LetterboxResize:
    """Resize keeping the aspect ratio so the image fits in [h, w], then pad right and bottom with 0.

    Boxes are normalised (later, by :class:`ToTensor`) by the padded canvas,
    i.e. the network's input.  To map predictions back to the original image
    multiply by ``target["norm_size"]`` = canvas size / scale, which is larger
    than ``orig_size`` on the padded side; ``orig_size`` alone would stretch them.
    """

    strong = False

    def __init__(self, size: Sequence[int], fill: int = 0):
        self.height, self.width, self.fill = int(size[0]), int(size[1]), fill

    def __call__(self, image: Image.Image, target: Target) -> Tuple[Image.Image, Target]:
        width, height = image.size
        scale = min(self.width / width, self.height / height)
        new_w, new_h = max(1, min(self.width, round(width * scale))), max(1, min(self.height, round(height * scale)))
        resized = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
        canvas = Image.new("RGB", (self.width, self.height), (self.fill,) * 3)
        canvas.paste(resized, (0, 0))
        target = dict(target)
        target["boxes"] = target["boxes"] * torch.tensor([new_w / width, new_h / height] * 2, dtype=torch.float32)
        target["norm_size"] = torch.tensor([self.width / scale, self.height / scale], dtype=torch.float32)
        return canvas, target


class ToTensor:
    """``ConvertPILImage(float32, scale=True)`` + ``ConvertBoxes(cxcywh, normalize=True)``.

    image -> float32 [3,H,W] in 0..1; boxes -> normalised (cx, cy, w, h) in 0..1;
    ``size`` = (w, h) of the result.
    """

    strong = False

    def __call__(self, image: Image.Image, target: Target) -> Tuple[torch.Tensor, Target]:
        width, height = image.size
        # HWC -> CHW while still uint8 (a quarter of the bytes a float transpose would move).
        array = np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))
        tensor = torch.from_numpy(array).float().div_(255.0)
        target = dict(target)
        x0, y0, x1, y1 = target["boxes"].unbind(-1)
        boxes = torch.stack([(x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height], -1)
        target["boxes"] = boxes.clamp(0.0, 1.0).reshape(-1, 4).float()
        target["size"] = torch.tensor([width, height], dtype=torch.int64)
        return tensor, target


class Compose:
    """Runs the ops in order; ops marked ``strong`` are skipped once the policy says so."""

    def __init__(self, ops: List, policy: Optional[StopEpochPolicy] = None):
        self.ops, self.policy = ops, policy

    def __call__(self, image, target):
        strong_on = self.policy is None or self.policy.strong_augmentation
        for op in self.ops:
            if op.strong and not strong_on:
                continue
            image, target = op(image, target)
        return image, target


def train_transforms(spatial_size: Sequence[int] = (640, 640), distortion_prob: float = 0.8,
                     zoom_out_prob: float = 0.5, iou_crop_prob: float = 0.8,
                     preserve_aspect_ratio: bool = False, policy: Optional[StopEpochPolicy] = None) -> Compose:
    """The official ``train_dataloader`` ops (rtdetrv2 ``include/dataloader.yml``); ``spatial_size`` is [h, w]."""
    resize = LetterboxResize(spatial_size) if preserve_aspect_ratio else Resize(spatial_size)
    return Compose([
        RandomPhotometricDistort(p=distortion_prob),
        RandomZoomOut(p=zoom_out_prob, fill=0),
        RandomIoUCrop(p=iou_crop_prob),
        SanitizeBoxes(min_size=1),
        RandomHorizontalFlip(),
        resize,
        SanitizeBoxes(min_size=1),
        ToTensor(),
    ], policy)


def eval_transforms(spatial_size: Sequence[int] = (640, 640), preserve_aspect_ratio: bool = False) -> Compose:
    """Resize to ``spatial_size`` [h, w] (letterboxed when ``preserve_aspect_ratio``), then to tensor."""
    resize = LetterboxResize(spatial_size) if preserve_aspect_ratio else Resize(spatial_size)
    return Compose([resize, ToTensor()])
