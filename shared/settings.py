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
from pydantic import BaseModel, ByteSize, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from aifactory.shared.recipes.fields import SetupCommand

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


def _home_ssh(name: str) -> Path:
    return Path.home() / ".ssh" / name


class SshSettings(BaseModel):
    """The login node the ``slurm+ssh`` executor drives SLURM through (``AIFACTORY_SSH__*``).

    One persistent connection carries every scheduler command, the SFTP file access and the
    port forwards to services on compute nodes. The host key is always checked against
    ``known_hosts``; a key is only added there when ``trust_on_first_use`` asks for it.
    """

    host: str | None = Field(default=None, description="The login node (name or address).")
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Its SSH port; unset: ~/.ssh/config's, else 22."
    )
    user: str | None = Field(
        default=None, description="The user on the cluster; unset: ~/.ssh/config's, else yours."
    )
    key_file: Path | None = Field(
        default=None,
        description="A private key file; unset: the SSH agent (SSH_AUTH_SOCK) and ~/.ssh/id_*.",
    )
    proxy_jump: str | None = Field(
        default=None,
        description="Jump hosts as OpenSSH's ProxyJump: '[user@]host[:port]', comma-separated "
        "for several hops; each hop's host key is checked like the login node's.",
    )
    known_hosts: Path = Field(
        default_factory=lambda: _home_ssh("known_hosts"),
        description="The OpenSSH known_hosts file every host key is checked against.",
    )
    trust_on_first_use: bool = Field(
        default=False,
        description="Accept a host key known_hosts does not list yet: print its fingerprint "
        "and record it. A key that differs from a recorded one is refused regardless.",
    )
    config_file: Path | None = Field(
        default_factory=lambda: _home_ssh("config"),
        description="An OpenSSH client config read for what is not set here (read only when "
        "it exists); None: read none.",
    )
    connect_timeout: float = Field(default=15.0, gt=0, description="Seconds to log in.")
    command_timeout: float = Field(
        default=30.0, gt=0, description="Seconds any remote command or file operation may take."
    )
    keepalive_interval: float = Field(
        default=15.0, ge=0, description="Seconds between keepalives (0: none)."
    )
    keepalive_count_max: int = Field(
        default=3, ge=1, description="Unanswered keepalives before the connection counts as lost."
    )
    reconnect_max_delay: float = Field(
        default=30.0, gt=0, description="Ceiling of the back-off between reconnect attempts."
    )
    max_sessions: int = Field(
        default=8,
        ge=1,
        description="Remote commands run at once on the connection, each in a session kept "
        "open (OpenSSH's MaxSessions defaults to 10, and SFTP holds one).",
    )
    persistent_shell: bool = Field(
        default=True,
        description="Run commands in long-lived 'bash --noprofile --norc' shells, so your "
        "login shell's rc files run once per connection and not once per squeue or sbatch; "
        "false: one SSH exec per command.",
    )


class SiteSettings(BaseModel):
    """What a site adds to every job, whatever its recipe."""

    #: Commands run before every job's payload (``module load Apptainer``), as words or one
    #: string each; run as data (each word quoted), before the recipe's own ``setup``.
    setup: list[SetupCommand] = Field(default_factory=list)
    #: Model weights (HF_HOME), the Apptainer cache and Ollama models: a project or scratch
    #: path on the shared file system. Default: ``cache/`` beside the jobs folder, so never
    #: $HOME on a cluster (home quotas are small).
    cache_dir: Path | None = None
    #: Compute nodes without internet: jobs run with HF_HUB_OFFLINE=1 and expect what
    #: ``aifactory recipes prepare`` fetched on the login node.
    offline: bool = False


_MAX_AGE = "Remove an ended folder once nothing in it has changed for this many days."
_MAX_COUNT = "Keep at most this many ended folders (the newest); live ones are not counted."
_MAX_BYTES = (
    "Remove ended folders, oldest first, while the whole folder holds more than this (bytes, "
    "or a size such as '20GiB'); live folders count but are never removed."
)


class RetentionPolicy(BaseModel):
    """How long the folders of ended jobs (or finished benchmarks) are kept.

    A folder goes when any limit says so: older than ``max_age_days``, beyond the newest
    ``max_count``, or, oldest first, while the total is over ``max_bytes``. Folders of live
    jobs and folders whose state cannot be established are never removed. ``None`` turns a
    limit off (``null`` in the YAML config); all three off keeps everything.
    """

    model_config = ConfigDict(extra="forbid")

    max_age_days: float | None = Field(default=None, ge=0, description=_MAX_AGE)
    max_count: int | None = Field(default=None, ge=0, description=_MAX_COUNT)
    max_bytes: ByteSize | None = Field(default=None, ge=0, description=_MAX_BYTES)

    @property
    def limited(self) -> bool:
        return any(v is not None for v in (self.max_age_days, self.max_count, self.max_bytes))


