"""A NATS restart in the middle of a remote benchmark: nothing lost, nothing doubled.

The bus is ``kill -9``-ed and started again on the same store directory and port (what
``aifactory up``'s supervisor does), while two workers stream records. Workers retry their
publishes under the same ``Nats-Msg-Id`` until the bus is back; the coordinator follows
the work stream again; every request is counted exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from aifactory.loadgen.remote import RemoteWorkersError, run_remote_benchmark
from aifactory.shared.bus import make_broker
from aifactory.shared.executors.local import LocalExecutor
from aifactory.shared.natsd import EmbeddedNats
from aifactory.shared.results import WindowStats
from aifactory.shared.settings import Settings
from aifactory.shared.states import BenchState
from aifactory.shared.workload import BenchConfig
from tests.integration.test_loadgen_simfixture import running
from tests.integration.test_remote_workers import FAST, assert_exact_merge

pytestmark = pytest.mark.nats


async def test_a_nats_restart_mid_run_loses_and_doubles_nothing(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    settings = Settings(nats_url=nats_server.url, state_dir=tmp_path / "state")
    broker = make_broker(settings, name="test-blip")
    await broker.connect()
    windows: list[WindowStats] = []
    with running("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "8", core=None) as sim:
        config = BenchConfig(
            target=sim.url,
            profile="constant",
            rate=60,
            requests=600,
            workers=1,
            worker_nodes=2,
            window_s=0.2,
        )

        async def blip() -> None:
            while sum(1 for w in windows if w.sent) < 10:  # load is flowing
                await asyncio.sleep(0.05)
            nats_server.kill()
            await asyncio.sleep(1.0)
            nats_server.start()

        chaos = asyncio.create_task(blip())
        started = time.monotonic()
        result = await run_remote_benchmark(
            config,
            benchmark_id="blip",
            broker=broker,
            executor=LocalExecutor(settings.state_dir / "local-executor"),
            settings=settings,
            stop_event=asyncio.Event(),
            on_window=windows.append,
            timeouts=FAST,
            out_dir=tmp_path / "out",
        )
        await chaos
    await broker.stop()
    assert result.summary.state is BenchState.COMPLETED, result.summary
    assert_exact_merge(result, 600, workers=2)
    assert time.monotonic() - started < 60


async def test_workers_that_lose_the_bus_for_too_long_stop_and_say_why(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    settings = Settings(
        nats_url=nats_server.url, state_dir=tmp_path / "state", worker_bus_loss_limit=3
    )
    broker = make_broker(settings, name="test-loss")
    await broker.connect()
    windows: list[WindowStats] = []
    with running("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "8", core=None) as sim:
        config = BenchConfig(
            target=sim.url,
            profile="constant",
            rate=20,
            duration_s=60,
            workers=1,
            worker_nodes=2,
            window_s=0.2,
        )

        async def outage() -> None:
            while sum(1 for w in windows if w.sent) < 5:
                await asyncio.sleep(0.05)
            nats_server.kill()  # and it does not come back

        chaos = asyncio.create_task(outage())
        started = time.monotonic()
        with pytest.raises(RemoteWorkersError):
            await run_remote_benchmark(
                config,
                benchmark_id="lost",
                broker=broker,
                executor=LocalExecutor(settings.state_dir / "local-executor"),
                settings=settings,
                stop_event=asyncio.Event(),
                on_window=windows.append,
                timeouts=FAST,
                out_dir=tmp_path / "out",
            )
        await chaos
    assert time.monotonic() - started < 45
    job = settings.effective_jobs_dir / "aif-bench-lost"
    deadline = time.monotonic() + 20
    output = ""
    while time.monotonic() < deadline:
        # the workers log to stderr: the job's .err (the local executor keeps it apart)
        files = [*job.glob("*.out"), *job.glob("*.err")]
        output = "".join(p.read_text(errors="replace") for p in files)
        if output.count("lost the bus for more than 3s; stopping") >= 2:
            break
        await asyncio.sleep(0.2)
    assert output.count("lost the bus for more than 3s; stopping") >= 2, output[-3000:]
    with contextlib.suppress(Exception):
        await broker.stop()
