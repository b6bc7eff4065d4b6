"""The workers' batch job: rendered from ``recipes/client/loadgen.yaml``, submitted once.

Why a recipe and not a hand-written sbatch line: the job then goes through the same
validation, quoting and executors as every deployed service (``local`` for laptops and CI,
``slurm`` on clusters), its script is kept beside its output, and a site adapts it by editing
a YAML file. Everything that varies per run (nodes, workers per node, time limit, partition,
benchmark id, NATS URL) is an override or a non-secret environment value of the script.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import sysconfig
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aifactory.loadgen.errors import ConfigError
from aifactory.shared.executors.base import Executor
from aifactory.shared.recipes import RecipeError, load_recipe
from aifactory.shared.recipes.site import apply_site
from aifactory.shared.render import render_script
from aifactory.shared.settings import Settings
from aifactory.shared.workload import BenchConfig, ProfileKind

LOADGEN_RECIPE = "client/loadgen"
#: Margin on top of the load itself: start-up, stage hand-overs, the final flush.
JOB_TIME_MARGIN_S = 900.0
MAX_TIME_LIMIT_MIN = 7 * 24 * 60
#: Memory asked per worker (per node: this times workers, at least 1 GiB).
MEMORY_PER_WORKER_MB = 512


def job_name(benchmark_id: str) -> str:
    return f"aif-bench-{benchmark_id}"


def log_id(benchmark_id: str) -> str:
    """The workers' job's name on the logs bus (``logs.bench-<id>.out``) and in its script."""
    return f"bench-{benchmark_id}"


def job_workdir(settings: Settings, benchmark_id: str) -> Path:
    return settings.effective_jobs_dir / job_name(benchmark_id)


def stage_count(config: BenchConfig) -> int:
    """Stages the run has at most: 1, or synchronous + throughput + the swept rates."""
    return 2 + config.sweep_rates if config.profile is ProfileKind.SWEEP else 1


def time_limit_minutes(config: BenchConfig) -> int:
    """Every stage may run to ``max_seconds``: the job must outlast that, within 7 days."""
    seconds = stage_count(config) * config.max_seconds + JOB_TIME_MARGIN_S
    return min(MAX_TIME_LIMIT_MIN, math.ceil(seconds / 60))


def launch_mode(executor: Executor) -> str:
    """``srun`` on SLURM; the ``local`` executor has no srun, the script forks the workers."""
    return "srun" if executor.has_srun else "local"


def worker_command(command: list[str], *, remote: bool = False) -> list[str]:
    """``aifactory`` beside this interpreter when it is there: a venv need not be on PATH.

    On a cluster the interpreter's directory must then be visible on the compute nodes
    (a shared file system), which is where sites keep virtual environments anyway. When the
    jobs run on another machine (``remote``: ``slurm+ssh`` from a laptop) this machine's
    paths mean nothing there: ``aifactory`` is then found on the compute nodes' PATH.
    """
    if command and command[0] == "aifactory" and not remote:
        local = Path(sysconfig.get_path("scripts")) / "aifactory"
        if local.is_file() and os.access(local, os.X_OK):
            return [str(local), *command[1:]]
    return command


def _is_loopback(url: str) -> bool:
    host = urlsplit(url.strip()).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def workers_nats_url(settings: Settings, executor: Executor) -> str:
    """The bus URL the workers' script gets: ``worker_nats_url``, else the services' own.

    The services' own URL is often a loopback address (the embedded NATS), which workers
    on compute nodes cannot reach: they would start, fail to connect and the benchmark
    would wait for them in vain. So unless the jobs run on this machine (``local``), a
    loopback URL needs ``worker_nats_url`` set explicitly, even to the same value on a
    single-node cluster where loopback does reach.
    """
    if settings.worker_nats_url is not None:
        return _checked_nats_url(settings.worker_nats_url)
    url = _checked_nats_url(settings.nats_url)
    if not executor.runs_jobs_here and all(_is_loopback(u) for u in url.split(",")):
        raise ConfigError(
            f"remote load workers run on compute nodes, which cannot reach the bus at {url} "
            "(a loopback address): set AIFACTORY_WORKER_NATS_URL to a NATS URL they can "
            "reach (the site's NATS, or a server listening on an address of the cluster "
            "network), or run the workers here (no worker_nodes)"
        )
    return url


def _checked_nats_url(url: str) -> str:
    """The URL is written into the script: credentials go in the secrets file instead."""
    if any("@" in part for part in url.split(",")):
        raise ConfigError(
            "the NATS URL carries credentials, which would be written into the workers' job "
            "script: give them as AIFACTORY_NATS_USER/_PASSWORD or AIFACTORY_NATS_TOKEN"
        )
    return url


SECRETS_FILE = "nats-secrets.json"


def secrets_path(settings: Settings, benchmark_id: str) -> Path:
    """Where the workers find their bus credentials: their job folder, mode 0600."""
    return job_workdir(settings, benchmark_id) / SECRETS_FILE


def worker_secrets(settings: Settings) -> str | None:
    """The JSON the workers' secrets file holds (user and password, or token), if any."""
    secret: dict[str, str] = {}
    if settings.nats_user is not None and settings.nats_password is not None:
        secret = {"user": settings.nats_user, "password": settings.nats_password.get_secret_value()}
    elif settings.nats_token is not None:
        secret = {"token": settings.nats_token.get_secret_value()}
    return json.dumps(secret) if secret else None


