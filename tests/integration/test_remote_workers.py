"""Remote load-generator workers: one batch job of workers reporting over a real nats-server.

Against the real simulator, through the ``local`` executor (the script forks the workers)
and the real single-node SLURM (srun starts them). The merged statistics must be the exact
statistics of the union of the per-request records, with every record counted once; a
worker killed mid-run must fail the run, naming it, within seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from faststream.nats import NatsBroker

from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.loadgen.metrics.stats import describe
from aifactory.loadgen.remote import RemoteWorkersError, protocol, run_remote_benchmark
from aifactory.loadgen.remote.coordinator import RemoteTimeouts
from aifactory.loadgen.results import BenchResult
from aifactory.shared.bus import make_broker
from aifactory.shared.executors.base import Executor
from aifactory.shared.executors.local import LocalExecutor
from aifactory.shared.executors.slurm import SlurmExecutor
from aifactory.shared.natsd import EmbeddedNats
from aifactory.shared.results import WindowStats
from aifactory.shared.settings import Settings
from aifactory.shared.states import BenchState
from aifactory.shared.workload import BenchConfig
from tests.conftest import need
from tests.integration.test_loadgen_simfixture import Simulator, running

pytestmark = pytest.mark.nats

FAST = RemoteTimeouts(pending_s=60, ready_s=60, heartbeat_s=8, stop_grace_s=15, poll_s=0.3)


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    with running("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "8", core=None) as sim:
        yield sim


@pytest.fixture
async def broker(nats_server: EmbeddedNats) -> AsyncIterator[NatsBroker]:
    bus = make_broker(Settings(nats_url=nats_server.url), name="test-remote")
    await bus.connect()
    yield bus
    await bus.stop()


def settings_for(nats_server: EmbeddedNats, state: Path, **extra: Any) -> Settings:
    return Settings(nats_url=nats_server.url, state_dir=state, **extra)


def assert_exact_merge(result: BenchResult, expected_requests: int, workers: int) -> None:
    [run] = result.summary.runs
    records = result.records
    ok = [r for r in records if r.ok]
    assert len(records) == expected_requests == run.requests_sent
    assert run.requests_ok == len(ok) == expected_requests and run.requests_failed == 0
    # Every request once: (share, index) pairs are unique.
    assert len({(r.worker_id, r.request_index) for r in records}) == len(records)
    assert sorted({r.worker_id for r in records}) == list(range(workers))
    assert run.workers == workers and len(set(run.worker_pids)) == workers
    for name, values in (
        ("ttft_ms", [r.ttft_ms for r in ok if r.ttft_ms is not None]),
        ("e2el_ms", [r.e2e_ms for r in ok if r.e2e_ms is not None]),
        ("tpot_ms", [r.tpot_ms for r in ok if r.tpot_ms is not None]),
        ("itl_ms", [x for r in ok for x in r.itl_ms]),
        ("schedule_delay_ms", [r.schedule_delay_ms for r in records if not r.warmup]),
    ):
        assert getattr(run, name) == describe(values), name
    assert run.ttft_ms.count == expected_requests


async def test_two_workers_local_executor_merge_exactly(
    nats_server: EmbeddedNats, broker: NatsBroker, simulator: Simulator, tmp_path: Path
) -> None:
    settings = settings_for(nats_server, tmp_path / "state")
    windows: list[WindowStats] = []
    seen: list[RequestRecord] = []
    config = BenchConfig(
        target=simulator.url,
        profile="concurrency",
        concurrency=4,
        requests=80,
        workers=1,
        worker_nodes=2,  # two "nodes" of one worker: the local script forks both
        window_s=0.2,
    )
    started = time.monotonic()
    result = await run_remote_benchmark(
        config,
        benchmark_id="remote-a",
        broker=broker,
        executor=LocalExecutor(settings.state_dir / "local-executor"),
        settings=settings,
        stop_event=asyncio.Event(),
        on_window=windows.append,
        on_records=seen.extend,
        timeouts=FAST,
    )
    assert time.monotonic() - started < 30
    assert result.summary.state is BenchState.COMPLETED
    assert_exact_merge(result, 80, workers=2)
    assert len(seen) == 80 and windows
    script = (
        settings.effective_jobs_dir / "aif-bench-remote-a" / "aif-bench-remote-a.sh"
    ).read_text()
    assert "export AIFACTORY_WORKER_LAUNCH=local" in script and "total=2" in script
    # Records, orders and the API key are not left behind on the bus.
    nc = await nats.connect(nats_server.url)
    try:
        info = await nc.jetstream().stream_info(protocol.BENCH_WORK_STREAM)
        assert info.state.messages == 0
    finally:
        await nc.close()


async def test_sweep_and_stop_with_remote_workers(
    nats_server: EmbeddedNats, broker: NatsBroker, simulator: Simulator, tmp_path: Path
) -> None:
    settings = settings_for(nats_server, tmp_path / "state")
    executor = LocalExecutor(settings.state_dir / "local-executor")
    sweep = BenchConfig(
        target=simulator.url,
        profile="sweep",
        sweep_rates=1,
        requests=20,
        workers=2,
        worker_nodes=1,
    )
    result = await run_remote_benchmark(
        sweep,
        benchmark_id="remote-sweep",
        broker=broker,
        executor=executor,
        settings=settings,
        stop_event=asyncio.Event(),
        timeouts=FAST,
    )
    assert result.summary.state is BenchState.COMPLETED
    sync, throughput, rate = result.summary.runs
    assert (sync.label, sync.workers, throughput.workers, rate.workers) == ("synchronous", 1, 2, 2)
    assert all(r.requests_ok == 20 for r in result.summary.runs)
    assert len(result.records) == 60

    stop = asyncio.Event()
    long_run = BenchConfig(
        target=simulator.url,
        profile="concurrency",
        concurrency=2,
        duration_s=30,
        workers=2,
        worker_nodes=1,
    )
    first: list[RequestRecord] = []

    def on_records(batch: list[RequestRecord]) -> None:
        first.extend(batch)
        if len(first) >= 10:
            stop.set()

    started = time.monotonic()
    stopped = await run_remote_benchmark(
        long_run,
        benchmark_id="remote-stop",
        broker=broker,
        executor=executor,
        settings=settings,
        stop_event=stop,
        on_records=on_records,
        timeouts=FAST,
    )
    assert time.monotonic() - started < 20
    assert stopped.summary.state is BenchState.CANCELLED
    [run] = stopped.summary.runs
    assert run.state is BenchState.CANCELLED and run.requests_sent == len(stopped.records) >= 10


async def _hellos(url: str, bid: str, count: int, timeout: float) -> dict[int, dict[str, Any]]:
    """The workers' hello messages, read from the work stream like the coordinator does."""
    nc = await nats.connect(url)
    found: dict[int, dict[str, Any]] = {}
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(found) < count:
            try:
                sub = await js.subscribe(
                    protocol.BENCH_WORKER.subject(benchmark_id=bid),
                    stream=protocol.BENCH_WORK_STREAM,
                    ordered_consumer=True,
                )
            except nats.js.errors.NotFoundError:
                await asyncio.sleep(0.2)
                continue
            while time.monotonic() < deadline and len(found) < count:
                try:
                    msg = await sub.next_msg(timeout=0.5)
                except nats.errors.TimeoutError:
                    continue
                data = json.loads(msg.data)
                if data["kind"] == "hello":
                    found[data["worker"]] = data
    finally:
        await nc.close()
    return found


