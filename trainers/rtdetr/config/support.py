"""Spec values we accept (NVIDIA's schema allows them) but this trainer does not run.

This is the one place that lists them.  A spec that uses one is refused before
any work starts, with a line naming the key, the value and what is supported,
never silently ignored.  The skill-folder generator writes the same table into
the schemas as ``x_supported_options`` so a sweep never samples such a value.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

from trainers.errors import UserError

from .model import BACKBONES

# dotted key -> (the values we run, why the others are refused)
SUPPORTED: Dict[str, Tuple[Tuple[Any, ...], str]] = {
    "model.backbone": (BACKBONES, "only the ResNet-vd backbones are implemented"),
    "distill.teacher.backbone": (BACKBONES, "only the ResNet-vd backbones are implemented"),
    "model.frozen_fm.enabled": ((False,), "the frozen foundation-model (RADIO) branch is not implemented"),
    "distill.teacher.frozen_fm.enabled": ((False,), "the frozen foundation-model (RADIO) branch is not implemented"),
    "train.distributed_strategy": (("ddp",), "FSDP is not implemented; multi-GPU training uses DDP"),
    "export.format": (("onnx",), "only ONNX export is implemented"),
}


def unsupported_problems(spec: Dict[str, Any]) -> List[str]:
    """One line per unsupported value in a spec dict (nested, as loaded from YAML)."""
    problems = []
    for key, (supported, why) in SUPPORTED.items():
        found, value = _lookup(spec, key)
        if found and value not in supported:
            choices = ", ".join(str(v).lower() if isinstance(v, bool) else str(v) for v in supported)
            shown = str(value).lower() if isinstance(value, bool) else repr(value)
            problems.append(f"{key}: {shown} is not supported by this trainer ({why}; supported: {choices})")
    return problems


def check_supported(cfg: Any) -> None:
    """Raise UserError listing every unsupported value of an ExperimentConfig."""
    from .convert import experiment_to_dict

    problems = unsupported_problems(experiment_to_dict(cfg))
    if problems:
        raise UserError("\n".join(problems))


def _lookup(spec: Dict[str, Any], key: str) -> Tuple[bool, Any]:
    node: Any = spec
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node
