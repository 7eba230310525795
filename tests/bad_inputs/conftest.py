import pytest

from .world import make_world


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """The good inputs the cases break (made once: a few PNGs, a tiny checkpoint, a spec)."""
    return make_world(tmp_path_factory.mktemp("bad_inputs_world"))
