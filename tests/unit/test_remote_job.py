"""The workers' job: workload fields, recipe rules, rendering, share placement, worker index."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from aifactory.loadgen.errors import ConfigError
from aifactory.loadgen.remote.job import cancel_workers_job, render_loadgen, time_limit_minutes
from aifactory.loadgen.remote.sink import WorkerFailure
from aifactory.loadgen.remote.stages import remote_specs
from aifactory.loadgen.remote.worker import resolve_worker_index
from aifactory.loadgen.scheduler import plan_for_profile
from aifactory.shared.executors.local import LocalExecutor
from aifactory.shared.executors.slurm import SlurmExecutor
from aifactory.shared.recipes import RecipeError, validate_recipe
from aifactory.shared.settings import Settings
from aifactory.shared.workload import BenchConfig

REPO = Path(__file__).resolve().parents[2]
TARGET = "http://127.0.0.1:8000"


def config(**changes: Any) -> BenchConfig:
    base: dict[str, Any] = {
        "target": TARGET,
        "profile": "concurrency",
        "concurrency": 8,
        "requests": 100,
        "workers": 2,
        "worker_nodes": 3,
    }
    return BenchConfig.model_validate(base | changes)


def test_worker_fields_are_validated() -> None:
    assert config(worker_nodes=None).worker_nodes is None
    with pytest.raises(ValidationError, match="'worker_partition' needs 'worker_nodes'"):
        config(worker_nodes=None, worker_partition="cpu")
    with pytest.raises(ValidationError):
        config(worker_nodes=0)
    with pytest.raises(ValidationError):
        config(worker_partition="cpu --wrap=id")


def sbatch(script: str) -> dict[str, str]:
    lines = [
        ln.removeprefix("#SBATCH --") for ln in script.splitlines() if ln.startswith("#SBATCH")
    ]
    return dict(ln.split("=", 1) for ln in lines)


def exports(script: str) -> dict[str, str]:
    out = {}
    for line in script.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            out[key] = shlex.split(value)[0]
    return out


def test_slurm_script_runs_nodes_times_workers_tasks_through_srun(tmp_path: Path) -> None:
    settings = Settings(nats_url="nats://10.0.0.1:4222", state_dir=tmp_path, executor="slurm")
    cfg = config(worker_partition="batch", max_seconds=600)
    script = render_loadgen(
        cfg, benchmark_id="b-1", settings=settings, executor=SlurmExecutor(Path("/nonexistent"))
    )
    header = sbatch(script)
    assert (header["job-name"], header["nodes"], header["ntasks-per-node"]) == (
        "aif-bench-b-1",
        "3",
        "2",
    )
    assert header["partition"] == "batch" and header["mem"] == "1024M"
    assert header["time"] == str(time_limit_minutes(cfg)) == "25"
    env = exports(script)
    assert env["AIFACTORY_BENCHMARK_ID"] == "b-1"
    assert env["AIFACTORY_NATS_URL"] == "nats://10.0.0.1:4222"
    assert env["AIFACTORY_WORKER_LAUNCH"] == "srun"
    worker_line = next(ln for ln in script.splitlines() if ln.startswith("worker=("))
    words = shlex.split(worker_line.removeprefix("worker=(").removesuffix(")"))
    assert words[0].endswith("aifactory") and words[1:3] == ["bench", "worker"]
    assert words[3:] == ["--benchmark-id", "$AIFACTORY_BENCHMARK_ID"]
    assert "srun --kill-on-bad-exit=1" in script and "total=6" in script
    assert "api_key" not in script.lower()


def test_local_script_and_refused_credentials(tmp_path: Path) -> None:
    settings = Settings(nats_url="nats://127.0.0.1:4222", state_dir=tmp_path)
    script = render_loadgen(
        config(), benchmark_id="b2", settings=settings, executor=LocalExecutor(tmp_path / "x")
    )
    assert exports(script)["AIFACTORY_WORKER_LAUNCH"] == "local"
    secret = Settings(nats_url="nats://user:pw@10.0.0.1:4222", state_dir=tmp_path)
    with pytest.raises(ConfigError, match="AIFACTORY_NATS_TOKEN"):
        render_loadgen(
            config(), benchmark_id="b2", settings=secret, executor=LocalExecutor(tmp_path)
        )


def test_sweep_time_limit_covers_every_stage_and_is_capped() -> None:
    sweep = config(profile="sweep", sweep_rates=3, max_seconds=3600)
    assert time_limit_minutes(sweep) == 5 * 60 + 15
    assert time_limit_minutes(config(max_seconds=7 * 86400)) == 7 * 24 * 60


def test_shares_are_spread_over_nodes_first() -> None:
    cfg = config(concurrency=3, worker_nodes=3, workers=4)
    specs = remote_specs(cfg, plan_for_profile(cfg), nodes=3)
    # 3 shares on 3 nodes of 4 workers: task 0 of each node (indices 0, 4, 8).
    assert sorted(specs) == [0, 4, 8]
    assert sorted(s.worker_id for s in specs.values()) == [0, 1, 2]
    assert all(s.n_workers == 3 and s.plan.concurrency == 1 for s in specs.values())
    full = config(concurrency=100, worker_nodes=2, workers=3)
    specs = remote_specs(full, plan_for_profile(full), nodes=2)
    assert sorted(specs) == list(range(6))
    assert sum(s.plan.concurrency or 0 for s in specs.values()) == 100
    sync = config(profile="synchronous", concurrency=None)
    assert list(remote_specs(sync, plan_for_profile(sync), nodes=3)) == [0]


def test_worker_index_precedence() -> None:
    assert resolve_worker_index(4, {"SLURM_PROCID": "1"}) == 4
    # The local executor sets SLURM_PROCID=0 for the script: the launcher's index wins.
    assert resolve_worker_index(None, {"AIFACTORY_WORKER_ID": "3", "SLURM_PROCID": "0"}) == 3
    assert resolve_worker_index(None, {"SLURM_PROCID": "7"}) == 7
    with pytest.raises(WorkerFailure, match="no worker index"):
        resolve_worker_index(None, {})
    with pytest.raises(WorkerFailure, match="not a worker index"):
        resolve_worker_index(None, {"SLURM_PROCID": "x"})


CLIENT: dict[str, Any] = {
    "name": "lg",
    "category": "client",
    "runtime": "native",
    "template": "loadgen",
    "command": ["aifactory", "bench", "worker"],
}


def errors(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(RecipeError) as exc:
        validate_recipe(data)
    return {e.path: e.reason for e in exc.value.errors}


def test_client_recipes_may_have_no_ports_others_may_not() -> None:
    recipe = validate_recipe(CLIENT | {"resources": {"nodes": 4, "tasks_per_node": 8}})
    assert recipe.ports == {} and recipe.replica_ports() == [] and recipe.main_port == 0
    found = errors(CLIENT | {"category": "inference", "template": "inference"})
    assert "at least 1 port" in found["ports"]
    found = errors(CLIENT | {"command": ["lg", "--port", "{port}"]})
    assert "unknown placeholder {port}" in found["command[2]"]
    found = errors(CLIENT | {"template": "service", "resources": {"tasks_per_node": 2, "nodes": 2}})
    assert "only loadgen runs several" in found["resources.tasks_per_node"]
    assert "runs on one node" in found["resources.nodes"]


class _Jobs:
    def __init__(self) -> None:
        self.cancelled: list[str] = []

    async def find_by_name(self, name: str) -> list[str]:
        return ["11", "12"] if name == "aif-bench-b9" else []

    async def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)


async def test_leftover_jobs_are_found_by_name_and_cancelled() -> None:
    jobs = _Jobs()
    assert await cancel_workers_job(jobs, "b9") == ["11", "12"]  # type: ignore[arg-type]
    assert jobs.cancelled == ["11", "12"]
    assert await cancel_workers_job(jobs, "other") == []  # type: ignore[arg-type]


def test_workers_never_get_a_loopback_bus_they_cannot_reach(tmp_path: Path) -> None:
    """Off this machine, a loopback bus URL needs AIFACTORY_WORKER_NATS_URL: refused, not a
    job whose workers silently fail to connect."""
    slurm = SlurmExecutor(Path("/nonexistent"))
    for url in ("nats://127.0.0.1:4222", "nats://localhost:4222", "nats://[::1]:4222"):
        settings = Settings(nats_url=url, state_dir=tmp_path, executor="slurm")
        with pytest.raises(ConfigError, match="AIFACTORY_WORKER_NATS_URL"):
            render_loadgen(config(), benchmark_id="b3", settings=settings, executor=slurm)
    explicit = Settings(
        nats_url="nats://127.0.0.1:4222",
        worker_nats_url="nats://login1.cluster:4222",
        state_dir=tmp_path,
        executor="slurm",
    )
    script = render_loadgen(config(), benchmark_id="b3", settings=explicit, executor=slurm)
    assert exports(script)["AIFACTORY_NATS_URL"] == "nats://login1.cluster:4222"
    secret = explicit.model_copy(update={"worker_nats_url": "nats://u:p@login1:4222"})
    with pytest.raises(ConfigError, match="carries credentials"):
        render_loadgen(config(), benchmark_id="b3", settings=secret, executor=slurm)


def test_workers_from_a_laptop_use_srun_and_the_clusters_aifactory(tmp_path: Path) -> None:
    from aifactory.shared.executors.slurm_ssh import SlurmSshExecutor

    settings = Settings(
        nats_url="nats://127.0.0.1:4222",
        worker_nats_url="nats://10.0.0.1:4222",
        state_dir=tmp_path,
        executor="slurm+ssh",
        jobs_dir=Path("/project/scratch/p1/me/jobs"),
        ssh={"host": "login.example.org"},
    )
    executor = SlurmSshExecutor.from_settings(settings)
    script = render_loadgen(config(), benchmark_id="b4", settings=settings, executor=executor)
    assert exports(script)["AIFACTORY_WORKER_LAUNCH"] == "srun"
    worker_line = next(ln for ln in script.splitlines() if ln.startswith("worker=("))
    assert shlex.split(worker_line.removeprefix("worker=(").removesuffix(")"))[0] == "aifactory"