def worker_auth_env(settings: Settings, benchmark_id: str) -> dict[str, str]:
    """Paths (never secrets) the workers' script exports: their secrets file (written by
    the coordinator, deleted when the job ends), a NATS ``.creds`` file, TLS files."""
    env: dict[str, str] = {}
    if worker_secrets(settings) is not None:
        env["AIFACTORY_NATS_SECRETS_FILE"] = str(secrets_path(settings, benchmark_id))
    paths = {
        "AIFACTORY_NATS_CREDS": settings.nats_creds,
        "AIFACTORY_NATS_TLS_CA": settings.nats_tls_ca,
        "AIFACTORY_NATS_TLS_CERT": settings.nats_tls_cert,
        "AIFACTORY_NATS_TLS_KEY": settings.nats_tls_key,
    }
    env |= {name: str(path) for name, path in paths.items() if path is not None}
    return env


def render_loadgen(
    config: BenchConfig, *, benchmark_id: str, settings: Settings, executor: Executor
) -> str:
    """The batch script of the workers of ``benchmark_id`` (raises ConfigError)."""
    assert config.worker_nodes is not None
    resources: dict[str, Any] = {
        "nodes": config.worker_nodes,
        "tasks_per_node": config.workers,
        "time_limit": str(time_limit_minutes(config)),
        "memory": f"{max(1024, MEMORY_PER_WORKER_MB * config.workers)}M",
    }
    if config.worker_partition is not None:
        resources["partition"] = config.worker_partition
    try:
        base = load_recipe(LOADGEN_RECIPE, settings.recipes_dir)
        overrides: dict[str, Any] = {
            "resources": resources,
            "command": worker_command(list(base.command or []), remote=executor.remote_files),
        }
        recipe = apply_site(load_recipe(LOADGEN_RECIPE, settings.recipes_dir, overrides), settings)
        return render_script(
            recipe,
            job_name=job_name(benchmark_id),
            workdir=job_workdir(settings, benchmark_id),
            service_id=log_id(benchmark_id),
            extra_env={
                "AIFACTORY_BENCHMARK_ID": benchmark_id,
                "AIFACTORY_NATS_URL": workers_nats_url(settings, executor),
                "AIFACTORY_WORKER_LAUNCH": launch_mode(executor),
                "AIFACTORY_WORKER_BUS_LOSS_LIMIT": f"{settings.worker_bus_loss_limit:g}",
                **worker_auth_env(settings, benchmark_id),
            },
        )
    except RecipeError as exc:
        raise ConfigError(f"the workers' job cannot be made from {LOADGEN_RECIPE}: {exc}") from exc


async def cancel_workers_job(executor: Executor, benchmark_id: str) -> list[str]:
    """Cancel what is left of a benchmark's workers' job (e.g. after a client restart).

    Workers wait for orders until their job ends, so a coordinator that died mid-run
    leaves them idle until the time limit; reconciliation calls this to free the nodes.
    """
    job_ids = await executor.find_by_name(job_name(benchmark_id))
    for job_id in job_ids:
        await executor.cancel(job_id)
    return job_ids
