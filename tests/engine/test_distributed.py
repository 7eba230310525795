"""torchrun environment, the relaunch command, and DDP equivalence with one process."""
import os
import socket
import sys

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from trainers.rtdetr.engine import distributed


def test_node_rank_is_copied_to_an_unset_rank():
    env = {"NODE_RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "0"}
    assert distributed.read_env(env) == distributed.DistEnv(rank=3, local_rank=0, world_size=4)
    assert env["RANK"] == "3"
    env = {"NODE_RANK": "1", "RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}
    assert distributed.read_env(env).rank == 5


def test_single_process_defaults():
    env = distributed.read_env({})
    assert env == distributed.DistEnv(0, 0, 1) and not env.distributed and env.is_main


def test_torchrun_command_single_node_and_multi_node():
    single = distributed.torchrun_command(["-m", "automl.cli", "train", "-e", "spec.yaml"], nproc_per_node=2,
                                          nnodes=1, environ={})
    assert single[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert single[3:] == ["--nproc_per_node", "2", "--nnodes", "1", "--standalone",
                          "--module", "automl.cli", "train", "-e", "spec.yaml"]
    multi = distributed.torchrun_command(["train.py", "x=1"], nproc_per_node=4, nnodes=2,
                                         environ={"NODE_RANK": "1", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "1234"})
    assert multi[3:] == ["--nproc_per_node", "4", "--nnodes", "2", "--node_rank", "1", "--master_addr", "10.0.0.1",
                         "--master_port", "1234", "train.py", "x=1"]


def test_no_relaunch_for_one_process():
    distributed.relaunch_under_torchrun(num_gpus=1, num_nodes=1)  # returns instead of exec'ing


def toy_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 2))


def global_batch():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(8, 6, generator=generator), torch.randn(8, 2, generator=generator)


def first_step(model, inputs, targets):
    """Loss (averaged over processes) and gradients of one step."""
    loss = nn.functional.mse_loss(model(inputs), targets)
    loss.backward()
    reduced = distributed.reduce_dict_mean({"loss": loss})["loss"]
    inner = distributed.unwrap_model(model)
    return reduced, {name: p.grad.clone() for name, p in inner.named_parameters()}


def _ddp_worker(rank, world_size, port, out_dir):
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size)})
    device = torch.device("cpu")
    env = distributed.init_distributed(device)
    try:
        assert distributed.is_distributed() and distributed.get_rank() == env.rank
        model = distributed.wrap_ddp(toy_model(), device)
        inputs, targets = global_batch()
        share = inputs.shape[0] // world_size
        mine = slice(rank * share, (rank + 1) * share)
        loss, grads = first_step(model, inputs[mine], targets[mine])
        gathered = distributed.all_gather_objects(rank)
        torch.save({"loss": loss, "grads": grads, "gathered": gathered}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        distributed.cleanup()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_on_the_same_global_batch(tmp_path):
    mp.spawn(_ddp_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    inputs, targets = global_batch()
    single_loss, single_grads = first_step(toy_model(), inputs, targets)
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert result["gathered"] == [0, 1]
        assert torch.allclose(result["loss"], single_loss, atol=1e-6)
        for name, grad in single_grads.items():
            assert torch.allclose(result["grads"][name], grad, atol=1e-6), name


PROBE = """
import json, sys
sys.path.insert(0, {root!r})
from trainers.rtdetr.engine import distributed
distributed.relaunch_under_torchrun(num_gpus=2, num_nodes=1, argv=[__file__, *sys.argv[1:]])
env = distributed.read_env()
print(json.dumps({{"rank": env.rank, "world": env.world_size, "args": sys.argv[1:]}}), flush=True)
"""


@pytest.mark.slow
def test_relaunch_replaces_the_process_by_torchrun_with_the_same_arguments(tmp_path):
    import json
    import subprocess
    from pathlib import Path

    script = tmp_path / "probe.py"
    script.write_text(PROBE.format(root=str(Path(__file__).resolve().parents[2])))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                            "TORCHELASTIC_RUN_ID")}
    done = subprocess.run([sys.executable, str(script), "x=1"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert sorted(lines, key=lambda r: r["rank"]) == [{"rank": 0, "world": 2, "args": ["x=1"]},
                                                       {"rank": 1, "world": 2, "args": ["x=1"]}]
