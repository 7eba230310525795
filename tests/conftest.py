"""Shared test set-up: quiet, offline, deterministic."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402  (after the environment above)
import torch  # noqa: E402


@pytest.fixture
def one_thread():
    """One intra-op torch thread for the test: on shared, busy cores torch's spinning thread pool is slower
    with two, and some kernels' numerics depend on the thread count (see tests/model/test_channels_last.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shapes_model(tmp_path_factory):
    """The tiny preset trained on the drawn shapes (tests/learning/trained_shapes.py), once for the session."""
    from tests.learning.trained_shapes import train_shapes_model

    return train_shapes_model(tmp_path_factory.mktemp("shapes_model"))
