"""The logs service process on real jobs: exactly once through ``kill -9``.

A real job (the ``local`` executor, and the local SLURM cluster) writes numbered lines to
stdout and stderr; the service follows it from the registry record, as it does for every
deployed service. The test ``kill -9``s the service several times while the job writes and
once while it finishes, restarts it each time, and then reads the stream back: every line
exactly once, in order, and the batches' own arithmetic (offsets, line numbers, record
indices) without a gap or an overlap.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from aifactory.loadgen.remote.job import job_name, job_workdir, log_id
from aifactory.shared.bus import ensure_topology, make_broker
from aifactory.shared.executors.base import Executor, SubmittedJob
from aifactory.shared.executors.local import LocalExecutor
from aifactory.shared.executors.slurm import SlurmExecutor
from aifactory.shared.messages import BenchTarget, LogStream
from aifactory.shared.natsd import free_port
from aifactory.shared.registry import BenchmarkRecord, KVRegistry, ServiceRecord
from aifactory.shared.settings import Settings
from aifactory.shared.states import BenchState, JobState, ServiceState
from aifactory.shared.workload import Workload
from tests.integration.logkit import read_back, wait_eof, wait_records
from tests.integration.seqwriter import err_line, out_line
from tests.integration.test_executor_slurm import cluster  # noqa: F401  (fixture)

pytestmark = pytest.mark.nats

WRITER = Path(__file__).with_name("seqwriter.py")


class LogsProcess:
    """``python -m aifactory.services.logs`` as ``aifactory up`` runs it."""

    def __init__(self, tmp: Path, nats_url: str, executor: str) -> None:
        self.port = free_port()
        self.log = tmp / "logs-service.log"
        self.env = {
            **os.environ,
            "AIFACTORY_NATS_URL": nats_url,
            "AIFACTORY_STATE_DIR": str(tmp / "state"),
            "AIFACTORY_JOBS_DIR": str(tmp / "jobs"),
            "AIFACTORY_EXECUTOR": executor,
            "AIFACTORY_LOGS_PORT": str(self.port),
            "AIFACTORY_LOGS_POLL_INTERVAL": "0.1",
            "AIFACTORY_LOGS_END_GRACE": "0.5",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LogsProcess:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aifactory.services.logs"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=0.5).is_success:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"logs service not healthy: {self.log.read_text()[-3000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)


def writer_script(count: int, chunk: int, pause: float, err_every: int, stop: str = "") -> str:
    return (
        "#!/bin/bash\n#SBATCH --time=5\n#SBATCH --partition=cpu\n"
        f"exec {sys.executable} -u {WRITER} {count} {chunk} {pause} {err_every} {stop}\n"
    )


def check_numbered(out: list[str], err: list[str], err_every: int) -> int:
    """Every numbered line once and in order, then the writer's ``done <count>``."""
    assert out and out[-1].startswith("done "), out[-3:]
    count = int(out[-1].split()[1])
    assert out[:-1] == [out_line(n) for n in range(count)]
    assert err == [err_line(n) for n in range(0, count, err_every)]
    return count


async def register(registry: KVRegistry[ServiceRecord], service_id: str, job: SubmittedJob) -> None:
    """What the server records for a submitted job: the logs service's input."""
    await registry.create(
        service_id,
        ServiceRecord(
            service_id=service_id,
            recipe="test/seqwriter",
            request_id="test",
            job_name=job.name,
            job_id=job.job_id,
            job_state=JobState.RUNNING,
            state=ServiceState.RUNNING,
            executor="test",
            workdir=str(job.output_path.parent),
            output_path=str(job.output_path),
            error_path=str(job.error_path),
        ),
    )


