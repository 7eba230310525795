"""The RT-DETR trainer's configuration: NVIDIA TAO's spec keys as dataclasses.

Every field carries its schema metadata (see :mod:`.fields`); the skill folder's
schemas and spec templates are generated from these classes
(``python -m trainers.rtdetr.skill_gen``).

- :class:`ExperimentConfig`: the whole spec.
- :func:`experiment_from_dict`: strict dict -> config (unknown keys and wrong
  types raise :class:`trainers.errors.UserError`, with a did-you-mean).
- :func:`experiment_to_dict`: config -> dict.
- :func:`check_supported`: refuse values we accept but do not run.

Commands load specs with :func:`automl.spec.load_spec`, which also validates
against the skill schema and applies ``key=value`` overrides.
"""
from .convert import experiment_from_dict, experiment_to_dict
from .experiment import ExperimentConfig
from .support import check_supported

__all__ = ["ExperimentConfig", "experiment_from_dict", "experiment_to_dict", "check_supported"]
