"""Scheduler and service lifecycle events published by the server service."""

from __future__ import annotations

from pydantic import Field

from aifactory.shared.messages.base import ID_PATTERN, Message, Model
from aifactory.shared.states import JobState

SERVICE_ID = Field(pattern=ID_PATTERN, description="The deployed service this is about.")


class Endpoint(Model):
    """Where one replica of a service answers."""

    host: str = Field(description="Host name or address the replica listens on.")
    port: int = Field(ge=1, le=65535, description="Its port.")
    url: str = Field(description="Base URL on the cluster, e.g. ``http://node12:8000``.")
    replica: int = Field(default=0, ge=0, description="Replica index within the service.")
    local_url: str | None = Field(
        default=None,
        description="Base URL of a tunnel to it on the machine running the server (the "
        "``slurm+ssh`` executor's port forward, e.g. ``http://127.0.0.1:40123``); unset "
        "when ``url`` is reachable from there as it is.",
    )

    @property
    def reachable_url(self) -> str:
        """The URL to use from the server's machine: the tunnel's, else the cluster's."""
        return self.local_url or self.url


class JobEvent(Message):
    """One observed job transition; the subject names the transition (``job.running``)."""

    service_id: str = SERVICE_ID
    job_id: str = Field(description="The scheduler's job id.")
    job_state: JobState = Field(description="The scheduler's precise state (node_fail, …).")
    reason: str | None = Field(default=None, description="Pending reason or end reason.")
    nodes: list[str] = Field(default_factory=list, description="Nodes the job runs on.")
    exit_code: int | None = Field(default=None, description="Exit code once it has ended.")
    submitted: bool = Field(
        default=False, description="Set on ``job.submitted`` only: the submission itself."
    )


class ServiceReady(Message):
    """Every replica answers its health path."""

    service_id: str = SERVICE_ID
    recipe: str = Field(description="``category/name`` of the deployed recipe.")
    endpoints: list[Endpoint] = Field(description="One per replica.")


class ServiceUnhealthy(Message):
    """Not healthy within the recipe's timeout (the job is cancelled), or no longer healthy."""

    service_id: str = SERVICE_ID
    reason: str = Field(description="What the health check saw.")
    endpoints: list[Endpoint] = Field(default_factory=list, description="Known endpoints.")