async def test_a_killed_worker_fails_the_run_naming_it(
    nats_server: EmbeddedNats, broker: NatsBroker, simulator: Simulator, tmp_path: Path
) -> None:
    settings = settings_for(nats_server, tmp_path / "state")
    config = BenchConfig(
        target=simulator.url,
        profile="concurrency",
        concurrency=2,
        duration_s=30,
        workers=2,
        worker_nodes=1,
    )
    got_records = asyncio.Event()
    run = asyncio.create_task(
        run_remote_benchmark(
            config,
            benchmark_id="remote-kill",
            broker=broker,
            executor=LocalExecutor(settings.state_dir / "local-executor"),
            settings=settings,
            stop_event=asyncio.Event(),
            on_records=lambda _batch: got_records.set(),
            timeouts=FAST,
        )
    )
    hellos = await _hellos(nats_server.url, "remote-kill", 2, timeout=30)
    assert sorted(hellos) == [0, 1]
    await asyncio.wait_for(got_records.wait(), 20)
    victim = hellos[1]["pid"]
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    with pytest.raises(RemoteWorkersError) as exc:
        await asyncio.wait_for(run, 30)
    assert time.monotonic() - killed_at < FAST.heartbeat_s + 5
    message = str(exc.value)
    assert f"worker 1 (host {hellos[1]['host']}, pid {victim})" in message, message


