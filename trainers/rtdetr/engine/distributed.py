"""Multi-GPU / multi-node training through torchrun (``train.num_gpus``, ``train.num_nodes``).

One process per GPU, started by ``python -m torch.distributed.run``.  The
trainer calls :func:`relaunch_under_torchrun` first: when the spec asks for
more than one process and we are not under torchrun yet, it replaces the
current process by torchrun running the same command.  Inside each process
:func:`init_distributed` reads torchrun's environment and joins the group
(NCCL on GPUs, Gloo on CPUs).

Some cluster launchers set ``NODE_RANK`` but not ``RANK`` (one process per
node); as TAO does, ``NODE_RANK`` is then copied to ``RANK``.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, MutableMapping, Optional, Sequence

import torch
import torch.distributed as dist
from torch import nn

TORCHRUN_MARKER = "TORCHELASTIC_RUN_ID"  # set by torchrun in every worker it starts


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def read_env(environ: MutableMapping[str, str] = os.environ) -> DistEnv:
    """RANK / LOCAL_RANK / WORLD_SIZE from the environment (after copying NODE_RANK to an unset RANK)."""
    if "RANK" not in environ and "NODE_RANK" in environ:
        environ["RANK"] = environ["NODE_RANK"]
    return DistEnv(rank=int(environ.get("RANK", 0)), local_rank=int(environ.get("LOCAL_RANK", 0)),
                   world_size=int(environ.get("WORLD_SIZE", 1)))


def under_torchrun(environ: Mapping[str, str] = os.environ) -> bool:
    return TORCHRUN_MARKER in environ or ("WORLD_SIZE" in environ and "RANK" in environ
                                          and "MASTER_ADDR" in environ)


def torchrun_command(argv: Sequence[str], *, nproc_per_node: int, nnodes: int,
                     environ: Mapping[str, str] = os.environ) -> List[str]:
    """The command that runs ``argv`` (a script path or ``-m module`` and its arguments) under torchrun.

    One node uses ``--standalone`` (a free local port); several nodes use the
    static rendezvous from ``NODE_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
    """
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc_per_node),
               "--nnodes", str(nnodes)]
    if nnodes > 1:
        command += ["--node_rank", environ.get("NODE_RANK", environ.get("RANK", "0")),
                    "--master_addr", environ.get("MASTER_ADDR", "127.0.0.1"),
                    "--master_port", environ.get("MASTER_PORT", "29500")]
    else:
        command += ["--standalone"]
    argv = list(argv)
    if argv and argv[0] == "-m":
        command += ["--module"] + argv[1:]
    else:
        command += argv
    return command


def relaunch_under_torchrun(num_gpus: int, num_nodes: int, argv: Optional[Sequence[str]] = None) -> None:
    """Replace this process by torchrun when ``num_gpus * num_nodes > 1`` and we are not under torchrun.

    ``argv`` is the command to re-run (default: ``-m automl.cli`` and this
    process's arguments, which is how the ``tao-automl`` console script runs).
    Returns only when no relaunch is needed.
    """
    if num_gpus * num_nodes <= 1 or under_torchrun():
        return
    if argv is None:
        argv = ["-m", "automl.cli", *sys.argv[1:]]
    command = torchrun_command(argv, nproc_per_node=num_gpus, nnodes=num_nodes)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


def init_distributed(device: torch.device, env: Optional[DistEnv] = None) -> DistEnv:
    """Join the process group when the job has several processes (NCCL on CUDA, Gloo on CPU)."""
    env = env or read_env()
    if env.distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                rank=env.rank, world_size=env.world_size)
    return env


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel (or DataParallel) wrapper."""
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return model.module
    return model


def wrap_ddp(model: nn.Module, device: torch.device, find_unused_parameters: bool = False) -> nn.Module:
    """DistributedDataParallel around ``model`` when distributed, else ``model`` itself.

    BatchNorm becomes SyncBatchNorm on GPUs (the official recipe sets
    ``sync_bn: True``); Gloo on CPUs cannot run SyncBatchNorm.
    """
    if not is_distributed():
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index],
                                                   find_unused_parameters=find_unused_parameters)
    return nn.parallel.DistributedDataParallel(model, find_unused_parameters=find_unused_parameters)


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over all processes (a copy; the input is untouched)."""
    result = tensor.detach().clone()
    if is_distributed():
        dist.all_reduce(result, op=dist.ReduceOp.SUM)
        result /= get_world_size()
    return result


def reduce_dict_mean(values: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Every scalar of ``values`` averaged over all processes, in one collective call."""
    if not values:
        return {}
    keys = sorted(values)
    stacked = torch.stack([values[key].detach().float().reshape(()) for key in keys])
    stacked = all_reduce_mean(stacked)
    return dict(zip(keys, stacked.unbind(0)))


def all_gather_objects(obj: Any) -> List[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` (picklable objects; ``[obj]`` when not distributed)."""
    if not is_distributed():
        return [obj]
    gathered: List[Any] = [None] * get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every process."""
    if not is_distributed():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]
