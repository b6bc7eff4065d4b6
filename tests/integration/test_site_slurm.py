"""What a real cluster needs, on the real one-node SLURM cluster: the site's scheduler
defaults on every job, setup commands before the payload, and services of one recipe side by
side on one node (each job chooses its own ports)."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from aifactory.shared.natsd import EmbeddedNats, free_port
from aifactory.shared.settings import PACKAGE_ROOT
from tests.integration.server_stack import (
    ServerProcess,
    api_client,
    wait_for_state,
    write_test_recipes,
)
from tests.integration.slurmkit import slurm_up

pytestmark = [pytest.mark.slurm, pytest.mark.nats]


@pytest.fixture(scope="module", autouse=True)
def _slurm() -> None:
    slurm_up()


def venv_path() -> str:
    """The jobs inherit the server's environment: put this venv's scripts (aifactory) first."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])


def scontrol(job_id: str) -> dict[str, str]:
    out = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=20
    )
    assert out.returncode == 0, out.stderr
    return dict(word.split("=", 1) for word in out.stdout.split() if "=" in word)


async def test_site_defaults_and_setup_commands_reach_the_job(
    nats_server: EmbeddedNats, tmp_path: Path, jobs_dir: Path
) -> None:
    recipes = write_test_recipes(tmp_path / "recipes", port=free_port())
    recipe = recipes / "inference" / "httpserver.yaml"
    text = recipe.read_text().replace("  partition: cpu\n", "")  # left open: the site's
    recipe.write_text(text + 'setup:\n  - "touch recipe-setup-ran"\n')
    env = {
        "AIFACTORY_JOBS_DIR": str(jobs_dir),
        "AIFACTORY_SLURM__PARTITION": "cpu",
        "AIFACTORY_SLURM__ACCOUNT": "p200",
        "AIFACTORY_SLURM__QOS": "short",
        "AIFACTORY_SITE__SETUP": '["echo site setup $(touch site-pwned)"]',
    }
    server = ServerProcess(tmp_path, nats_server.url, executor="slurm", **env).start()
    try:
        async with api_client() as client:
            created = await client.post(
                f"{server.base}/api/v1/services", json={"recipe": "inference/httpserver"}
            )
            service_id = created.json()["service_id"]
            record = await wait_for_state(client, server.base, service_id, {"running"}, 60)
            job = scontrol(record["job_id"])
            assert (job["Account"], job["Partition"]) == ("p200", "cpu")
            script = Path(record["script_path"]).read_text()
            # QoS needs accounting (slurmdbd) to show in scontrol; the request is in the script.
            assert "#SBATCH --qos=short\n" in script and "#SBATCH --account=p200\n" in script
            workdir = Path(record["workdir"])
            output = Path(record["output_path"]).read_text()
            # Site setup first, then the recipe's, then the payload; values stayed words.
            site = output.index("aifactory: setup: echo site setup")
            assert site < output.index("aifactory: setup: touch recipe-setup-ran")
            assert output.index("recipe-setup-ran") < output.index("aifactory: starting")
            assert "site setup $(touch site-pwned)" in output
            assert (workdir / "recipe-setup-ran").is_file()
            assert not list(workdir.glob("site-pwned*"))
            await client.delete(f"{server.base}/api/v1/services/{service_id}")
            await wait_for_state(client, server.base, service_id, {"cancelled"}, 60)
    finally:
        server.stop()


def free_run_below_ephemeral(length: int = 3) -> int:
    """A first port whose ``length`` ports are free, below Linux's ephemeral range (32768+).

    Recipes name fixed ports (8000, 11434…) there; a port inside the ephemeral range can be
    taken by any outgoing connection between a job's claim and its server's bind, which
    failed a simulator here once (EADDRINUSE, exit 1)."""
    rng = random.Random()
    for _ in range(200):
        first = rng.randrange(10_000, 19_000)
        try:
            for port in range(first, first + length):
                with socket.socket() as sock:
                    sock.bind(("0.0.0.0", port))
        except OSError:
            continue
        return first
    raise AssertionError("no run of free ports in 10000-19000")


