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
from pydantic import BaseModel, Field, SecretStr, field_validator
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
    #: Job scripts and outputs readable by their owner only (umask 077). A site that shares
    #: results with a group sets this false and relies on the directory's permissions.
    private_job_files: bool = True

    #: Where the client service keeps each benchmark's results (summary, records, CSV).
    benchmarks_dir: Path | None = None

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
