"""Settings from ``AIFACTORY_*`` environment variables and an optional YAML config file.

Precedence (highest first): explicit keyword arguments, environment, the YAML file named by
``AIFACTORY_CONFIG`` (or ``~/.config/aifactory/config.yaml`` when present), defaults.
Nested values use ``__`` in env var names, e.g. ``AIFACTORY_SLURM__PARTITION=gpu``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

#: The ``aifactory`` package as imported (not resolved through the repository's symlinks):
#: recipes and container definitions ship inside it, in a wheel as in a checkout.
PACKAGE_ROOT = Path(__file__).absolute().parent.parent
#: The checkout (or site-packages) the package sits in: where provenance looks for git.
REPO_ROOT = PACKAGE_ROOT.parent


class SlurmSettings(BaseModel):
    """Defaults applied when a recipe leaves them open."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    #: Extra directory prepended to PATH to find sbatch/squeue/scontrol/scancel/sacct.
    bin_dir: Path | None = None


#: Metric names the monitor publishes on the bus by default (regular expressions, matched
#: against the whole name): what the report, ``monitor watch`` and the benchmark aggregates
#: read. A site Prometheus scrapes everything itself (HTTP SD); the bus carries key series.
DEFAULT_MONITOR_KEEP = (
    r"vllm:.*",
    # dcgm-exporter's default counters that the report and dashboards read, and the usual
    # companions; its other default counters (ECC, remapped rows, NVLink, vGPU) stay in a
    # site Prometheus: on the bus, 8 GPUs x 25 fields would be ~50 KB per scrape.
    r"DCGM_FI_DEV_(GPU_UTIL|MEM_COPY_UTIL|FB_USED|FB_FREE|FB_RESERVED|POWER_USAGE|GPU_TEMP"
    r"|MEMORY_TEMP|SM_CLOCK|TOTAL_ENERGY_CONSUMPTION|XID_ERRORS)",
    r"DCGM_FI_PROF_(GR_ENGINE_ACTIVE|PIPE_TENSOR_ACTIVE|DRAM_ACTIVE|SM_ACTIVE|SM_OCCUPANCY)",
    r"node_cpu_seconds_total",
    r"node_memory_(MemTotal|MemAvailable|MemFree|Cached|Buffers)_bytes",
    r"node_load(1|5|15)",
    r"node_network_(receive|transmit)_bytes_total",
    r"qdrant_.*",
)


class MonitorSettings(BaseModel):
    """The monitor service: how often it scrapes, how long it waits, what it keeps."""

    model_config = ConfigDict(extra="forbid")

    #: Seconds between scrapes of a target, and while a benchmark runs on its service.
    interval: float = Field(default=5.0, gt=0)
    benchmark_interval: float = Field(default=1.0, gt=0)
    #: Per-scrape timeout (a slow target only delays itself) and scrapes in flight at once.
    timeout: float = Field(default=4.0, gt=0)
    concurrency: int = Field(default=32, ge=1)
    #: A larger exposition is a failed scrape (and is not read further).
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    keep: tuple[str, ...] = DEFAULT_MONITOR_KEEP
    #: Prometheus ``file_sd`` file the monitor keeps current (default: state dir).
    file_sd: Path | None = None
    #: ``aifactory up --with-prometheus``: its port (0: one of the user's free ports).
    prometheus_port: int = Field(default=0, ge=0, le=65535)


def _default_config_file() -> Path | None:
    explicit = os.environ.get("AIFACTORY_CONFIG")
    if explicit:
        return Path(explicit)
    candidate = Path(platformdirs.user_config_dir("aifactory")) / "config.yaml"
    return candidate if candidate.is_file() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AIFACTORY_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    #: The bus. Unset: the running stack's (``stack.json``), else ``nats://127.0.0.1:4222``.
    nats_url: str = "nats://127.0.0.1:4222"
    #: Credentials for a site NATS (the embedded one's come from the state directory):
    #: a token, a user and password, or a NATS ``.creds`` file (JWT + nkey seed)…
    nats_token: SecretStr | None = None
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_creds: Path | None = None
    #: …or an aifactory secrets file (JSON ``{"user", "password"}`` or ``{"token"}``, mode
    #: 0600): how job scripts hand credentials to load workers without writing them down.
    nats_secrets_file: Path | None = None
    #: TLS to the bus: the CA that signed the server's certificate, and a client certificate.
    nats_tls_ca: Path | None = None
    nats_tls_cert: Path | None = None
    nats_tls_key: Path | None = None
    state_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_state_dir("aifactory")))
    recipes_dir: Path = PACKAGE_ROOT / "recipes"
    #: Where each job gets a folder with its rendered script and output. Must be visible to
    #: compute nodes when the executor is ``slurm`` (a shared file system on real clusters).
    jobs_dir: Path | None = None
    #: A registered executor's name (``local``, ``slurm``, or a plugin's).
    executor: str = "local"
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)

    #: Job-state polling: first interval, and the ceiling the back-off grows to.
    poll_interval: float = Field(default=2.0, gt=0)
    poll_max_interval: float = Field(default=30.0, gt=0)
    #: Health checks of a starting service.
    health_interval: float = Field(default=1.0, gt=0)
    #: A command not acknowledged within this time is redelivered (its handler crashed).
    command_ack_wait: float = Field(default=30.0, gt=0)
    command_max_deliver: int = Field(default=5, ge=1)
    #: After a crash, a service recorded without a job id is only resubmitted when no job of
    #: its name has appeared for this long: an sbatch started by the dead process may still
    #: land (submitting at once could make two jobs).
    submit_grace: float = Field(default=45.0, ge=0)

    ingress_host: str = "127.0.0.1"
    ingress_port: int = Field(default=8001, ge=0, le=65535)
    client_port: int = Field(default=8002, ge=0, le=65535)
    monitor_port: int = Field(default=8003, ge=0, le=65535)
    logs_port: int = Field(default=8004, ge=0, le=65535)
    #: The ingress's bearer token. Unset: the stack's, generated at first start.
    api_token: SecretStr | None = None
    #: Demos only: the ingress answers without a token, and only on loopback.
    insecure_loopback: bool = False
    #: Job scripts and outputs readable by their owner only (umask 077). A site that shares
    #: results with a group sets this false and relies on the directory's permissions.
    private_job_files: bool = True

    #: Where the client service keeps each benchmark's results (summary, records, CSV).
    benchmarks_dir: Path | None = None
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)

    @field_validator("executor")
    @classmethod
    def _known_executor(cls, name: str) -> str:
        from aifactory.shared.executors.base import EXECUTORS  # the registry imports settings

        EXECUTORS.get(name)  # raises with the known names
        return name

    @property
    def effective_benchmarks_dir(self) -> Path:
        return (
            self.benchmarks_dir
            if self.benchmarks_dir is not None
            else self.state_dir / "benchmarks"
        )

    @property
    def effective_file_sd(self) -> Path:
        """The ``file_sd`` targets file the monitor writes (Prometheus ``file_sd_configs``)."""
        if self.monitor.file_sd is not None:
            return self.monitor.file_sd
        return self.state_dir / "monitor" / "file_sd.json"

    @property
    def effective_jobs_dir(self) -> Path:
        return self.jobs_dir if self.jobs_dir is not None else self.state_dir / "jobs"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _default_config_file()
        if config_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
