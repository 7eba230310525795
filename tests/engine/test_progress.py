"""The progress bar speaks only to terminals; TensorBoard is optional."""
import importlib.util
import io

from trainers.rtdetr.engine.progress import ProgressBar, TensorBoardLog


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_bar_draws_loss_and_images_per_second_on_a_terminal():
    stream = Terminal()
    bar = ProgressBar(total=4, description="epoch 0", stream=stream)
    bar.update(images=8, loss=1.25)
    bar.update(images=8, loss=1.0)
    bar.close()
    text = stream.getvalue()
    assert text.startswith("\repoch 0 [")
    assert "2/4 loss 1.0000" in text and "img/s" in text and text.endswith("\n")
    assert bar.images == 16 and bar.images_per_second > 0


def test_bar_is_quiet_when_the_stream_is_not_a_terminal():
    stream = io.StringIO()
    bar = ProgressBar(total=2, description="epoch 0", stream=stream)
    bar.update(images=4, loss=0.5)
    bar.close()
    assert stream.getvalue() == ""
    assert "1/2 loss 0.5000" in bar.render()


def test_tensorboard_is_skipped_silently_when_not_installed(tmp_path):
    log = TensorBoardLog(tmp_path / "tb")
    log.scalars({"loss": 1.0, "val_mAP50": None}, step=0)
    log.close()
    installed = importlib.util.find_spec("tensorboard") is not None
    assert any((tmp_path / "tb").glob("events.*")) == installed