async def run_kill9(tmp: Path, nats_url: str, executor: Executor, *, kills: int) -> None:
    service_id = f"kill9-{executor.kind}"
    err_every = 7
    stop = tmp / "jobs" / service_id / "stop"
    script = writer_script(10**8, 500, 0.05, err_every, str(stop))  # runs until told to stop
    job = await executor.submit(script, f"aif-{service_id}", stop.parent)
    broker = make_broker(Settings(nats_url=nats_url), name="test")
    await broker.connect()
    js = broker.connection.jetstream()
    registry = KVRegistry((await ensure_topology(js)).services, ServiceRecord)
    await register(registry, service_id, job)
    logs = LogsProcess(tmp, nats_url, executor.kind).start()
    rng = random.Random(8)
    mid_stream = 0
    try:
        await wait_records(js, service_id, LogStream.OUT, 1, timeout=120)  # the job runs
        for _ in range(kills):
            await asyncio.sleep(rng.uniform(0.4, 1.2))
            before = len((await read_back(js, service_id)).records(LogStream.OUT))
            logs.kill9()
            state = (await executor.states([job.job_id]))[job.job_id].state
            mid_stream += int(before > 0 and not state.is_terminal)
            logs.start()
        stop.touch()
        deadline = time.monotonic() + 120
        while not (await executor.states([job.job_id]))[job.job_id].state.is_terminal:
            assert time.monotonic() < deadline, "the writer job did not end"
            await asyncio.sleep(0.3)

        def completed(r: ServiceRecord) -> ServiceRecord:
            r.job_state = JobState.COMPLETED
            r.set_state(ServiceState.COMPLETED)
            return r

        await registry.update(service_id, completed)
        await asyncio.sleep(0.3)
        logs.kill9()  # once more, while it reads the files to their end
        logs.start()
        found = await wait_eof(js, service_id, timeout=60)
    finally:
        logs.stop()
        await broker.stop()
    found.check_contiguous()
    assert mid_stream == kills, f"only {mid_stream} of {kills} kills hit a running writer"
    out, err = found.lines(LogStream.OUT), found.lines(LogStream.ERR)
    count = check_numbered(out, err, err_every)
    assert count > 0
    (eof,) = found.eofs
    assert {e.stream: e.records for e in eof.streams} == {
        LogStream.OUT: count + 1,
        LogStream.ERR: len(err),
    }
    assert (tmp / "logs-service.log").read_text().count("logs service up") == kills + 2


async def test_kill_9_mid_stream_loses_and_doubles_nothing(nats_server, tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "state" / "local-executor")
    await run_kill9(tmp_path, nats_server.url, executor, kills=4)


async def test_a_benchmarks_workers_job_is_found_by_name_and_followed(
    nats_server, tmp_path: Path
) -> None:
    """No registry holds a workers' job id: the service finds ``aif-bench-<id>`` by name."""
    settings = Settings(
        nats_url=nats_server.url, state_dir=tmp_path / "state", jobs_dir=tmp_path / "jobs"
    )
    broker = make_broker(settings, name="test")
    await broker.connect()
    js = broker.connection.jetstream()
    benchmarks = KVRegistry((await ensure_topology(js)).benchmarks, BenchmarkRecord)
    workload = Workload(requests=10, worker_nodes=1)
    record = BenchmarkRecord(
        benchmark_id="wk1",
        request_id="test",
        state=BenchState.RUNNING,
        target=BenchTarget(url="http://127.0.0.1:9"),
        workload=workload,
    )
    await benchmarks.create("wk1", record)
    logs = LogsProcess(tmp_path, nats_server.url, "local").start()
    try:
        executor = LocalExecutor.from_settings(settings)  # the service's own job records
        job = await executor.submit(
            writer_script(3000, 500, 0.2, 7), job_name("wk1"), job_workdir(settings, "wk1")
        )
        while not (await executor.states([job.job_id]))[job.job_id].state.is_terminal:
            await asyncio.sleep(0.2)

        def completed(r: BenchmarkRecord) -> BenchmarkRecord:
            return r.model_copy(update={"state": BenchState.COMPLETED})

        await benchmarks.update("wk1", completed)
        found = await wait_eof(js, log_id("wk1"), timeout=60)
    finally:
        logs.stop()
        await broker.stop()
    found.check_contiguous()
    assert check_numbered(found.lines(LogStream.OUT), found.lines(LogStream.ERR), 7) == 3000
    assert found.eofs[0].job_id == job.job_id and found.eofs[0].reason == "completed"


@pytest.mark.slurm
async def test_kill_9_on_a_slurm_job(nats_server, tmp_path: Path, cluster: str) -> None:  # noqa: F811
    await run_kill9(tmp_path, nats_server.url, SlurmExecutor(), kills=2)
