"""INT8 calibration batches: evaluation preprocessing, batch counting, errors naming the key, the cache file."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from trainers.errors import UserError
from trainers.rtdetr.tensorrt.calibrator import CalibrationBatches, read_cache, write_cache

KEY = "gen_trt_engine.tensorrt.calibration"


@pytest.fixture
def image_dir(tmp_path):
    folder = tmp_path / "cal"
    (folder / "sub").mkdir(parents=True)
    # grey levels in file-name order; different sizes and one grey-scale image
    Image.new("RGB", (40, 30), (51, 51, 51)).save(folder / "a.png")
    Image.new("RGB", (20, 60), (102, 102, 102)).save(folder / "b.png")
    Image.new("L", (33, 33), 153).save(folder / "c.png")
    Image.new("RGB", (64, 48), (204, 204, 204)).save(folder / "sub" / "d.jpg", quality=100)
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_batches_are_evaluation_inputs_in_file_order(image_dir):
    batches = CalibrationBatches([str(image_dir)], (32, 48), batch_size=2, batches=2)
    arrays = list(batches)
    assert len(batches) == 2 and len(arrays) == 2 and not batches.notes
    for array in arrays:
        assert array.shape == (2, 3, 32, 48) and array.dtype == np.float32 and array.flags.c_contiguous
    means = [float(image.mean()) for array in arrays for image in array]
    np.testing.assert_allclose(means, [0.2, 0.4, 0.6, 0.8], atol=0.01)  # pixels / 255, no mean/std


def test_letterbox_when_the_spec_preserves_aspect_ratio(image_dir):
    array = next(iter(CalibrationBatches([str(image_dir)], (32, 32), 1, 1, preserve_aspect_ratio=True)))
    image = array[0]  # a.png is 40x30: scaled to 32x24, padded below with 0
    assert image[:, :24].min() > 0.19 and image[:, 25:].max() == 0.0


def test_fewer_images_give_fewer_batches_and_say_so(image_dir):
    batches = CalibrationBatches([str(image_dir)], (16, 16), batch_size=3, batches=5)
    assert len(batches) == 1 and len(list(batches)) == 1
    assert "4 images make 1 batches of 3, not the 5 asked" in batches.notes[0]


@pytest.mark.parametrize("setup, message", [
    ("empty_list", f"{KEY}.cal_image_dir: no folder given"),
    ("missing", f"{KEY}.cal_image_dir: image_dir .*missing: no such folder"),
    ("no_images", f"{KEY}.cal_image_dir: image_dir .*empty: no images"),
    ("too_few", f"{KEY}.cal_batch_size: 8 but cal_image_dir holds only 4 image"),
])
def test_errors_name_the_key(image_dir, tmp_path, setup, message):
    (tmp_path / "empty").mkdir()
    dirs = {"empty_list": [], "missing": [str(tmp_path / "missing")], "no_images": [str(tmp_path / "empty")],
            "too_few": [str(image_dir)]}[setup]
    with pytest.raises(UserError, match=rf"^{message}"):
        CalibrationBatches(dirs, (16, 16), batch_size=8, batches=1)


def test_cache_is_read_only_when_present_and_written_whole(tmp_path):
    cache = tmp_path / "deep" / "cal.cache"
    assert read_cache(cache) is None
    write_cache(cache, memoryview(b"TRT-8601-EntropyCalibration2\nimages: 3c010a14\n"))
    assert read_cache(cache).startswith(b"TRT-8601-EntropyCalibration2")
    assert [p.name for p in cache.parent.iterdir()] == ["cal.cache"]  # no temporary left behind
