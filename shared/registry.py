"""Registries kept in JetStream KV buckets, updated with revision checks.

Every write is compare-and-set on the revision the writer read, so two writers (the poller
and a cancel handler, or two server instances) never overwrite each other's change: the
loser re-reads and re-applies its change function.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Generic, TypeVar

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field

from aifactory.shared.messages.base import utcnow
from aifactory.shared.messages.bench import BenchTarget
from aifactory.shared.messages.deploy import RecipeOverrides
from aifactory.shared.messages.jobs import Endpoint
from aifactory.shared.recipes.schema import Recipe
from aifactory.shared.results import BenchSummary
from aifactory.shared.states import BenchState, JobState, ServiceState
from aifactory.shared.workload import Workload

R = TypeVar("R", bound=BaseModel)


class RegistryConflict(RuntimeError):
    """A compare-and-set kept losing: too many concurrent writers on one key."""


class RecordExists(RuntimeError):
    """``create`` found the key already there (the command was handled before)."""


class StateChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: ServiceState
    job_state: JobState | None = None
    at: datetime = Field(default_factory=utcnow)


class AlertNote(BaseModel):
    """A failure pattern the logs service found in the job's output (``logs.<id>.alert``)."""

    model_config = ConfigDict(extra="forbid")

    pattern: str
    summary: str
    stream: str
    line: int
    at: datetime = Field(default_factory=utcnow)

    def text(self) -> str:
        return f"{self.pattern} ({self.stream} line {self.line}): {self.summary}"


#: Alerts kept on a service record, newest last (the stream keeps every one).
MAX_ALERT_NOTES = 20


class ServiceRecord(BaseModel):
    """What the registry knows of one deployed service."""

    model_config = ConfigDict(extra="forbid")

    service_id: str
    recipe: str
    overrides: RecipeOverrides = Field(default_factory=dict)
    request_id: str
    state: ServiceState = ServiceState.PENDING
    job_id: str | None = None
    job_name: str
    job_state: JobState | None = None
    reason: str | None = None
    exit_code: int | None = None
    nodes: list[str] = Field(default_factory=list)
    endpoints: list[Endpoint] = Field(default_factory=list)
    executor: str
    workdir: str
    script_path: str | None = None
    output_path: str | None = None
    #: The job's stderr file; ``None`` for jobs whose stderr joins ``output_path``.
    error_path: str | None = None
    #: The validated recipe after overrides, kept so the service can be understood (and
    #: re-resolved) even if the recipe file changes later.
    spec: Recipe | None = None
    cancel_requested: bool = False
    created: datetime = Field(default_factory=utcnow)
    updated: datetime = Field(default_factory=utcnow)
    #: When the job was first seen running: the health timeout counts from here.
    started: datetime | None = None
    ready: datetime | None = None
    ended: datetime | None = None
    #: Every service-state change, oldest first: the answer to "what happened to it?".
    history: list[StateChange] = Field(default_factory=list)
    #: Failure patterns found in the job's output, newest last (at most MAX_ALERT_NOTES).
    alerts: list[AlertNote] = Field(default_factory=list)

    def reason_with(self, own: str | None) -> str | None:
        """The reason to show: the scheduler's (or health check's) own, then the latest log
        alert if any, so an alert is not wiped by the next poll and the scheduler's word is
        not hidden by it."""
        parts = [own, self.alerts[-1].text() if self.alerts else None]
        return "; ".join(p for p in parts if p) or None

    def own_reason(self) -> str | None:
        """``reason`` without the alert part :meth:`reason_with` added."""
        if not self.alerts or self.reason is None:
            return self.reason
        tail = self.alerts[-1].text()
        if self.reason == tail:
            return None
        return self.reason.removesuffix(f"; {tail}")

    def add_alert(self, note: AlertNote) -> bool:
        """Record an alert (once: a redelivered one changes nothing); the reason shows it."""
        if any(
            (a.pattern, a.stream, a.line) == (note.pattern, note.stream, note.line)
            for a in self.alerts
        ):
            return False
        own = self.own_reason()
        self.alerts = [*self.alerts, note][-MAX_ALERT_NOTES:]
        self.reason = self.reason_with(own)
        return True

    def set_state(self, state: ServiceState) -> None:
        if not self.history or self.history[-1].state is not state:
            self.history.append(StateChange(state=state, job_state=self.job_state))
        self.state = state
        if state.is_terminal and self.ended is None:
            self.ended = utcnow()


class TargetNotReady(LookupError):
    """A benchmark aimed at a service that does not exist or is not running."""


def service_urls(
    service_id: str, record: ServiceRecord | None, *, from_cluster: bool = False
) -> list[str]:
    """The base URLs a benchmark of ``service_id`` loads: every endpoint, once it runs.

    The one rule for turning a service id into a target, for the CLI and the client service.
    Load sent from this machine goes through the tunnels when there are some
    (``Endpoint.reachable_url``); load sent from compute nodes (``from_cluster``: remote
    workers) uses the cluster's URLs.
    """
    if record is None:
        raise TargetNotReady(f"no service {service_id!r} (aifactory services ls)")
    if record.state is not ServiceState.RUNNING or not record.endpoints:
        raise TargetNotReady(f"service {service_id} is {record.state.value}, not running")
    return [e.url if from_cluster else e.reachable_url for e in record.endpoints]


class BenchmarkRecord(BaseModel):
    """What the benchmarks registry knows of one run (secrets masked)."""

    model_config = ConfigDict(extra="forbid")

    benchmark_id: str
    request_id: str
    state: BenchState = BenchState.PENDING
    target: BenchTarget
    target_url: str | None = None
    #: Every endpoint loaded (a service with several replicas has several).
    target_urls: list[str] = Field(default_factory=list)
    #: When the load started (an interrupted run's summary starts here).
    started: datetime | None = None
    workload: Workload
    reason: str | None = None
    results_dir: str | None = None
    summary: BenchSummary | None = None
    created: datetime = Field(default_factory=utcnow)
    updated: datetime = Field(default_factory=utcnow)


class KVRegistry(Generic[R]):
    def __init__(self, kv: KeyValue, model: type[R]) -> None:
        self.kv = kv
        self.model = model

    async def get(self, key: str) -> tuple[R, int] | None:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None
        if entry.value is None or entry.revision is None:
            return None
        return self.model.model_validate_json(entry.value), entry.revision

    async def create(self, key: str, record: R) -> int:
        try:
            return await self.kv.create(key, record.model_dump_json().encode())
        except KeyWrongLastSequenceError as exc:
            raise RecordExists(key) from exc

    async def update(self, key: str, change: Callable[[R], R | None], *, attempts: int = 20) -> R:
        """Read, apply ``change``, write if the revision is unchanged; retry on conflict.

        ``change`` returns the new record, or ``None`` to leave the record as it is.
        """
        for _ in range(attempts):
            current = await self.get(key)
            if current is None:
                raise KeyError(key)
            record, revision = current
            new = change(record.model_copy(deep=True))
            if new is None:
                return record
            if hasattr(new, "updated"):
                new = new.model_copy(update={"updated": utcnow()})
            try:
                await self.kv.update(key, new.model_dump_json().encode(), last=revision)
            except KeyWrongLastSequenceError:
                continue
            return new
        raise RegistryConflict(f"gave up updating {key!r} after {attempts} conflicting writes")

    async def keys(self) -> list[str]:
        try:
            return list(await self.kv.keys())
        except NoKeysError:
            return []

    async def all(self) -> list[R]:
        records = []
        for key in await self.keys():
            found = await self.get(key)
            if found is not None:
                records.append(found[0])
        return records
