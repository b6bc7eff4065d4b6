"""Job bookkeeping for the deploy benchmark: which executor, waiting, and clean-up by id."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aifactory.shared.bus import ensure_topology, make_broker
from aifactory.shared.executors.base import Executor
from aifactory.shared.executors.local import LocalExecutor
from aifactory.shared.executors.slurm import SlurmExecutor
from aifactory.shared.registry import KVRegistry, ServiceRecord
from aifactory.shared.settings import Settings


def make_executor(kind: str, state_dir: Path) -> Executor:
    if kind == "local":
        return LocalExecutor(state_dir / "local-executor")
    return SlurmExecutor()


async def wait_terminal(executor: Executor, job_ids: list[str], timeout: float) -> bool:
    """Wait (bounded) until the scheduler has finished these jobs, so phases do not overlap."""
    deadline = time.monotonic() + timeout
    while job_ids and time.monotonic() < deadline:
        states = await executor.states(job_ids)
        if all(s.state.is_terminal for s in states.values()):
            return True
        await asyncio.sleep(0.5)
    return not job_ids


async def registry_job_ids(nats_url: str, service_ids: list[str]) -> list[str]:
    """The job ids the registry recorded for our services: the only ones we may cancel."""
    broker = make_broker(Settings(nats_url=nats_url), name="bench-cleanup")
    await broker.connect()
    try:
        js = broker.connection.jetstream()
        registry = KVRegistry((await ensure_topology(js)).services, ServiceRecord)
        ids = []
        for service_id in service_ids:
            found = await registry.get(service_id)
            if found is not None and found[0].job_id is not None:
                ids.append(found[0].job_id)
        return ids
    finally:
        await broker.stop()


async def cancel_all(executor: Executor, job_ids: list[str]) -> int:
    """Cancel by id every job still active; returns how many needed it."""
    if not job_ids:
        return 0
    states = await executor.states(job_ids)
    active = [j for j, s in states.items() if not s.state.is_terminal]
    for job_id in active:
        await executor.cancel(job_id)
    return len(active)
