"""Every followed job in one loop: which jobs, their files, when they end.

A :class:`JobSpec` says what is known of a job (its files once submitted, its end once
over); :class:`LogShipper` keeps one :class:`JobLog` per job and steps them from a single
task. One loop rather than a task per file keeps 200 idle files at one ``fstat`` and one
``stat`` each per poll interval (a few microseconds each) with no wake-ups in between,
while a file that just grew is stepped again at once, so a busy job is read as fast as it
writes.

A job's end: once the job is over and ``end_grace`` has passed (the last writes of a
compute node may show late on a shared file system), each file is read to its end, a held
partial line goes out, and ``logs.<service_id>.eof`` says the output is complete.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nats.errors import Error as NatsError
from pydantic import ValidationError

from aifactory.logs.follow import FileFollower, FollowConfig, NullObserver, Observer
from aifactory.logs.sink import LogSink
from aifactory.logs.state import eof_id
from aifactory.shared.bus.publish import PublishRefused
from aifactory.shared.executors.base import Executor, ExecutorError
from aifactory.shared.messages import LogEof, LogStream, StreamEnd

log = logging.getLogger(__name__)

#: A job whose step failed waits this many poll intervals (doubling, capped) before the next.
MAX_BACKOFF = 32
#: A file that just grew is checked again after this long, doubling while it stays quiet,
#: up to the poll interval: a job writing every few ms is read every few ms (low lag), an
#: idle one costs one check per interval.
FAST_POLL = 0.01
#: What following may meet and survive: the bus (timeouts, reconnects), the file system,
#: the executor (SFTP), a stored message that does not decode. Anything else is a bug: the
#: service exits, its supervisor restarts it, and it resumes from the stream.
FOLLOW_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    NatsError,
    PublishRefused,
    ExecutorError,
    ValidationError,
)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What is known of one job whose output is followed."""

    service_id: str
    job_id: str | None = None
    #: Its files, once submitted (stderr may share stdout's file: then only ``out``).
    paths: dict[LogStream, Path] = field(default_factory=dict)
    #: Why it is over (its end state), once it is; ``None`` while pending or running.
    ended: str | None = None


class JobLog:
    """The followers of one job's files, and its end of output."""

    def __init__(
        self,
        spec: JobSpec,
        *,
        files: Executor,
        sink: LogSink,
        config: FollowConfig,
        observer: Observer,
        clock: Callable[[], float],
    ) -> None:
        self.spec = spec
        self.files, self.sink, self.config, self.observer, self.clock = (
            files,
            sink,
            config,
            observer,
            clock,
        )
        self.followers: dict[LogStream, FileFollower] = {}
        self.ended_at: float | None = None
        self.finished = False
        self.due = 0.0
        self.failures = 0
        #: Steps in a row that found nothing.
        self.quiet = 0

    async def start(self) -> None:
        if await self.sink.eof_published(self.spec.service_id):
            self.finished = True
            return
        await self.update(self.spec)

    async def update(self, spec: JobSpec) -> None:
        """New facts: the job got its files, or ended."""
        self.spec = spec
        for stream, path in spec.paths.items():
            if stream not in self.followers:
                follower = FileFollower(
                    files=self.files,
                    sink=self.sink,
                    service_id=spec.service_id,
                    stream=stream,
                    job_id=spec.job_id,
                    path=path,
                    config=self.config,
                    observer=self.observer,
                    clock=self.clock,
                )
                await follower.start()
                self.followers[stream] = follower
        if spec.ended is not None and self.ended_at is None:
            self.ended_at = self.clock()
        self.due = 0.0

    async def step(self) -> bool:
        """One step of each file; returns whether any of them did something."""
        if self.finished:
            return False
        ending = self.ended_at is not None and self.clock() - self.ended_at >= self.config.end_grace
        progressed = False
        for follower in self.followers.values():
            if await follower.step(ending=ending):
                progressed = True
        if ending and not progressed and all(f.done for f in self.followers.values()):
            await self._finish()
        return progressed

    async def _finish(self) -> None:
        ends = [
            StreamEnd(
                stream=stream,
                file=f.cp.position.file,
                offset=f.cp.position.offset,
                records=f.cp.position.index,
                problem=f.problem,
            )
            for stream, f in self.followers.items()
        ]
        spec = self.spec
        await self.sink.publish_eof(
            LogEof(
                id=eof_id(spec.service_id, spec.job_id),
                service_id=spec.service_id,
                job_id=spec.job_id,
                reason=spec.ended or "ended",
                streams=ends,
            )
        )
        for follower in self.followers.values():
            follower.cp = follower.cp.model_copy(update={"eof": True})
            await self.sink.save(follower.cp)
        self.finished = True
        log.info("%s: output complete (%s)", spec.service_id, spec.ended)

    async def reset(self) -> None:
        for follower in self.followers.values():
            await follower.reset()

    async def close(self) -> None:
        for follower in self.followers.values():
            await follower.close()


