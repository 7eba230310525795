"""A sweep on a Ray cluster: a head and a worker node started with ``ray start`` on this machine, the
sweep joins them with ``--ray-address``, and its trials run on both nodes.

The cluster is this test's own: its own port, temp folders and token, its processes in two process
groups that the test ends itself.  ``ray stop`` is never used: it would stop every Ray on the machine,
including local sweeps other tests run at the same time.
"""
from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import pytest

from .tiny_sweep import tiny_sweep_spec

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
NODE_START_SECONDS = 120

# Run in a separate Python: this pytest process may already hold a local Ray from another test, and
# Ray reads its authentication mode once per process.
PROBE = r"""
import json, sys
import ray
import ray._private.state   # the GCS actor table: works without the dashboard that ray.util.state needs

address, experiment = sys.argv[1], sys.argv[2]
ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
trials = {}
if experiment:
    from ray.tune import ExperimentAnalysis
    node_of_pid = {a["Pid"]: a["Address"]["NodeID"] for a in ray._private.state.actors().values()
                   if a["ActorClassName"].endswith("ImplicitFunc")}   # Tune's actor for a function trainable
                   # (named "ImplicitFunc" or "wrap_function.<locals>.ImplicitFunc", depending on how Ray got the class)
    for trial in ExperimentAnalysis(experiment).trials:
        trials[trial.trial_id] = node_of_pid.get(trial.last_result.get("pid"))
print("PROBE " + json.dumps({"nodes": nodes, "trials": trials}))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LocalCluster:
    """Two Ray nodes on this machine; ``env`` is what a driver needs to join them."""

    address: str
    env: Dict[str, str]
    folder: Path
    groups: List[int] = field(default_factory=list)

    def start_node(self, name: str, *args: str) -> None:
        temp_dir = self.folder / name
        ports = ["--dashboard-agent-listen-port", str(free_port()), "--object-store-memory", str(100 * 1024 ** 2)]
        with open(self.folder / f"{name}.log", "wb") as log:
            # A new session: `ray start` daemonizes the node's processes, they keep this process group.
            starter = subprocess.Popen([RAY, "start", *args, f"--temp-dir={temp_dir}", "--num-cpus=1",
                                        "--disable-usage-stats", *ports], stdout=log, stderr=subprocess.STDOUT,
                                       env=self.env, cwd=ROOT, start_new_session=True)
            self.groups.append(starter.pid)
            code = starter.wait(timeout=NODE_START_SECONDS)
        assert code == 0, f"ray start ({name}) failed:\n{(self.folder / f'{name}.log').read_text()[-3000:]}"

    def probe(self, experiment: str = "") -> dict:
        done = subprocess.run([sys.executable, "-c", PROBE, self.address, experiment], capture_output=True,
                              text=True, env=self.env, cwd=ROOT, timeout=90)
        lines = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
        assert done.returncode == 0 and lines, done.stderr[-3000:]
        return json.loads(lines[-1][len("PROBE "):])

    def stop(self) -> None:
        """SIGTERM both nodes' process groups, SIGKILL what is left; nobody else's Ray is touched."""
        for sig, seconds in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            alive = [g for g in self.groups if _group_alive(g)]
            for group in alive:
                try:
                    os.killpg(group, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and any(_group_alive(g) for g in alive):
                time.sleep(0.2)


def _group_alive(group: int) -> bool:
    """True while a process of the group runs (zombies waiting for init to reap them do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


@pytest.fixture
def two_node_cluster():
    # Short folders: Ray's Unix socket paths inside them must stay under 108 characters.
    folder = Path(tempfile.mkdtemp(prefix="tao-ray-", dir="/tmp"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    # Token authentication, as on a real cluster: every node and the driver share one token.
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), PYTHONPATH=str(ROOT))
    cluster = LocalCluster(address=f"127.0.0.1:{port}", env=env, folder=folder)
    try:
        cluster.start_node("head", "--head", f"--port={port}", "--include-dashboard=false",
                           f"--dashboard-port={free_port()}")
        cluster.start_node("worker", f"--address={cluster.address}")
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _sweep(spec: Path, *args: str, env: Dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "automl.cli", "sweep", "--skill", "rtdetr", "-e", str(spec),
         "--algorithm", "random", "--max-trials", "2", "--cpus-per-trial", "1", *args],
        cwd=spec.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_a_sweep_joins_a_two_node_ray_cluster_with_its_token_and_runs_trials_on_both_nodes(tmp_path,
                                                                                           two_node_cluster):
    cluster = two_node_cluster
    nodes = cluster.probe()["nodes"]
    assert len(nodes) == 2, f"expected a head and a worker node alive, found {nodes}"

    spec = tiny_sweep_spec(tmp_path, epochs=1, train_count=8, val_count=4)
    storage = tmp_path / "ray_storage"
    # The address from RAY_ADDRESS, Ray's own variable (as on a cluster node or in a Ray job) ...
    sweep = _sweep(spec, "--storage-path", str(storage), "--seed", "3",
                   env={**cluster.env, "RAY_ADDRESS": cluster.address})
    # ... meanwhile a driver given --ray-address without the cluster's token is refused, in one line that says
    # what to set.
    tokenless = {k: v for k, v in cluster.env.items() if k != "RAY_AUTH_TOKEN"}
    refused = _sweep(spec, "--ray-address", cluster.address, f"results_dir={tmp_path / 'refused'}",
                     env={**tokenless, "RAY_AUTH_MODE": "disabled"})
    out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, out[-2000:] + err[-3000:]
    _, refusal = refused.communicate(timeout=120)
    last_line = refusal.splitlines()[-1]
    assert refused.returncode == 2, refusal[-3000:]
    assert last_line.startswith(f"tao-automl sweep: error: --ray-address {cluster.address}: cannot join")
    assert "RAY_AUTH_MODE=token" in last_line

    with open(tmp_path / "results" / "automl" / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["status"] for r in rows) == ["completed", "completed"]
    assert (storage / "sweep").is_dir(), "Ray's experiment state is not in --storage-path"
    assert (tmp_path / "results" / "automl" / "export" / "model.onnx").is_file()

    # Each node has one CPU and each trial needs one: running side by side, they must be on different nodes.
    placed = cluster.probe(str(storage / "sweep"))["trials"]
    assert sorted(placed) == sorted(r["trial_id"] for r in rows)
    assert set(placed.values()) == set(nodes), f"trials by node: {placed}; nodes: {nodes}"