async def test_three_simulators_of_one_recipe_run_side_by_side_on_one_node(
    nats_server: EmbeddedNats, tmp_path: Path, jobs_dir: Path
) -> None:
    recipes = write_test_recipes(tmp_path / "recipes", port=free_port())
    shutil.copy(PACKAGE_ROOT / "recipes" / "inference" / "simulator.yaml", recipes / "inference")
    env = {"AIFACTORY_JOBS_DIR": str(jobs_dir), "PATH": venv_path()}
    server = ServerProcess(tmp_path, nats_server.url, executor="slurm", **env).start()
    wanted = free_run_below_ephemeral()
    overrides = {"ports": {"http": wanted}, "resources": {"time_limit": "00:05:00"}}
    ids: list[str] = []
    try:
        async with api_client() as client:
            for _ in range(3):  # all three at once, before any has started
                created = await client.post(
                    f"{server.base}/api/v1/services",
                    json={"recipe": "inference/simulator", "overrides": overrides},
                )
                assert created.status_code == 202, created.text
                ids.append(created.json()["service_id"])
            records = [
                await wait_for_state(client, server.base, sid, {"running"}, 90) for sid in ids
            ]
            ports = [r["endpoints"][0]["port"] for r in records]
            assert len(set(ports)) == 3 and wanted in ports, ports
            assert {tuple(r["nodes"]) for r in records} == {tuple(records[0]["nodes"])}
            for record in records:
                models = httpx.get(record["endpoints"][0]["url"] + "/v1/models", timeout=5)
                assert models.status_code == 200
            for sid in ids:
                await client.delete(f"{server.base}/api/v1/services/{sid}")
            for sid in ids:
                await wait_for_state(client, server.base, sid, {"cancelled"}, 60)
    finally:
        server.stop()


#: ``vllm serve MODEL --port P …`` played by the simulator (no GPU, no weights here).
VLLM_SHIM = """#!/bin/bash
[[ ${1-} == serve ]] || exit 2
model=$2
shift 2
port=""
prev=""
for arg in "$@"; do [[ $prev == --port ]] && port=$arg; prev=$arg; done
echo "vllm shim: GPUs ${CUDA_VISIBLE_DEVICES-none} port $port"
exec aifactory simulate --host 127.0.0.1 --port "$port" --model "$model" --ttft-ms 5 --itl-ms 1
"""


async def test_two_replicas_of_one_job_each_get_an_endpoint_and_their_gpu(
    nats_server: EmbeddedNats, tmp_path: Path, jobs_dir: Path
) -> None:
    recipes = write_test_recipes(tmp_path / "recipes", port=free_port())
    shutil.copy(
        PACKAGE_ROOT / "recipes" / "inference" / "vllm-replicas.yaml", recipes / "inference"
    )
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "vllm").write_text(VLLM_SHIM)
    (shim / "vllm").chmod(0o755)
    env = {"AIFACTORY_JOBS_DIR": str(jobs_dir), "PATH": f"{shim}{os.pathsep}{venv_path()}"}
    server = ServerProcess(tmp_path, nats_server.url, executor="slurm", **env).start()
    overrides = {
        "runtime": "native",
        "image": None,
        "secrets_env": [],
        "resources": {"gpu": 2, "cpus_per_task": 1, "memory": "1G", "time_limit": "00:05:00"},
        "replicas": {"gpu_per_replica": 1, "base_port": free_port()},
    }
    try:
        async with api_client() as client:
            created = await client.post(
                f"{server.base}/api/v1/services",
                json={"recipe": "inference/vllm-replicas", "overrides": overrides},
            )
            assert created.status_code == 202, created.text
            sid = created.json()["service_id"]
            record = await wait_for_state(client, server.base, sid, {"running"}, 90)
            endpoints = record["endpoints"]
            assert [e["replica"] for e in endpoints] == [0, 1]
            assert len({e["port"] for e in endpoints}) == 2
            for endpoint in endpoints:
                models = httpx.get(endpoint["url"] + "/v1/models", timeout=5).json()
                assert models["data"][0]["id"] == "facebook/opt-125m"
            output = Path(record["output_path"]).read_text()
            gpus = sorted(line.split()[3] for line in output.splitlines() if "vllm shim" in line)
            assert len(gpus) == 2 and gpus[0] != gpus[1]  # one GPU each, not the same
            await client.delete(f"{server.base}/api/v1/services/{sid}")
            await wait_for_state(client, server.base, sid, {"cancelled"}, 60)
    finally:
        server.stop()
