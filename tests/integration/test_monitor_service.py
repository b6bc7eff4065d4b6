"""The monitor service against real parts: NATS, the simulator with emulated GPUs, Debian's
node exporter. Registry in, samples on the bus, targets in KV and file_sd, faster scraping
under a benchmark, its own metrics valid for promtool."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from aifactory.monitor.window import read_window
from aifactory.services.monitor.service import MonitorService
from aifactory.shared import subjects
from aifactory.shared.bus import ensure_topology, make_broker
from aifactory.shared.bus.events import watch
from aifactory.shared.connection import NodeExporters, exporters_path
from aifactory.shared.messages import BenchTarget, Endpoint, MonitorSamples, ServiceTargets
from aifactory.shared.messages.base import utcnow
from aifactory.shared.natsd import EmbeddedNats, free_port
from aifactory.shared.recipes import load_recipe
from aifactory.shared.registry import BenchmarkRecord, KVRegistry, ServiceRecord
from aifactory.shared.settings import MonitorSettings, Settings
from aifactory.shared.states import BenchState, ServiceState
from aifactory.shared.workload import Workload
from aifactory.simulator.harness import SimulatorProcess
from tests.conftest import need_tool
from tests.shellkit import ROOT

pytestmark = pytest.mark.nats


@pytest.fixture
def node_exporter() -> Iterator[int]:
    binary = need_tool("prometheus-node-exporter")
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the node exporter did not start"
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def simulator() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("--emulate-gpus", "2", "--ttft-ms", "5", "--itl-ms", "1") as sim:
        yield sim


@pytest.fixture
async def monitor(
    nats_server: EmbeddedNats, tmp_path: Path
) -> AsyncIterator[tuple[MonitorService, Settings]]:
    settings = Settings(
        nats_url=nats_server.url,
        state_dir=tmp_path / "state",
        monitor_port=free_port(),
        monitor=MonitorSettings(interval=0.5, benchmark_interval=0.1, timeout=2.0),
    )
    service = MonitorService(settings)
    task = asyncio.create_task(service.run())
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient() as client:
        while True:
            assert not task.done(), task.exception()
            try:
                url = f"http://127.0.0.1:{settings.monitor_port}/health"
                if (await client.get(url)).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the monitor did not come up"
            await asyncio.sleep(0.1)
    yield service, settings
    service.stop()
    await asyncio.wait_for(task, 20)


def service_record(workdir: Path, port: int) -> ServiceRecord:
    spec = load_recipe("inference/simulator", ROOT, {"ports": {"http": port}})
    return ServiceRecord(
        service_id="svc1",
        recipe=spec.ref,
        request_id="r",
        job_name="aif-svc1",
        executor="local",
        workdir=str(workdir),
        state=ServiceState.RUNNING,
        job_id="7",
        nodes=["127.0.0.1"],
        endpoints=[Endpoint(host="127.0.0.1", port=port, url=f"http://127.0.0.1:{port}")],
        spec=spec,
    )


async def test_registry_in_samples_out(
    monitor: tuple[MonitorService, Settings],
    simulator: SimulatorProcess,
    node_exporter: int,
    tmp_path: Path,
) -> None:
    service, settings = monitor
    workdir = tmp_path / "job"
    workdir.mkdir()
    files = NodeExporters(node_index=0, host="localhost", node_exporter_port=node_exporter)
    exporters_path(workdir, 0).write_text(files.model_dump_json())
    broker = make_broker(settings, name="test")
    await broker.connect()
    topology = await ensure_topology(broker.connection.jetstream())
    services = KVRegistry(topology.services, ServiceRecord)
    benchmarks = KVRegistry(topology.benchmarks, BenchmarkRecord)
    received: list[MonitorSamples] = []

    async def collect(message: MonitorSamples) -> None:
        received.append(message)

    sub = await watch(broker.connection, subjects.MONITOR_SAMPLES, collect, service_id="svc1")
    started = utcnow()
    try:
        await services.create("svc1", service_record(workdir, simulator.port))
        await _until(lambda: {m.target.role.value for m in received} == {"service", "node"})
        service_msg = next(m for m in received if m.target.role.value == "service")
        node_msg = next(m for m in received if m.target.role.value == "node")
        assert service_msg.up and node_msg.up, (service_msg.error, node_msg.error)
        names = {n for g in service_msg.groups for n in g["values"]}
        gpus = {g["labels"]["gpu"] for g in service_msg.groups if "gpu" in g["labels"]}
        assert gpus == {"0", "1"} and "DCGM_FI_DEV_GPU_UTIL" in names
        assert "vllm:num_requests_running" in names
        cpu = [g for g in node_msg.groups if "node_cpu_seconds_total" in g["values"]]
        assert cpu and all(set(g["labels"]) == {"mode"} for g in cpu)  # summed over CPUs
        assert service_msg.target.all_labels()["job_id"] == "7"

        entry = await topology.targets.get("svc1")
        assert entry.value is not None
        known = ServiceTargets.model_validate_json(entry.value)
        assert [t.key for t in known.targets] == ["svc1-service-0", "svc1-node-0"]
        file_sd = json.loads(settings.effective_file_sd.read_text())
        assert {g["labels"]["role"] for g in file_sd} == {"service", "node"}

        # a benchmark on the service: scraped every benchmark_interval, marked in /metrics
        bench = BenchmarkRecord(
            benchmark_id="b1",
            request_id="r",
            state=BenchState.RUNNING,
            target=BenchTarget(service_id="svc1"),
            workload=Workload(requests=1),
        )
        await benchmarks.create("b1", bench)
        await asyncio.sleep(1.0)
        received.clear()
        await asyncio.sleep(1.0)
        fast = [m for m in received if m.target.role.value == "service"]
        assert len(fast) >= 5, len(fast)
        metrics = await monitor_metrics(settings)
        assert 'aifactory_monitor_benchmark_active{benchmark_id="b1",service_id="svc1"} 1.0' in (
            metrics
        )
        promtool = need_tool("promtool")
        check = subprocess.run(
            [promtool, "check", "metrics"], input=metrics, capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr

        window = await read_window(
            broker.connection.jetstream(), subjects.MONITOR_SAMPLES, "svc1", started, utcnow()
        )
        assert {m.target.key for m in window} == {"svc1-service-0", "svc1-node-0"}

        # the service ends: its targets go, scraping stops
        await benchmarks.update(
            "b1", lambda r: r.model_copy(update={"state": BenchState.COMPLETED})
        )
        await services.update(
            "svc1", lambda r: r.model_copy(update={"state": ServiceState.CANCELLED})
        )
        await _until(lambda: json.loads(settings.effective_file_sd.read_text()) == [])
        assert "svc1" not in service.scheduler.fast_services
        metrics = await monitor_metrics(settings)
        assert 'benchmark_id="b1"' not in metrics
        received.clear()
        await asyncio.sleep(1.0)
        assert received == []
    finally:
        await sub.unsubscribe()
        await broker.stop()


async def monitor_metrics(settings: Settings) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{settings.monitor_port}/metrics")
    return response.text


async def _until(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)
