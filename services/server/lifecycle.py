"""Service lifecycle: from a deploy command to a tracked job, and every transition after.

All state lives in the KV registry; this class only holds the handles it needs. Every
registry write is compare-and-set, every transition is published as an event, and every
step is safe to repeat: a redelivered command, a restart mid-submit or a second poll of
the same state changes nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path

from faststream.nats import NatsBroker

from aifactory.services.server.metrics import ServerMetrics
from aifactory.services.server.tunnels import Tunnels
from aifactory.shared import subjects
from aifactory.shared.bus import publish
from aifactory.shared.connection import (
    CONNECTION_FILE,
    ConnectionFileError,
    endpoints,
    parse_connection,
)
from aifactory.shared.executors.base import Executor, ExecutorError, JobStatus
from aifactory.shared.messages import (
    DeployCancel,
    DeployRequested,
    JobEvent,
    ServiceReady,
    ServiceUnhealthy,
)
from aifactory.shared.messages.base import utcnow
from aifactory.shared.recipes import Recipe, RecipeError, load_service_recipe
from aifactory.shared.recipes.site import apply_site
from aifactory.shared.registry import KVRegistry, RecordExists, ServiceRecord
from aifactory.shared.render import render_script
from aifactory.shared.settings import Settings
from aifactory.shared.states import JobState, ServiceState, service_state_for

log = logging.getLogger(__name__)


def job_name_for(service_id: str) -> str:
    """Deterministic, so a restarted server can find a job it submitted but never recorded."""
    return f"aif-{service_id}"


class Lifecycle:
    def __init__(
        self,
        *,
        settings: Settings,
        broker: NatsBroker,
        executor: Executor,
        registry: KVRegistry[ServiceRecord],
        metrics: ServerMetrics,
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.executor = executor
        self.registry = registry
        self.metrics = metrics
        #: Forwards to the services' endpoints when the executor needs them (slurm+ssh).
        self.tunnels = Tunnels(executor, registry)
        #: Ids of services whose job is being followed; the poller queries exactly these.
        self.tracked: set[str] = set()
        self._recoveries: set[asyncio.Task[object]] = set()

    # -- commands -------------------------------------------------------------------------

    async def deploy(self, cmd: DeployRequested) -> None:
        started = time.perf_counter()
        if await self.registry.get(cmd.service_id) is not None:
            log.info("deploy %s already handled; ignoring repeat", cmd.service_id)
            self.metrics.deploys.labels("duplicate").inc()
            return
        record = ServiceRecord(
            service_id=cmd.service_id,
            recipe=cmd.recipe,
            overrides=cmd.overrides,
            request_id=cmd.id,
            job_name=job_name_for(cmd.service_id),
            executor=self.executor.kind,
            workdir=str(self.settings.effective_jobs_dir / cmd.service_id),
        )
        try:
            recipe = apply_site(
                load_service_recipe(cmd.recipe, self.settings.recipes_dir, cmd.overrides),
                self.settings,
            )
        except RecipeError as exc:
            record.set_state(ServiceState.FAILED)
            record.reason = str(exc)
            self.metrics.deploys.labels("invalid_recipe").inc()
            try:
                await self.registry.create(cmd.service_id, record)
            except RecordExists:
                return
            return
        record.spec = recipe
        record.set_state(ServiceState.PENDING)
        try:
            await self.registry.create(cmd.service_id, record)
        except RecordExists:
            self.metrics.deploys.labels("duplicate").inc()
            return
        await self._submit(record, recipe)
        self.metrics.submit_seconds.observe(time.perf_counter() - started)

    async def cancel(self, cmd: DeployCancel) -> None:
        found = await self.registry.get(cmd.service_id)
        if found is None:
            log.info("cancel for unknown service %s ignored", cmd.service_id)
            return
        record, _ = found
        if record.state.is_terminal:
            return

        def mark(r: ServiceRecord) -> ServiceRecord | None:
            if r.cancel_requested or r.state.is_terminal:
                return None
            r.cancel_requested = True
            return r

        record = await self.registry.update(cmd.service_id, mark)
        if record.job_id is not None:
            await self.executor.cancel(record.job_id)
            self.tracked.add(record.service_id)
        # With no job id yet, the submit path sees cancel_requested and cancels right after.

    # -- submission -----------------------------------------------------------------------

    async def _submit(self, record: ServiceRecord, recipe: Recipe) -> None:
        workdir = Path(record.workdir)
        try:
            script = render_script(
                recipe, job_name=record.job_name, workdir=workdir, service_id=record.service_id
            )
            job = await self.executor.submit(script, record.job_name, workdir)
        except (ExecutorError, RecipeError, OSError) as exc:
            await self._fail_before_job(record.service_id, f"submission failed: {exc}")
            return

        def attach(r: ServiceRecord) -> ServiceRecord:
            r.job_id = job.job_id
            r.job_state = JobState.PENDING
            r.script_path = str(job.script_path)
            r.output_path = str(job.output_path)
            r.error_path = str(job.error_path) if job.error_path else None
            return r

        updated = await self.registry.update(record.service_id, attach)
        self.metrics.deploys.labels("submitted").inc()
        self.tracked.add(record.service_id)
        await self._publish_job(updated, JobStatus(job.job_id, JobState.PENDING), submitted=True)
        if updated.cancel_requested:
            await self.executor.cancel(job.job_id)

    async def _fail_before_job(self, service_id: str, reason: str) -> None:
        def fail(r: ServiceRecord) -> ServiceRecord:
            r.set_state(ServiceState.FAILED)
            r.reason = reason
            r.ended = utcnow()
            return r

        await self.registry.update(service_id, fail)
        self.metrics.deploys.labels("failed").inc()
        log.error("service %s failed before a job existed: %s", service_id, reason)

    async def reconcile(self) -> None:
        """Bring the registry in line with the scheduler after a (re)start.

        Records with a job are tracked again; the next poll gives jobs that ended meanwhile
        their final state. Records without a job id may belong to a submission cut short by
        a crash: they are recovered in the background (see ``_recover_unsubmitted``).
        """
        for record in await self.registry.all():
            if record.state.is_terminal:
                continue
            if record.job_id is not None:
                self.tracked.add(record.service_id)
                if record.endpoints:  # its tunnels, back on their old ports if free
                    self._background(self._reexpose(record))
                continue
            self._background(self._recover_unsubmitted(record.service_id))

    def _background(self, work: Coroutine[None, None, object]) -> None:
        task: asyncio.Task[object] = asyncio.create_task(work)
        self._recoveries.add(task)
        task.add_done_callback(self._recoveries.discard)

    async def _reexpose(self, record: ServiceRecord) -> None:
        try:
            await self.tunnels.expose(record)
        except ExecutorError as exc:
            log.warning("tunnels of %s not re-opened yet: %s", record.service_id, exc)

    async def _recover_unsubmitted(self, service_id: str) -> None:
        """Adopt the job a dead process submitted, or submit once the grace has passed."""
        while True:
            found = await self.registry.get(service_id)
            if found is None or found[0].state.is_terminal or found[0].job_id is not None:
                return
            record = found[0]
            job_ids = await self.executor.find_by_name(record.job_name)
            if job_ids:
                await self._adopt(record, job_ids)
                return
            if record.cancel_requested:
                await self._end_without_job(service_id, ServiceState.CANCELLED)
                return
            age = (utcnow() - record.updated).total_seconds()
            if age >= self.settings.submit_grace:
                if record.spec is None:
                    await self._fail_before_job(service_id, "no recipe stored with the service")
                    return
                log.info("resubmitting %s: no job appeared within the grace", service_id)
                await self._submit(record, record.spec)
                return
            await asyncio.sleep(min(1.0, self.settings.submit_grace - age))

    async def _adopt(self, record: ServiceRecord, job_ids: list[str]) -> None:
        keep, extra = job_ids[0], job_ids[1:]
        for job_id in extra:  # never two jobs for one service
            await self.executor.cancel(job_id)

        def adopt(r: ServiceRecord) -> ServiceRecord:
            r.job_id = keep
            r.job_state = JobState.PENDING
            return r

        await self.registry.update(record.service_id, adopt)
        self.tracked.add(record.service_id)
        log.info("adopted job %s for %s after restart", keep, record.service_id)

    async def _end_without_job(self, service_id: str, state: ServiceState) -> None:
        def end(r: ServiceRecord) -> ServiceRecord:
            r.set_state(state)
            r.ended = utcnow()
            return r

        await self.registry.update(service_id, end)

    # -- observation ----------------------------------------------------------------------

    async def apply_status(self, before: ServiceRecord, status: JobStatus) -> ServiceRecord:
        """Record one polled job status; publish the transition if it is one.

        ``before`` is the record as the poll read it; the write itself re-reads and
        compare-and-sets, so a change made meanwhile is never lost.
        """
        service_id = before.service_id
        changed = (
            before.job_state != status.state
            or tuple(before.nodes) != status.nodes
            or before.reason != before.reason_with(status.reason)
        )
        if not changed:
            return before

        def observe(r: ServiceRecord) -> ServiceRecord | None:
            if r.state.is_terminal:
                return None
            healthy = r.state is ServiceState.RUNNING
            r.job_state = status.state
            r.reason = r.reason_with(status.reason)
            r.exit_code = status.exit_code
            if status.nodes and list(status.nodes) != r.nodes:
                r.nodes = list(status.nodes)
                r.endpoints = []  # (re)read from the job's connection file
            r.set_state(service_state_for(status.state, healthy=healthy))
            if status.state.is_active and r.started is None:
                r.started = utcnow()
            if status.state.is_terminal:
                r.ended = utcnow()
            return r

        after = await self.registry.update(service_id, observe)
        if after.state.is_terminal:
            self.tracked.discard(service_id)
            await self.tunnels.release(after)
        if after.job_state != before.job_state:
            self.metrics.transitions.labels(status.state.value).inc()
            await self._publish_job(after, status)
        return after

    async def discover_endpoints(self, record: ServiceRecord) -> ServiceRecord:
        """Read the job's connection file (written once it has chosen its ports) and record
        its endpoints; the record as it was while the file is not there yet."""
        path = Path(record.workdir) / CONNECTION_FILE
        try:
            text = await self.executor.read(path)
        except FileNotFoundError:
            return record
        except (OSError, ExecutorError) as exc:
            log.warning("cannot read %s yet: %s", path, exc)
            return record
        try:
            connection = parse_connection(text, source=str(path))
        except ConnectionFileError as exc:
            log.warning("%s", exc)  # a half-written file is never seen: it is renamed in
            return record
        if connection.job_id != record.job_id:
            return record  # an earlier job's file; this job has not written its own yet
        found = endpoints(connection, self.executor.endpoint_host)

        def learn(r: ServiceRecord) -> ServiceRecord | None:
            if r.state.is_terminal or r.endpoints == found:
                return None
            r.endpoints = found
            return r

        return await self.registry.update(record.service_id, learn)

    async def mark_ready(self, record: ServiceRecord) -> None:
        def ready(r: ServiceRecord) -> ServiceRecord | None:
            if r.state is not ServiceState.STARTING:
                return None
            r.set_state(ServiceState.RUNNING)
            r.ready = utcnow()
            r.reason = r.reason_with(None)
            return r

        after = await self.registry.update(record.service_id, ready)
        if after.state is ServiceState.RUNNING and record.state is ServiceState.STARTING:
            await publish(
                self.broker,
                subjects.SERVICE_READY,
                ServiceReady(
                    service_id=after.service_id,
                    recipe=after.recipe,
                    endpoints=after.endpoints,
                    correlation_id=after.request_id,
                ),
            )

    async def mark_unhealthy(self, record: ServiceRecord, reason: str) -> None:
        """The service never became healthy in time: say so, free the allocation, fail it."""
        await publish(
            self.broker,
            subjects.SERVICE_UNHEALTHY,
            ServiceUnhealthy(
                service_id=record.service_id,
                reason=reason,
                endpoints=record.endpoints,
                correlation_id=record.request_id,
            ),
        )

        def fail(r: ServiceRecord) -> ServiceRecord:
            r.set_state(ServiceState.FAILED)
            r.reason = r.reason_with(reason)
            r.ended = utcnow()
            return r

        await self.registry.update(record.service_id, fail)
        self.tracked.discard(record.service_id)
        await self.tunnels.release(record)
        if record.job_id is not None:
            await self.executor.cancel(record.job_id)

    def health_deadline_passed(self, record: ServiceRecord, timeout: float) -> bool:
        if record.started is None:
            return False
        return (datetime.now(UTC) - record.started).total_seconds() > timeout

    async def _publish_job(
        self, record: ServiceRecord, status: JobStatus, *, submitted: bool = False
    ) -> None:
        event = JobEvent(
            service_id=record.service_id,
            job_id=status.job_id,
            job_state=status.state,
            reason=status.reason,
            nodes=list(status.nodes),
            exit_code=status.exit_code,
            submitted=submitted,
            correlation_id=record.request_id,
        )
        kind = "submitted" if submitted else subjects.job_event(status.state)
        await publish(self.broker, subjects.JOB, event, event=kind)
