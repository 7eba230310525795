"""``tao-automl import-weights``: official or transformers weights -> our checkpoint."""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

import torch
from torch import Tensor

from trainers.errors import UserError

from ..checkpoint import load_checkpoint, model_state_from, save_checkpoint
from ..config.model import ModelConfig
from ..model import RTDETR, Architecture
from ..model.architecture import OFFICIAL_STAGE_WIDTHS, OFFICIAL_STEM, RESNETS
from .hf import architecture_from_hf_config, map_hf_state_dict
from .official import architecture_from_official_state, map_official_state_dict

HUB_PREFIX = "hf://"


@dataclass
class ImportReport:
    output: Path
    num_tensors: int
    num_classes: int
    architecture: Architecture
    ignored: List[str]

    def summary(self) -> str:
        arch = self.architecture
        return (f"wrote {self.output}: {self.num_tensors} tensors, {self.num_classes} classes, "
                f"{arch.backbone.block} backbone depths {arch.backbone.depths}, {arch.decoder.num_layers} decoder "
                f"layers, {arch.decoder.num_queries} queries"
                + (f"; ignored {len(self.ignored)} tensors ({', '.join(self.ignored[:3])})" if self.ignored else ""))


def import_weights(source: str, input_path: str, output: os.PathLike | str,
                   overrides: Mapping[str, Any] | None = None) -> ImportReport:
    overrides = dict(overrides or {})
    if source == "hf":
        if overrides:
            raise UserError("import-weights: --source hf reads every setting from config.json; drop the overrides")
        arch, settings, class_names, state, ignored = _read_hf(input_path)
    elif source == "official":
        raw = model_state_from(load_checkpoint(input_path), input_path)
        state = map_official_state_dict(raw)
        arch, settings = architecture_from_official_state(state, overrides)
        class_names, ignored = [f"class_{i}" for i in range(arch.num_classes)], []
    else:
        raise UserError(f"import-weights: --source {source!r} is not one of hf, official")

    model = RTDETR(arch)
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise UserError(f"{input_path}: the weights do not fit the architecture read from it: "
                        f"{len(missing)} missing (e.g. {missing[:2]}), "
                        f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[:2]})")
    model_config = dataclasses.asdict(ModelConfig(**{**settings, **_named_backbone(arch)}))
    out = save_checkpoint({
        "model": model.state_dict(), "architecture": arch.to_dict(), "model_config": model_config,
        "num_classes": arch.num_classes, "class_names": class_names, "category_ids": [],
        "source": {"kind": source, "path": str(input_path)},
    }, output)
    return ImportReport(out, len(state), arch.num_classes, arch, ignored)


def _named_backbone(arch: Architecture) -> Dict[str, Any]:
    """The TAO backbone name when the weights have an official size (informational in model_config)."""
    bb = arch.backbone
    for name, (block, depths) in RESNETS.items():
        if (block, depths, bb.stem_channels, bb.stage_widths) == (bb.block, bb.depths, OFFICIAL_STEM,
                                                                   OFFICIAL_STAGE_WIDTHS):
            return {"backbone": name, "freeze_norm": bb.freeze_norm}
    return {"freeze_norm": bb.freeze_norm}


def _read_hf(input_path: str) -> Tuple[Architecture, Dict[str, Any], List[str], Dict[str, Tensor], List[str]]:
    folder = _hub_download(input_path[len(HUB_PREFIX):]) if input_path.startswith(HUB_PREFIX) else Path(input_path)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise UserError(f"{folder}: no config.json (expected a transformers RTDetrForObjectDetection folder)")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{config_file}: invalid JSON ({error})") from None
    if config.get("model_type") not in ("rt_detr", "rt_detr_v2"):
        raise UserError(f"{config_file}: model_type {config.get('model_type')!r} is not rt_detr or rt_detr_v2")
    arch, settings, class_names = architecture_from_hf_config(config)
    raw = _read_hf_weights(folder)
    state, unmatched = map_hf_state_dict(raw)
    return arch, settings, class_names, state, unmatched


def _read_hf_weights(folder: Path) -> Dict[str, Tensor]:
    safetensors_file = folder / "model.safetensors"
    if safetensors_file.is_file():
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(str(safetensors_file))
        except SafetensorError as error:
            raise UserError(f"{safetensors_file}: unreadable safetensors file ({error})") from None
    bin_file = folder / "pytorch_model.bin"
    if bin_file.is_file():
        return load_checkpoint(bin_file)
    raise UserError(f"{folder}: no model.safetensors or pytorch_model.bin")


def _hub_download(repo_id: str) -> Path:
    """Fetch a hub repository (config + weights) into the local cache; needs a network."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise UserError("hf:// ids need the huggingface_hub package (pip install huggingface_hub)") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=["config.json", "*.safetensors", "*.bin"]))
    except Exception as error:  # network, auth and missing-repo errors all end the same way for the user
        raise UserError(f"hf://{repo_id}: download failed ({type(error).__name__}: {str(error).splitlines()[0]})") \
            from None
