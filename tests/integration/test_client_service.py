"""The client service over a real nats-server against the real simulator."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from aifactory.loadgen.results import read_records
from aifactory.shared import subjects
from aifactory.shared.bus import ensure_topology
from aifactory.shared.messages import BenchCancel, BenchRequested, BenchTarget, Endpoint
from aifactory.shared.natsd import EmbeddedNats, free_port
from aifactory.shared.registry import BenchmarkRecord, KVRegistry, ServiceRecord
from aifactory.shared.states import ServiceState
from aifactory.shared.strict import WIRE
from aifactory.shared.workload import Workload
from tests.integration.test_loadgen_simfixture import Simulator, running

pytestmark = pytest.mark.nats

WORKLOAD = {"profile": "concurrency", "concurrency": 4, "requests": 40, "workers": 1}


@pytest.fixture
def client_service(nats_server: EmbeddedNats, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "AIFACTORY_NATS_URL": nats_server.url,
        "AIFACTORY_STATE_DIR": str(tmp_path / "state"),
        "AIFACTORY_CLIENT_PORT": str(port),
        "AIFACTORY_COMMAND_ACK_WAIT": "5",
    }
    log = (tmp_path / "client.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aifactory.services.client"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health", timeout=0.5).is_success:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield base
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with running("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "8", core=None) as sim:
        yield sim


@dataclass
class Bus:
    js: Any
    benchmarks: KVRegistry[BenchmarkRecord]
    services: KVRegistry[ServiceRecord]


@pytest.fixture
async def bus(nats_server: EmbeddedNats) -> AsyncIterator[Bus]:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    topo = await ensure_topology(js)
    yield Bus(
        js, KVRegistry(topo.benchmarks, BenchmarkRecord), KVRegistry(topo.services, ServiceRecord)
    )
    await nc.close()


async def _publish(js: Any, message: BenchRequested | BenchCancel) -> None:
    """A raw JetStream publish, as any NATS client could send it."""
    channel = (
        subjects.BENCH_REQUESTED if isinstance(message, BenchRequested) else subjects.BENCH_CANCEL
    )
    await js.publish(
        channel.subject(),
        message.model_dump_json(context=WIRE).encode(),
        headers={"Nats-Msg-Id": message.id},
    )


async def _wait_record(
    kv: KVRegistry[BenchmarkRecord], bid: str, timeout: float = 60
) -> BenchmarkRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await kv.get(bid)
        if found is not None and found[0].state.is_terminal:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"benchmark {bid} did not end")


async def test_bench_by_service_id_publishes_events_and_stores_results(
    bus: Bus, client_service: str, simulator: Simulator
) -> None:
    services = bus.services
    host, port = simulator.url.removeprefix("http://").split(":")
    await services.create(
        "svc1",
        ServiceRecord(
            service_id="svc1",
            recipe="inference/simulator",
            request_id="r",
            job_name="aif-svc1",
            executor="local",
            workdir="/tmp",
            state=ServiceState.RUNNING,
            endpoints=[Endpoint(host=host, port=int(port), url=simulator.url)],
        ),
    )
    events = await bus.js.subscribe("bench.*", stream=subjects.EVENTS_STREAM, ordered_consumer=True)
    cmd = BenchRequested(
        benchmark_id="b1", target=BenchTarget(service_id="svc1"), workload=WORKLOAD
    )
    await _publish(bus.js, cmd)
    await _publish(bus.js, cmd)  # duplicate: dropped by the stream, ignored by the service
    record = await _wait_record(bus.benchmarks, "b1")
    assert record.state.value == "completed", record.reason
    assert record.target_url == simulator.url
    results = Path(record.results_dir or "")
    summary = json.loads((results / "summary.json").read_text())
    [run] = summary["runs"]
    assert run["requests_ok"] == 40 and run["requests_failed"] == 0
    assert read_records(results / "records.parquet").num_rows == 40
    seen = []
    while True:
        try:
            msg = await events.next_msg(timeout=1)
        except nats.errors.TimeoutError:
            break
        if json.loads(msg.data).get("benchmark_id") == "b1":
            seen.append(msg.subject)
    assert (
        seen[0] == subjects.BENCH_STARTED.subject()
        and seen[-1] == subjects.BENCH_COMPLETED.subject()
    )
    assert seen.count(subjects.BENCH_COMPLETED.subject()) == 1
    metrics = httpx.get(client_service + "/metrics").text
    assert 'aifactory_client_requests_total{result="ok"} 40.0' in metrics


async def test_bad_workload_fails_with_field_path_and_malformed_is_dead_lettered(
    bus: Bus, client_service: str, simulator: Simulator
) -> None:
    # A target the loader refuses: the run fails, the reason names the field.
    cmd = BenchRequested(
        benchmark_id="bad",
        target=BenchTarget(service_id="nosuchservice"),
        workload=Workload(requests=3),
    )
    await _publish(bus.js, cmd)
    record = await _wait_record(bus.benchmarks, "bad")
    assert record.state.value == "failed"
    assert record.reason is not None and "target.service_id" in record.reason
    # A workload no valid message can carry, from a raw client: dead-lettered with the path.
    sub = await bus.js.subscribe(
        subjects.DEADLETTER.subject(subject=subjects.BENCH_REQUESTED.subject()),
        stream=subjects.DEADLETTER_STREAM,
    )
    bad_workload = cmd.model_dump(mode="json") | {"benchmark_id": "bad2", "id": "x2"}
    bad_workload["workload"]["rate"] = -3
    await bus.js.publish(subjects.BENCH_REQUESTED.subject(), json.dumps(bad_workload).encode())
    letter = json.loads((await sub.next_msg(timeout=10)).data)
    assert "workload.rate" in letter["reason"]
    await bus.js.publish(subjects.BENCH_REQUESTED.subject(), b'{"benchmark_id": 1}')
    letter = json.loads((await sub.next_msg(timeout=10)).data)
    assert "benchmark_id" in letter["reason"]
    assert await bus.benchmarks.get("bad2") is None
    assert httpx.get(client_service + "/health").is_success


async def test_cancel_stops_a_running_benchmark_and_keeps_partial_results(
    bus: Bus, client_service: str, simulator: Simulator
) -> None:
    kv = bus.benchmarks
    cmd = BenchRequested(
        benchmark_id="long",
        target=BenchTarget(url=simulator.url),
        workload={"profile": "constant", "rate": 20, "duration_s": 60, "workers": 1},
    )
    await _publish(bus.js, cmd)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = await kv.get("long")
        if found and found[0].state.value == "running":
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.5)
    started = time.monotonic()
    await _publish(bus.js, BenchCancel(benchmark_id="long"))
    record = await _wait_record(kv, "long", timeout=20)
    assert time.monotonic() - started < 10
    assert record.state.value == "cancelled"
    summary = json.loads((Path(record.results_dir or "") / "summary.json").read_text())
    assert summary["runs"][0]["requests_ok"] > 0


def test_client_metrics_pass_promtool(client_service: str) -> None:
    from tests.conftest import need_tool

    promtool = need_tool("promtool")
    text = httpx.get(client_service + "/metrics").text
    assert "aifactory_client_benchmarks_running" in text
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr


async def test_distributed_workers_through_the_client_service(
    bus: Bus, client_service: str, simulator: Simulator
) -> None:
    workload = {
        "profile": "concurrency",
        "concurrency": 4,
        "requests": 60,
        "workers": 2,
        "worker_nodes": 1,
    }
    cmd = BenchRequested(
        benchmark_id="dist", target=BenchTarget(url=simulator.url), workload=workload
    )
    await _publish(bus.js, cmd)
    record = await _wait_record(bus.benchmarks, "dist", 90)
    assert record.state.value == "completed", record.reason
    results = Path(record.results_dir or "")
    lines = read_records(results / "records.parquet").to_pylist()
    workers = {line["worker_id"] for line in lines}
    assert len(lines) == 60 and workers == {0, 1}
