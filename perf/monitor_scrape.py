"""The monitor's cost: 100 realistic targets every 5 s, against Debian's Prometheus.

Usage::

    .venv/bin/python perf/monitor_scrape.py [--targets 100] [--seconds 60] [--warmup 15]

What runs, all real and all stopped at the end:

- ``perf/_monitor_payloads.py``: 100 targets on their own ports, half node exporter (this
  machine's real exposition grown to 32-128 CPUs, 75-140 KB), half dcgm-exporter (8 GPUs,
  every default counter, ~51 KB);
- an embedded ``nats-server``, and 50 services written into the registry (RUNNING, one node
  with a node exporter and a DCGM exporter each, in their ``exporters-0.json``): exactly what
  the monitor sees on a cluster;
- the real monitor service (``python -m aifactory.services.monitor``), default settings
  (5 s interval, default keep list), publishing every scrape into JetStream;
- then, same targets, same interval, Debian's ``prometheus`` from the monitor's own
  ``file_sd`` file: the baseline.

Figures: CPU of the measured process (utime + stime from ``/proc``) over ``--seconds``
after ``--warmup``, as a share of one core and per scrape; scrapes and failures in the
window; sample-to-bus lag, the time from a scrape's end (``time + duration_s``) to its
message arriving at a subscriber (p50/p99/max). The monitor is pinned to core 0, the
payload server and nats-server to core 1 (no-op on one core); nats-server's CPU is shown
apart, as storing the samples is the bus's work, not the monitor's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import nats
import yaml

from _common import ROOT, Summary, pinned  # isort: skip
from aifactory.shared import subjects
from aifactory.shared.bus import ensure_topology
from aifactory.shared.connection import NodeExporters, exporters_path
from aifactory.shared.messages import MonitorSamples
from aifactory.shared.natsd import EmbeddedNats, free_port
from aifactory.shared.recipes import load_recipe
from aifactory.shared.registry import KVRegistry, ServiceRecord
from aifactory.shared.states import ServiceState

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def pin(pid: int, core: int) -> None:
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(pid, {core})


def start_payloads(tmp: Path, targets: int) -> tuple[subprocess.Popen[bytes], list[dict]]:
    ports_file = tmp / "ports.json"
    script = ROOT / "perf" / "_monitor_payloads.py"
    proc = subprocess.Popen(
        pinned(
            "1", [sys.executable, str(script), f"--targets={targets}", f"--ports-file={ports_file}"]
        )
    )
    deadline = time.monotonic() + 60
    while not ports_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the payload server did not start")
        time.sleep(0.2)
    return proc, json.loads(ports_file.read_text())


async def register(nats_url: str, tmp: Path, listing: list[dict]) -> int:
    """One service per node/DCGM pair of targets, RUNNING, with its exporters file."""
    spec = load_recipe(
        "inference/simulator",
        ROOT / "recipes",
        {"resources": {"gpu": 8}, "monitoring": {"metrics_path": None}},
    )
    nc = await nats.connect(nats_url)
    topology = await ensure_topology(nc.jetstream())
    registry = KVRegistry(topology.services, ServiceRecord)
    pairs = list(zip(listing[0::2], listing[1::2], strict=True))
    for i, (node, dcgm) in enumerate(pairs):
        workdir = tmp / "jobs" / f"svc{i:03d}"
        workdir.mkdir(parents=True)
        found = NodeExporters(
            node_index=0,
            host="127.0.0.1",
            node_exporter_port=node["port"],
            dcgm_exporter_port=dcgm["port"],
        )
        exporters_path(workdir, 0).write_text(found.model_dump_json())
        record = ServiceRecord(
            service_id=f"svc{i:03d}",
            recipe=spec.ref,
            request_id="perf",
            job_name=f"perf-{i}",
            executor="local",
            workdir=str(workdir),
            state=ServiceState.RUNNING,
            job_id=str(1000 + i),
            nodes=["127.0.0.1"],
            endpoints=spec.endpoints(["127.0.0.1"]),
            spec=spec,
        )
        await registry.create(record.service_id, record)
    await nc.close()
    return 2 * len(pairs)


async def measure_monitor(
    nats_url: str, pid: int, nats_pid: int, targets: int, args: argparse.Namespace
) -> dict:
    nc = await nats.connect(nats_url)
    lags: list[float] = []
    seen: set[str] = set()
    counting = False
    scrapes = failed = 0
    size = 0

    async def on_message(msg: nats.aio.msg.Msg) -> None:
        nonlocal scrapes, failed, size
        arrived = time.time()
        sample = MonitorSamples.model_validate_json(msg.data)
        seen.add(sample.target.key)
        if counting:
            lags.append(arrived - sample.time.timestamp() - sample.duration_s)
            scrapes += 1
            failed += not sample.up
            size += sample.size_bytes

    sub = await nc.subscribe(subjects.MONITOR_SAMPLES.filter, cb=on_message)
    deadline = time.monotonic() + args.warmup + 60
    while len(seen) < targets or time.monotonic() < deadline - 60:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(seen)} of {targets} targets scraped during the warm-up")
        await asyncio.sleep(0.5)
    counting = True
    cpu0, bus0, t0 = cpu_seconds(pid), cpu_seconds(nats_pid), time.monotonic()
    await asyncio.sleep(args.seconds)
    cpu1, bus1, t1 = cpu_seconds(pid), cpu_seconds(nats_pid), time.monotonic()
    counting = False
    await sub.unsubscribe()
    await nc.close()
    wall = t1 - t0
    return {
        "cpu": (cpu1 - cpu0) / wall,
        "per_scrape_ms": 1000 * (cpu1 - cpu0) / max(1, scrapes),
        "scrapes": scrapes,
        "failed": failed,
        "mb_per_s": size / wall / 1e6,
        "lag": Summary.of(lags),
        "nats_cpu": (bus1 - bus0) / wall,
    }


def run_prometheus(tmp: Path, file_sd: Path, args: argparse.Namespace) -> dict:
    port = free_port()
    config = {
        "global": {"scrape_interval": "5s", "scrape_timeout": "4s"},
        "scrape_configs": [{"job_name": "perf", "file_sd_configs": [{"files": [str(file_sd)]}]}],
    }
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    argv = [
        "prometheus",
        f"--config.file={path}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    proc = subprocess.Popen(pinned("0", argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        time.sleep(args.warmup)
        cpu0, t0 = cpu_seconds(proc.pid), time.time()
        time.sleep(args.seconds)
        cpu1, t1 = cpu_seconds(proc.pid), time.time()
        window = f'up{{job="perf"}}[{int(t1 - t0)}s]'

        def value(query: str) -> int:
            answer = httpx.get(f"{base}/api/v1/query", params={"query": query, "time": t1})
            return int(float(answer.json()["data"]["result"][0]["value"][1]))

        scrapes = value(f"sum(count_over_time({window}))")
        failed = scrapes - value(f"sum(sum_over_time({window}))")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {
        "cpu": (cpu1 - cpu0) / (t1 - t0),
        "per_scrape_ms": 1000 * (cpu1 - cpu0) / max(1, scrapes),
        "scrapes": scrapes,
        "failed": failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"note: load average {load:.2f} before starting: other work shares the cores")
    with tempfile.TemporaryDirectory(prefix="aif-perf-monitor-") as name:
        tmp = Path(name)
        payloads, listing = start_payloads(tmp, args.targets)
        sizes = sorted(t["bytes"] for t in listing)
        server = EmbeddedNats(tmp / "nats").start()
        nats_pid = server.pid
        assert nats_pid is not None
        pin(nats_pid, 1)
        monitor = None
        try:
            targets = asyncio.run(register(server.url, tmp, listing))
            env = {
                **os.environ,
                "AIFACTORY_NATS_URL": server.url,
                "AIFACTORY_STATE_DIR": str(tmp / "state"),
                "AIFACTORY_MONITOR_PORT": str(free_port()),
            }
            monitor = subprocess.Popen(
                pinned("0", [sys.executable, "-m", "aifactory.services.monitor"]),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(tmp / "monitor.log", "wb"),  # noqa: SIM115 - closed with the process
            )
            mine = asyncio.run(measure_monitor(server.url, monitor.pid, nats_pid, targets, args))  # type: ignore[union-attr]
            monitor.terminate()
            monitor.wait(timeout=30)
            file_sd = tmp / "state" / "monitor" / "file_sd.json"
            baseline = run_prometheus(tmp, file_sd, args)
        finally:
            if monitor is not None and monitor.poll() is None:
                monitor.kill()
            payloads.terminate()
            payloads.wait(timeout=30)
            server.stop()
    print(
        f"\n{targets} targets every 5 s for {args.seconds:.0f} s "
        f"(after {args.warmup:.0f} s warm-up), payloads {sizes[0] / 1024:.0f}-"
        f"{sizes[-1] / 1024:.0f} KB, {datetime.now(UTC):%Y-%m-%d %H:%M}Z"
    )
    print(f"{'':34}{'CPU of 1 core':>14}{'ms/scrape':>11}{'scrapes':>9}{'failed':>8}")
    for label, r in (("aifactory monitor", mine), ("baseline: Debian prometheus", baseline)):
        print(
            f"{label:<34}{100 * r['cpu']:13.2f}%{r['per_scrape_ms']:11.2f}"
            f"{r['scrapes']:9d}{r['failed']:8d}"
        )
    lag = mine["lag"]
    print(f"\nsample-to-bus lag (scrape end -> message at a subscriber), {lag.n} scrapes:")
    print(
        f"  p50 {1000 * lag.p50:.1f} ms   p99 {1000 * lag.p99:.1f} ms   max {1000 * lag.max:.1f} ms"
    )
    print(
        f"exposition read: {mine['mb_per_s']:.2f} MB/s; nats-server storing the samples: "
        f"{100 * mine['nats_cpu']:.2f}% of a core (not counted above)"
    )


if __name__ == "__main__":
    main()
