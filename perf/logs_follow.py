"""Logs service: one job writing 50,000 lines/s, and 200 idle files.

Runs the real service (``python -m aifactory.services.logs``, production settings) against
an embedded nats-server, following files through registry records as it does for deployed
services. The service is pinned to core 0; the writer, nats-server and the reader share
core 1.

1. **Busy**: a job writes RATE lines/s of 100 bytes for DURATION s. A reader on the bus
   checks every line arrived once and in order, and measures lag (write time, in the line,
   to receipt). CPU is the service's own (``/proc``), over the writing and the drain.
2. **Baseline**, same run: the same writer, followed by a plain read loop that publishes
   each chunk to JetStream (``perf/_logs_helpers.py baseline``), measured the same way.
3. **Idle**: the service's CPU with nothing to follow, then with IDLE_FILES followed files
   that do not change (each has one line), over IDLE_S seconds each.

``.venv/bin/python perf/logs_follow.py [--rate 50000] [--duration 60] [--idle-files 200]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from _common import (
    ROOT,
    cpu_seconds,
    http_get_text,
    load_warning,
    percentile,
    pinned,
)
from nats.js.api import StreamConfig

from aifactory.shared.bus import ensure_topology, make_broker
from aifactory.shared.natsd import EmbeddedNats, free_port
from aifactory.shared.registry import KVRegistry, ServiceRecord
from aifactory.shared.settings import Settings
from aifactory.shared.states import JobState, ServiceState

HELPERS = Path(__file__).with_name("_logs_helpers.py")


@dataclass
class Reading:
    """What a reader on the bus saw of one writer run."""

    lines: int = 0
    out_of_order: int = 0
    next_seq: int = 0
    lags_ms: list[float] = field(default_factory=list)

    def take(self, texts: list[str] | list[bytes]) -> None:
        now = time.time_ns()
        for text in texts:
            seq, written = int(text[:10]), int(text[11:30])
            if seq != self.next_seq:
                self.out_of_order += 1
            self.next_seq = seq + 1
            self.lags_ms.append((now - written) / 1e6)
        self.lines += len(texts)


def run_writer(path: Path, rate: int, seconds: float) -> int:
    argv = pinned("1", [sys.executable, str(HELPERS), "writer", str(path), str(rate), str(seconds)])
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


def record(service_id: str, path: Path) -> ServiceRecord:
    return ServiceRecord(
        service_id=service_id,
        recipe="perf/writer",
        request_id="perf",
        job_name=service_id,
        job_id="1",
        job_state=JobState.RUNNING,
        state=ServiceState.RUNNING,
        executor="local",
        workdir=str(path.parent),
        output_path=str(path),
    )


def metric(port: int, name: str) -> float:
    for line in http_get_text(f"http://127.0.0.1:{port}/metrics").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def report(label: str, written: int, seen: Reading, cpu: float, wall: float) -> str:
    lags = seen.lags_ms
    return (
        f"{label:<26}{written:>10,}{seen.lines:>10,}{seen.out_of_order:>7}"
        f"{percentile(lags, 50):>9.1f}{percentile(lags, 99):>9.1f}{max(lags or [0]):>9.1f}"
        f"{100 * cpu / wall:>8.1f}%{1e6 * cpu / max(1, seen.lines):>9.2f}"
    )


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="aif-perf-logs-"))
    nats = EmbeddedNats(tmp / "nats").start()
    if (os.cpu_count() or 1) > 1 and nats.pid:
        subprocess.run(["taskset", "-p", "-c", "1", str(nats.pid)], capture_output=True)
    port = free_port()
    env = {
        **os.environ,
        "AIFACTORY_NATS_URL": nats.url,
        "AIFACTORY_STATE_DIR": str(tmp / "state"),
        "AIFACTORY_EXECUTOR": "local",
        "AIFACTORY_LOGS_PORT": str(port),
    }
    service = subprocess.Popen(
        pinned("0", [sys.executable, "-m", "aifactory.services.logs"]),
        env=env,
        cwd=ROOT,
        stdout=(tmp / "logs.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    broker = make_broker(Settings(nats_url=nats.url), name="perf")
    try:
        await broker.connect()
        js = broker.connection.jetstream()
        registry = KVRegistry((await ensure_topology(js)).services, ServiceRecord)
        await wait_for(lambda: _healthy(port), 30, "the logs service")
        if warning := load_warning():
            print(f"warning: {warning}")
        print(f"{args.rate:,} lines/s of 100 bytes for {args.duration:g} s; service on core 0")
        print(
            f"{'':<26}{'written':>10}{'on bus':>10}{'order':>7}{'lag p50':>9}{'p99 ms':>9}"
            f"{'max ms':>9}{'CPU':>9}{'µs/line':>9}"
        )

        # 1. The logs service following a busy job.
        busy = tmp / "busy.out"
        busy.touch()
        await registry.create("perf-busy", record("perf-busy", busy))
        await wait_for(lambda: metric(port, "aifactory_logs_followed_files") >= 1, 20, "follow")
        seen = Reading()

        async def on_lines(msg) -> None:  # type: ignore[no-untyped-def]
            seen.take(orjson.loads(msg.data)["lines"])

        sub = await js.subscribe("logs.perf-busy.out", ordered_consumer=True, cb=on_lines)
        cpu0, t0 = cpu_seconds(service.pid), time.monotonic()
        written = await asyncio.to_thread(run_writer, busy, args.rate, args.duration)
        await wait_for(lambda: seen.lines >= written, 60, "every line on the bus")
        cpu1, t1 = cpu_seconds(service.pid), time.monotonic()
        await sub.unsubscribe()
        print(report("logs service", written, seen, cpu1 - cpu0, t1 - t0))

        # 2. Baseline: a plain read loop publishing chunks, same writer, same core.
        await js.add_stream(StreamConfig(name="PERF_BASELINE", subjects=["perfbase"]))
        base_file = tmp / "baseline.out"
        base_file.touch()
        base_seen = Reading()

        async def on_chunk(msg) -> None:  # type: ignore[no-untyped-def]
            base_seen.take(msg.data.splitlines())

        sub = await js.subscribe("perfbase", ordered_consumer=True, cb=on_chunk)
        argv = [sys.executable, str(HELPERS), "baseline", str(base_file), nats.url, "perfbase"]
        base = subprocess.Popen(pinned("0", [*argv, str(args.duration + 60)]))
        await asyncio.sleep(1.0)
        cpu0, t0 = cpu_seconds(base.pid), time.monotonic()
        written = await asyncio.to_thread(run_writer, base_file, args.rate, args.duration)
        await wait_for(lambda: base_seen.lines >= written, 60, "baseline lines")
        cpu1, t1 = cpu_seconds(base.pid), time.monotonic()
        base.kill()
        await sub.unsubscribe()
        print(report("baseline: read loop", written, base_seen, cpu1 - cpu0, t1 - t0))

        # 3. Idle: nothing followed, then IDLE_FILES unchanging files.
        def ended(r: ServiceRecord) -> ServiceRecord:
            r.set_state(ServiceState.COMPLETED)
            return r

        await registry.update("perf-busy", ended)
        await wait_for(lambda: metric(port, "aifactory_logs_followed_files") == 0, 30, "the end")
        await asyncio.sleep(2)
        cpu0 = cpu_seconds(service.pid)
        await asyncio.sleep(args.idle_s)
        nothing = (cpu_seconds(service.pid) - cpu0) / args.idle_s
        for i in range(args.idle_files):
            path = tmp / "idle" / f"job{i}.out"
            path.parent.mkdir(exist_ok=True)
            path.write_text(f"job {i} started\n")
            await registry.create(f"perf-idle-{i}", record(f"perf-idle-{i}", path))
        want = args.idle_files
        await wait_for(lambda: metric(port, "aifactory_logs_followed_files") >= want, 60, "idle")
        await wait_for(
            lambda: metric(port, 'aifactory_logs_records_total{stream="out"}') >= written + want,
            60,
            "the idle files' first lines",
        )
        await asyncio.sleep(2)
        cpu0 = cpu_seconds(service.pid)
        await asyncio.sleep(args.idle_s)
        idle = (cpu_seconds(service.pid) - cpu0) / args.idle_s
        print(
            f"idle: {want} followed files {100 * idle:.2f}% of a core "
            f"(baseline, same process following nothing: {100 * nothing:.2f}%) over "
            f"{args.idle_s:g} s each; poll interval {Settings().logs_poll_interval:g} s"
        )
    finally:
        service.terminate()
        service.wait(timeout=20)
        await broker.stop()
        nats.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _healthy(port: int) -> bool:
    try:
        http_get_text(f"http://127.0.0.1:{port}/health", timeout=0.5)
    except OSError:
        return False
    return True


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=50_000)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--idle-files", type=int, default=200)
    parser.add_argument("--idle-s", type=float, default=30.0)
    asyncio.run(main(parser.parse_args()))
