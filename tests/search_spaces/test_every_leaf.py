"""No special cases: asking for every leaf of every schema gives a parameter or a stated reason, never a crash."""
import random

import pytest

from search_spaces.sampling import configuration_problems, sample_configuration
from search_spaces.space import SpaceRequest, build_search_space

from .nvidia import NVIDIA_SCHEMAS, OURS, read

SCHEMAS = dict(NVIDIA_SCHEMAS, ours=OURS)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_leaf_is_searchable_or_explained(name):
    schema = read(SCHEMAS[name])
    everything = tuple(schema.leaves)
    disabled = tuple(n for n in everything if schema.leaves[n].automl_enabled is False
                     or n in schema.disabled_parameters)
    space = build_search_space(schema, request=SpaceRequest(hyperparameters=everything, enable_disabled=disabled))
    accounted = set(space.names()) | {d.name for d in space.derived} | {e.name for e in space.excluded}
    assert accounted == set(everything)
    assert all(e.reason for e in space.excluded)
    rng = random.Random(name)
    for _ in range(200):
        assert configuration_problems(space, sample_configuration(space, rng)) == []
