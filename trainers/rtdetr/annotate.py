"""Drawing detections on images and writing the per-image outputs of inference.

- :class:`ClassColors`: TAO's ``inference.color_map`` (class name -> colour
  string such as ``"red"`` or ``"#ff8800"``), a fixed palette for other classes;
- :func:`draw_detections`: boxes with ``outline_width`` outlines and a
  ``"name score"`` tag in the class colour (Pillow ``ImageDraw``);
- :func:`kitti_lines`: TAO's inference label files, one KITTI line a box;
- :func:`save_image_atomic`: a temporary file in
  the target folder renamed into place, so a crash never leaves half a file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

from PIL import Image, ImageColor, ImageDraw, ImageFont

from trainers.atomic_write import write_atomic
from trainers.errors import UserError

RGB = Tuple[int, int, int]

# Distinct, saturated colours (Tableau 10 plus a few), used in label order for classes
# the color_map does not name.
DEFAULT_PALETTE: Tuple[RGB, ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (0, 255, 0), (255, 0, 255), (0, 255, 255), (255, 255, 0), (0, 0, 255), (255, 0, 0),
)


@dataclass(frozen=True)
class Detection:
    """One kept box: ``box`` (x0, y0, x1, y1) in original-image pixels, contiguous ``label``, its ``name``."""

    box: Tuple[float, float, float, float]
    score: float
    label: int
    name: str


class ClassColors:
    """The colour of each class: ``color_map[name]`` when given, else ``DEFAULT_PALETTE[label]``.

    Colour strings are parsed up front, so a typo fails before the model is
    even loaded; :meth:`unknown_names` lists color_map names that are not
    classes of the model (TAO ignores them silently).
    """

    def __init__(self, color_map: Mapping[str, str]):
        self.by_name: Dict[str, RGB] = {}
        problems = []
        for name, value in (color_map or {}).items():
            try:
                self.by_name[str(name)] = ImageColor.getrgb(str(value))[:3]
            except ValueError:
                problems.append(f"inference.color_map.{name}: {value!r} is not a colour "
                                f"(use a name such as 'red' or '#rrggbb')")
        if problems:
            raise UserError("\n".join(problems) if len(problems) == 1
                            else f"{len(problems)} problems\n" + "\n".join(f"  {p}" for p in problems))

    def unknown_names(self, class_names: Sequence[str]) -> List[str]:
        known = set(class_names)
        return sorted(name for name in self.by_name if name not in known)

    def of(self, label: int, name: str) -> RGB:
        return self.by_name.get(name, DEFAULT_PALETTE[label % len(DEFAULT_PALETTE)])


def draw_detections(image: Image.Image, detections: Sequence[Detection], colors: ClassColors,
                    outline_width: int) -> Image.Image:
    """``image`` (RGB, drawn on in place and returned) with a box and a ``"name score"`` tag per detection."""
    draw = ImageDraw.Draw(image)
    font = _font_for(image.size)
    for detection in detections:
        color = colors.of(detection.label, detection.name)
        x0, y0, x1, y1 = detection.box
        draw.rectangle((x0, y0, x1, y1), outline=color, width=outline_width)
        text = f"{detection.name} {detection.score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        text_w, text_h = right - left, bottom - top
        # The tag sits above the box, or inside its top edge when the box touches the image top.
        tag_y = y0 - text_h - 4 if y0 - text_h - 4 >= 0 else y0
        draw.rectangle((x0, tag_y, x0 + text_w + 4, tag_y + text_h + 4), fill=color)
        draw.text((x0 + 2 - left, tag_y + 2 - top), text, fill=_readable_on(color), font=font)
    return image


def kitti_lines(detections: Sequence[Detection]) -> List[str]:
    """TAO's inference labels: ``name 0.00 0 0.00 x0 y0 x1 y1 0.00 0.00 0.00 0.00 0.00 0.00 0.00 score``.

    KITTI fields are separated by spaces, so spaces inside a class name become ``_``.
    """
    lines = []
    for d in detections:
        x0, y0, x1, y1 = d.box
        name = "_".join(d.name.split()) or str(d.label)
        lines.append(f"{name} 0.00 0 0.00 {x0:.2f} {y0:.2f} {x1:.2f} {y1:.2f} "
                     f"0.00 0.00 0.00 0.00 0.00 0.00 0.00 {d.score:.4f}")
    return lines


def save_image_atomic(image: Image.Image, path: os.PathLike | str) -> Path:
    """Write ``image`` in the format its suffix names (PNG when Pillow cannot write that suffix)."""
    path = Path(path)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None or image_format not in Image.SAVE:
        path = path.with_suffix(".png")
        image_format = "PNG"
    options = {"quality": 95} if image_format == "JPEG" else {}
    return write_atomic(path, lambda handle: image.save(handle, format=image_format, **options))


def _font_for(size: Tuple[int, int]) -> ImageFont.ImageFont:
    """Pillow's built-in font, about 1/40 of the shorter side (at least 10 px) so tags stay legible."""
    pixels = max(10, min(size) // 40)
    try:
        return ImageFont.load_default(size=pixels)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _readable_on(color: RGB) -> RGB:
    """Black text on light colours, white on dark ones (ITU-R BT.601 luma)."""
    luma = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    return (0, 0, 0) if luma > 140 else (255, 255, 255)
