"""Paths to the schemas the reader is tested on: NVIDIA's (copied fixtures) and our generated one."""
from pathlib import Path

from search_spaces.schema_reader import load_schema_file, read_schema
from search_spaces.space import merge_skill_hints

HERE = Path(__file__).resolve().parent
BANK = HERE / "tao-skill-bank"
NVIDIA_RTDETR = BANK / "tao-train-rtdetr" / "schemas" / "train.schema.json"
DINO = BANK / "tao-train-dino" / "schemas" / "train.schema.json"
MASK2FORMER = BANK / "tao-train-mask2former" / "schemas" / "train.schema.json"
COSMOS = BANK / "tao-finetune-cosmos-reason" / "schemas" / "train.schema.json"
OURS = HERE.parents[1] / "trainers" / "rtdetr" / "skill" / "schemas" / "train.schema.json"
NVIDIA_SCHEMAS = {"rtdetr": NVIDIA_RTDETR, "dino": DINO, "mask2former": MASK2FORMER, "cosmos-reason": COSMOS}


def read(path, with_rtdetr_hints=False):
    """A schema as the search-space builder sees it (optionally with the rtdetr skill's x_* hints)."""
    schema = read_schema(load_schema_file(path), source=path.parent.parent.name)
    if with_rtdetr_hints:
        schema = merge_skill_hints(schema, read_schema(load_schema_file(OURS)))
    return schema