# -- the real SLURM --------------------------------------------------------------------------


def _slurm_ready() -> bool:
    if shutil.which("sinfo") is None or shutil.which("srun") is None:
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    return out.returncode == 0 and any(
        s.startswith(("idle", "mix", "alloc")) for s in out.stdout.split()
    )


@pytest.mark.slurm
async def test_two_workers_on_slurm_merge_exactly(
    nats_server: EmbeddedNats, broker: NatsBroker, simulator: Simulator, tmp_path: Path
) -> None:
    need(_slurm_ready(), "a running SLURM cluster (sudo deploy/local-slurm/up.sh)")
    jobs = Path(f"/tmp/aifactory-test-remote-{os.getpid()}-{time.monotonic_ns()}")
    settings = settings_for(
        nats_server,
        tmp_path / "state",
        executor="slurm",
        jobs_dir=jobs,
        worker_nats_url=nats_server.url,  # loopback reaches this one-node cluster
    )
    executor: Executor = SlurmExecutor()
    config = BenchConfig(
        target=simulator.url,
        profile="concurrency",
        concurrency=4,
        requests=80,
        workers=2,
        worker_nodes=1,
    )
    try:
        result = await run_remote_benchmark(
            config,
            benchmark_id="remote-slurm",
            broker=broker,
            executor=executor,
            settings=settings,
            stop_event=asyncio.Event(),
            timeouts=FAST,
        )
        assert result.summary.state is BenchState.COMPLETED
        assert_exact_merge(result, 80, workers=2)
        out = next((jobs / "aif-bench-remote-slurm").glob("aif-bench-remote-slurm-*.out"))
        text = out.read_text()
        assert "srun: 1 node(s) x 2 workers" in text, text
        job_id = out.stem.rsplit("-", 1)[1]
        state = (await executor.states([job_id]))[job_id].state
        assert state.is_terminal, state
    finally:
        shutil.rmtree(jobs, ignore_errors=True)


class SpyingExecutor(LocalExecutor):
    """The local executor, noting the secret files it was asked to write."""

    written: list[tuple[Path, int]] = []

    async def write_secret(self, path: Path, text: str) -> None:
        await super().write_secret(path, text)
        self.written.append((path, path.stat().st_mode & 0o777))


async def test_workers_authenticate_through_a_private_file_that_is_gone_after(
    simulator: Simulator, tmp_path: Path
) -> None:
    password = "worker-secret-" + "x" * 24
    with EmbeddedNats(tmp_path / "nats", user="aif-test", password=password) as bus:
        settings = Settings(
            nats_url=bus.url,
            state_dir=tmp_path / "state",
            nats_user="aif-test",
            nats_password=password,
        )
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(bus.url, allow_reconnect=False, connect_timeout=2)
        broker = make_broker(settings, name="test-remote-auth")
        await broker.connect()
        executor = SpyingExecutor(settings.state_dir / "local-executor")
        try:
            result = await run_remote_benchmark(
                BenchConfig(
                    target=simulator.url,
                    profile="concurrency",
                    concurrency=4,
                    requests=20,
                    workers=1,
                    worker_nodes=2,
                ),
                benchmark_id="remote-auth",
                broker=broker,
                executor=executor,
                settings=settings,
                stop_event=asyncio.Event(),
                timeouts=FAST,
            )
        finally:
            await broker.stop()
    assert result.summary.state is BenchState.COMPLETED
    assert_exact_merge(result, 20, workers=2)
    [(secret_file, mode)] = executor.written
    assert mode == 0o600 and not secret_file.exists()
    job_dir = settings.effective_jobs_dir / "aif-bench-remote-auth"
    for path in job_dir.iterdir():
        assert password not in path.read_text(errors="replace"), path
