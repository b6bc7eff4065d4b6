"""What to scrape for a deployed service, and the same list for a site Prometheus.

A running service has up to three kinds of targets: its server's own metrics path on each
endpoint (when the recipe names one), a node exporter on each of its nodes and a DCGM
exporter on each GPU node (both from the ``exporters-<i>.json`` files its job wrote).
Targets are validated models (:class:`ScrapeTarget`): a recipe label, a node name or a job
id that does not fit its pattern drops that target with a reason in the log, rather than
reaching a Prometheus configuration or the SD answer.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aifactory.shared.connection import (
    ConnectionFileError,
    NodeExporters,
    base_url,
    parse_exporters,
)
from aifactory.shared.connection import exporters_path as exporters_file
from aifactory.shared.messages.jobs import Endpoint
from aifactory.shared.messages.monitor import ScrapeTarget, TargetRole
from aifactory.shared.registry import BenchmarkRecord, ServiceRecord
from aifactory.shared.states import ServiceState

log = logging.getLogger(__name__)

#: Where exporters answer (both exporters' default path).
EXPORTER_PATH = "/metrics"

ReadFile = Callable[[Path], Awaitable[str]]


def reachable_url(endpoint: Endpoint) -> str:
    """The base URL this process reaches ``endpoint`` at: the one place that chooses.

    The ``slurm+ssh`` executor's tunnel (``local_url``) when there is one, else the
    endpoint's own URL.
    """
    return endpoint.reachable_url


def reachable_host(record: ServiceRecord, exporters: NodeExporters) -> str:
    """The name an exporter's node is reached at: the scheduler's name for the node (the
    one endpoints use), else the host name the job wrote."""
    if exporters.node_index < len(record.nodes):
        return record.nodes[exporters.node_index]
    return exporters.host


def _url(host: str, port: int, path: str) -> str:
    return base_url(host, port) + path


async def read_exporters(record: ServiceRecord, read: ReadFile) -> list[NodeExporters]:
    """The exporters files of every node of the service's job (missing ones skipped)."""
    found: list[NodeExporters] = []
    for index in range(max(1, len(record.nodes))):
        path = exporters_file(Path(record.workdir), index)
        try:
            text = await read(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
            continue
        try:
            found.append(parse_exporters(text, source=str(path)))
        except ConnectionFileError as exc:
            log.warning("ignoring %s", exc)
    return found


def expected_exporter_files(record: ServiceRecord) -> int:
    """How many exporters files the service's job will write (0: monitoring is off)."""
    spec = record.spec
    if spec is None or not spec.monitoring.enabled:
        return 0
    m = spec.monitoring
    if not (m.node_exporter or (m.dcgm_exporter and spec.resources.gpu > 0)):
        return 0
    return max(1, len(record.nodes))


def service_targets(
    record: ServiceRecord, exporters: Sequence[NodeExporters]
) -> list[ScrapeTarget]:
    """Every target of a running service, in a stable order; [] when not running."""
    spec = record.spec
    if record.state is not ServiceState.RUNNING or spec is None or record.job_id is None:
        return []
    monitoring = spec.monitoring
    if not monitoring.enabled:
        return []
    wanted: list[tuple[TargetRole, str, str]] = []  # role, node, url
    if monitoring.metrics_path is not None:
        for endpoint in record.endpoints:
            wanted.append(
                (
                    TargetRole.SERVICE,
                    endpoint.host,
                    reachable_url(endpoint) + monitoring.metrics_path,
                )
            )
    for found in sorted(exporters, key=lambda e: e.node_index):
        host = reachable_host(record, found)
        if found.node_exporter_port is not None:
            wanted.append(
                (TargetRole.NODE, host, _url(host, found.node_exporter_port, EXPORTER_PATH))
            )
        if found.dcgm_exporter_port is not None:
            wanted.append(
                (TargetRole.GPU, host, _url(host, found.dcgm_exporter_port, EXPORTER_PATH))
            )
    out: list[ScrapeTarget] = []
    counts: dict[TargetRole, int] = {}
    for role, node, url in wanted:
        n = counts[role] = counts.get(role, -1) + 1
        try:
            out.append(
                ScrapeTarget(
                    key=f"{record.service_id}-{role.value}-{n}",
                    url=url,
                    service_id=record.service_id,
                    recipe=record.recipe,
                    job_id=record.job_id,
                    node=node,
                    role=role,
                    labels=dict(monitoring.labels),
                )
            )
        except ValidationError as exc:
            log.warning("service %s: not scraping %s (%s)", record.service_id, url, exc)
    return out


def sd_groups(targets: Iterable[ScrapeTarget]) -> list[dict[str, Any]]:
    """Prometheus HTTP SD / file_sd target groups: one per target, its path as
    ``__metrics_path__`` (a Prometheus meta label, consumed before storage)."""
    return [
        {
            "targets": [t.address],
            "labels": {
                **t.all_labels(),
                "__metrics_path__": t.path,
                "__scheme__": t.url.split("://", 1)[0],
            },
        }
        for t in targets
    ]


def write_file_sd(path: Path, targets: Iterable[ScrapeTarget]) -> None:
    """Replace ``path`` atomically: Prometheus re-reads a file_sd file when it changes, and
    must never see half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(sd_groups(targets), indent=2, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def benchmarked(
    benchmarks: Iterable[BenchmarkRecord], services: Iterable[ServiceRecord]
) -> dict[str, set[str]]:
    """Service id → the benchmarks loading it now (named by service id, or by a URL that
    is one of its endpoints)."""
    by_url = {
        reachable_url(e).rstrip("/"): s.service_id
        for s in services
        if s.state is ServiceState.RUNNING
        for e in s.endpoints
    }
    out: dict[str, set[str]] = {}
    for b in benchmarks:
        if b.state.is_terminal:
            continue
        service_id = b.target.service_id
        url = b.target_url or b.target.url
        if service_id is None and url is not None:
            service_id = by_url.get(url.rstrip("/"))
        if service_id is not None:
            out.setdefault(service_id, set()).add(b.benchmark_id)
    return out
