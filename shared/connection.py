"""The connection file a job writes once its servers listen: host, ports, pid, start time.

As Open OnDemand's batch-connect does, a job picks its ports on its node at start (the
recipe's port first, a free one in a range when that is taken: two services of one recipe
on one node must both run) and writes ``connection.json`` into its job folder. The server
reads it to publish the endpoints. The file is
written by the job script (rendered from ``_connect.sh.j2``) and read here; this model is
the one definition of its shape.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from pydantic import Field, ValidationError

from aifactory.shared.messages.jobs import Endpoint
from aifactory.shared.strict import StrictModel

CONNECTION_FILE = "connection.json"

PortName = str


class ReplicaConnection(StrictModel):
    """One server process of the job and where it listens."""

    index: int = Field(ge=0, description="Replica index, from 0.")
    host: str = Field(min_length=1, max_length=255, description="Node it runs on.")
    port: int = Field(ge=1, le=65535, description="Port its server listens on.")


class JobConnection(StrictModel):
    """What ``connection.json`` holds."""

    job_id: str = Field(description="The scheduler's job id.")
    host: str = Field(min_length=1, max_length=255, description="The first node's host name.")
    pid: int = Field(description="The job script's process id on that node.")
    started: datetime = Field(description="When the ports were chosen (UTC).")
    #: Every named port of the recipe as chosen on the first node (``http``, ``grpc``…).
    ports: dict[PortName, int] = Field(default_factory=dict)
    #: One entry per server process; replicas may span nodes.
    replicas: list[ReplicaConnection] = Field(default_factory=list)


class ConnectionFileError(ValueError):
    """The job wrote a connection file that cannot be used."""


def connection_path(workdir: Path) -> Path:
    return workdir / CONNECTION_FILE


def parse_connection(text: str, *, source: str = CONNECTION_FILE) -> JobConnection:
    try:
        return JobConnection.model_validate_json(text)
    except ValidationError as exc:
        raise ConnectionFileError(f"{source}: {exc}") from exc


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}"


def endpoints(connection: JobConnection, host_for: Callable[[str], str]) -> list[Endpoint]:
    """One endpoint per replica; ``host_for`` maps a node name to the address to dial (the
    ``local`` executor dials loopback, whatever the machine calls itself)."""
    out = []
    for replica in connection.replicas:
        host = host_for(replica.host)
        out.append(
            Endpoint(
                host=host,
                port=replica.port,
                url=base_url(host, replica.port),
                replica=replica.index,
            )
        )
    return out


#: ``exporters-<node index>.json``: one per node of the job, written by ``_exporters.sh.j2``.
EXPORTERS_FILE = "exporters-{index}.json"


class NodeExporters(StrictModel):
    """The metrics exporters the job started (or found) on one of its nodes.

    Named by the node's index in the allocation (``SLURM_NODEID``), not its host name, so a
    reader knows every file name from the job's node count alone (no directory listing,
    which a remote executor may not offer) and maps it onto the scheduler's node list, the
    same names endpoints are built from.
    """

    node_index: int = Field(ge=0, description="Position of the node in the allocation.")
    host: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$", description="Its short host name."
    )
    node_exporter_port: int | None = Field(
        default=None, ge=1, le=65535, description="prometheus-node-exporter, if running."
    )
    dcgm_exporter_port: int | None = Field(
        default=None, ge=1, le=65535, description="dcgm-exporter, if the node has GPUs."
    )


def exporters_path(workdir: Path, index: int) -> Path:
    return workdir / EXPORTERS_FILE.format(index=index)


def parse_exporters(text: str, *, source: str = "exporters file") -> NodeExporters:
    try:
        return NodeExporters.model_validate_json(text)
    except ValidationError as exc:
        raise ConnectionFileError(f"{source}: {exc}") from exc
