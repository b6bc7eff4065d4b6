"""A real Prometheus on the stack's targets: its configuration, checked, and its process.

The configuration discovers the deployed services' targets through the ingress's HTTP SD
(``/api/v1/sd/prometheus``; the bearer token is read from a mode-0600 file in the state
directory through ``authorization.credentials_file``, never written into the YAML), or
from the monitor's ``file_sd`` file, and scrapes the stack's own services statically. It
is checked with ``promtool check config`` before Prometheus starts, and Prometheus then
replaces this process (``exec``), so a stop signal reaches it directly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from aifactory.shared.credentials import private_dir, write_private
from aifactory.shared.settings import Settings

CONFIG_FILE = "prometheus.yml"
TOKEN_FILE = "ingress-token"  # noqa: S105 - a file name; the token is in the file (0600)
SD_PATH = "/api/v1/sd/prometheus"
#: The stack's own services scraped as job ``aifactory-stack`` (component label).
STACK_COMPONENTS = {"server": "ingress_port", "client": "client_port", "monitor": "monitor_port"}


class PrometheusError(RuntimeError):
    """Prometheus cannot be configured or started; the message says what to do."""


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def prometheus_config(
    settings: Settings,
    *,
    token_file: Path | None,
    file_sd: bool = False,
    scrape_interval: float | None = None,
) -> dict[str, Any]:
    """The configuration as data (``yaml.safe_dump`` writes it: nothing is templated)."""
    interval = scrape_interval or settings.monitor.interval
    seconds = f"{interval:g}s"
    job: dict[str, Any] = {"job_name": "aifactory"}
    if file_sd:
        job["file_sd_configs"] = [
            {"files": [str(settings.effective_file_sd)], "refresh_interval": seconds}
        ]
    else:
        host = _loopback(settings.ingress_host)
        sd: dict[str, Any] = {
            "url": f"http://{host}:{settings.ingress_port}{SD_PATH}",
            "refresh_interval": seconds,
        }
        if token_file is not None:
            sd["authorization"] = {"type": "Bearer", "credentials_file": str(token_file)}
        job["http_sd_configs"] = [sd]
    stack = {
        "job_name": "aifactory-stack",
        "static_configs": [
            {"targets": [f"127.0.0.1:{getattr(settings, port)}"], "labels": {"component": name}}
            for name, port in STACK_COMPONENTS.items()
        ],
    }
    return {
        "global": {
            "scrape_interval": seconds,
            "scrape_timeout": f"{min(interval, settings.monitor.timeout):g}s",
            "evaluation_interval": seconds,
        },
        "scrape_configs": [job, stack],
    }


def write_config(
    settings: Settings, *, file_sd: bool = False, scrape_interval: float | None = None
) -> Path:
    """Write the token file (0600) and ``prometheus.yml`` under ``<state>/prometheus``."""
    folder = private_dir(settings.state_dir / "prometheus")
    token_file: Path | None = None
    if settings.api_token is not None and not file_sd:
        token_file = folder / TOKEN_FILE
        write_private(token_file, settings.api_token.get_secret_value())
    config = prometheus_config(
        settings, token_file=token_file, file_sd=file_sd, scrape_interval=scrape_interval
    )
    path = folder / CONFIG_FILE
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def check_config(path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        raise PrometheusError("promtool not found: install Debian's prometheus package")
    done = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise PrometheusError(f"promtool rejects {path}:\n{done.stdout}{done.stderr}")


def prometheus_argv(config: Path, data_dir: Path, port: int) -> list[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise PrometheusError("prometheus not found: install Debian's prometheus package")
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=7d",
    ]


def run_prometheus(
    settings: Settings,
    *,
    port: int,
    data_dir: Path | None = None,
    file_sd: bool = False,
    config_only: bool = False,
) -> None:
    """Write and check the configuration, then become Prometheus (or print the path)."""
    config = write_config(settings, file_sd=file_sd)
    check_config(config)
    if config_only:
        print(config)
        return
    data = data_dir or settings.state_dir / "prometheus" / "data"
    data.mkdir(parents=True, exist_ok=True)
    argv = prometheus_argv(config, data, port)
    os.execv(argv[0], argv)  # noqa: S606 - a fixed binary with our own arguments