class JobsRetention(RetentionPolicy):
    """Job folders are debugging material (experiments copy what they need): bounded by
    default. Setting one limit keeps the other defaults."""

    max_age_days: float | None = Field(default=30.0, ge=0, description=_MAX_AGE)
    max_count: int | None = Field(default=1000, ge=0, description=_MAX_COUNT)
    max_bytes: ByteSize | None = Field(default=ByteSize(20 * 1024**3), ge=0, description=_MAX_BYTES)


class RetentionSettings(BaseModel):
    """Retention of job folders and benchmark results (``aifactory gc``)."""

    model_config = ConfigDict(extra="forbid")

    jobs: JobsRetention = Field(
        default_factory=JobsRetention,
        description="Job folders (rendered script, output, connection file) of ended jobs: "
        "debugging material, kept 30 days, at most 1000 of them and 20 GiB by default.",
    )
    benchmarks: RetentionPolicy = Field(
        default_factory=RetentionPolicy,
        description="Benchmark results (summary, records, report): data, kept forever unless "
        "a limit is set here.",
    )
    interval_hours: float | None = Field(
        default=24.0,
        gt=0,
        description="How often the server service applies the policies; None: only when "
        "someone runs 'aifactory gc --apply'.",
    )


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
    site: SiteSettings = Field(default_factory=SiteSettings)
    #: The login node for the ``slurm+ssh`` executor.
    ssh: SshSettings = Field(default_factory=SshSettings)
    #: The bus URL load workers on compute nodes connect to, when the services' own
    #: (``nats_url``) is a loopback address they cannot reach. Required then, for any
    #: executor but ``local``.
    worker_nats_url: str | None = None

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
    #: ``aifactory up`` restarts a dead part after this many seconds, doubling while it keeps
    #: dying, up to the ceiling; for ever (a crash loop never stops the rest of the stack).
    restart_backoff: float = Field(default=0.5, gt=0)
    restart_backoff_max: float = Field(default=30.0, gt=0)
    #: A remote load worker without its bus this long stops and says why (a NATS restart
    #: is a blip it rides out: its publishes are retried with the same message ids).
    worker_bus_loss_limit: float = Field(default=60.0, gt=0)

    ingress_host: str = "127.0.0.1"
    ingress_port: int = Field(default=8001, ge=0, le=65535)
    client_port: int = Field(default=8002, ge=0, le=65535)
    monitor_port: int = Field(default=8003, ge=0, le=65535)
    logs_port: int = Field(default=8004, ge=0, le=65535)
    #: The ingress's bearer token. Unset: the stack's, generated at first start.
    api_token: SecretStr | None = None
    #: Demos only: the ingress answers without a token, and only on loopback.
    insecure_loopback: bool = False
    ingress_auth_failures_per_minute: int = Field(
        default=20,
        ge=1,
        description="Failed authentications one client address may make in a minute; past "
        "that it is answered 429 (the right token included) until the minute has passed.",
    )
    #: Job scripts and outputs readable by their owner only (umask 077). A site that shares
    #: results with a group sets this false and relies on the directory's permissions.
    private_job_files: bool = True

    #: Where the client service keeps each benchmark's results (summary, records, CSV).
    benchmarks_dir: Path | None = None
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings,
        description="What 'aifactory gc' (and the server, periodically) removes.",
    )

    #: The logs service. Idle job files are checked (one stat each) this often; a file
    #: that just grew is read again at once.
    logs_poll_interval: float = Field(default=0.5, gt=0)
    #: A last line without its newline is held this long, then published as partial.
    logs_partial_timeout: float = Field(default=2.0, gt=0)
    #: Longer lines are cut into pieces of this many bytes (flagged ``split``).
    logs_max_line_bytes: int = Field(default=64 * 1024, ge=256, le=256 * 1024)
    #: A batch holds at most this many bytes of the file, and this many records.
    logs_batch_bytes: int = Field(default=128 * 1024, ge=1024, le=512 * 1024)
    logs_batch_lines: int = Field(default=5000, ge=1)
    #: After the job ended, its files are read until they have not grown for this long
    #: (a shared file system may show the last writes of a compute node late).
    logs_end_grace: float = Field(default=5.0, ge=0)
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

    @property
    def effective_cache_dir(self) -> Path:
        if self.site.cache_dir is not None:
            return self.site.cache_dir
        return self.effective_jobs_dir.parent / "cache"

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