class LogShipper:
    """Follows every job it is told about until its output is complete."""

    def __init__(
        self,
        files: Executor,
        sink: LogSink,
        config: FollowConfig,
        *,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.files, self.sink, self.config = files, sink, config
        self.observer = observer or NullObserver()
        self.clock = clock
        self.jobs: dict[str, JobLog] = {}
        self._wake = asyncio.Event()

    @property
    def followed_files(self) -> int:
        return sum(len(j.followers) for j in self.jobs.values())

    async def track(self, spec: JobSpec) -> None:
        """Start following ``spec``'s job, or tell its follower what changed."""
        job = self.jobs.get(spec.service_id)
        if job is None:
            job = JobLog(
                spec,
                files=self.files,
                sink=self.sink,
                config=self.config,
                observer=self.observer,
                clock=self.clock,
            )
            await job.start()
            if job.finished:
                return  # its output was complete before: nothing to do, ever
            self.jobs[spec.service_id] = job
        elif spec != job.spec:
            await job.update(spec)
        self._wake.set()

    async def end(self, service_id: str, reason: str) -> None:
        """The job is over (its record says so, or is gone): finish its output."""
        job = self.jobs.get(service_id)
        if job is not None and job.spec.ended is None:
            spec = job.spec
            await job.update(JobSpec(spec.service_id, spec.job_id, spec.paths, reason))
            self._wake.set()

    async def output_complete(self, service_id: str) -> bool:
        """Has the end of this job's output been published (now or before)?"""
        return await self.sink.eof_published(service_id)

    async def run(self) -> None:
        """Step due jobs; sleep until the next is due or a job is added."""
        loop = asyncio.get_running_loop()
        while True:
            now = self.clock()
            for service_id, job in list(self.jobs.items()):
                if job.due > now:
                    continue
                await self._step(job)
                if job.finished:
                    await job.close()
                    del self.jobs[service_id]
            pending = [j.due for j in self.jobs.values()]
            delay = max(0.0, min(pending) - self.clock()) if pending else None
            self._wake.clear()
            if delay == 0.0:
                await asyncio.sleep(0)  # let the bus and the HTTP server breathe
                continue
            # A timer that sets the event: cheaper than wait_for's task per wake-up.
            timer = None if delay is None else loop.call_later(delay, self._wake.set)
            await self._wake.wait()
            if timer is not None:
                timer.cancel()

    async def _step(self, job: JobLog) -> None:
        try:
            progressed = await job.step()
        except FOLLOW_ERRORS as exc:  # retry from the position
            job.failures += 1
            backoff = min(MAX_BACKOFF, 2 ** (job.failures - 1))
            log.warning(
                "%s: following failed (%s: %s); retrying in %.1f s",
                job.spec.service_id,
                type(exc).__name__,
                exc,
                backoff * self.config.poll_interval,
            )
            await job.reset()
            job.due = self.clock() + backoff * self.config.poll_interval
            return
        job.failures = 0
        now = self.clock()
        if progressed:
            job.quiet, job.due = 0, now
            return
        job.quiet += 1
        delay = FAST_POLL * 2 ** min(job.quiet - 1, 16)
        if delay < self.config.poll_interval:
            job.due = now + delay
        else:  # on the shared tick: every idle file is checked in one wake-up
            interval = self.config.poll_interval
            job.due = (now // interval + 1) * interval

    async def close(self) -> None:
        for job in self.jobs.values():
            await job.close()
