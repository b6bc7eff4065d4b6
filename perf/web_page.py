"""The web page: first load, bus event → DOM update, and what 50 open dashboards cost the API.

Usage::

    .venv/bin/python perf/web_page.py [--loads 20] [--events 200] [--dashboards 50]
        [--duration 10] [--repeat 3]

Why: the page is for watching runs live, so it must open fast, show a bus event at once,
and not slow the ingress down for the CLI and scripts while colleagues keep it open.

- **First load** (targets < 300 ms): Debian's chromium (Playwright), a fresh browser
  context per load (nothing cached), logged in; the navigation's ``loadEventEnd`` of the
  services list (20 services, htmx + app.js + the live stream) and of a benchmark's live view
  (uPlot too). Baseline, same run: the login page (one small HTML and CSS, no script).
- **Bus event → DOM** (target p95 < 500 ms): ``bench.metrics`` windows published on the bus
  by this script, each carrying its number in ``sent``; a ``MutationObserver`` in the open
  benchmark page notes when the figure shows it. Both clocks are this machine's. Baseline,
  same run: the same event's delivery to a plain NATS subscriber in this process.
- **50 dashboards** (target: ``GET /api/v1/services/{id}`` p99 < 2x without them): ``wrk``
  on the API route, alternately alone and with 50 live event streams open (half on the
  services list, half on a benchmark's live view) while 10 windows/s and 5 record changes/s
  are published, so every stream is busy. Streams are read by SSE clients in this process.

The server (``python -m aifactory.services.server``) is pinned to core 0; nats-server, wrk,
chromium and this script to core 1. Rounds are interleaved; each row is the median round.
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
from pathlib import Path

import httpx
from _common import ServerProcess, load_warning, percentile
from server_ingress import LUA, parse_wrk, pin_all_threads, write_records

from aifactory.shared import subjects
from aifactory.shared.bus import PublishRefused, ensure_topology, make_broker, publish
from aifactory.shared.bus.events import watch
from aifactory.shared.messages import BenchMetrics, BenchTarget, new_id
from aifactory.shared.natsd import EmbeddedNats
from aifactory.shared.registry import BenchmarkRecord, KVRegistry, ServiceRecord
from aifactory.shared.results import WindowStats
from aifactory.shared.settings import Settings
from aifactory.shared.states import BenchState
from aifactory.shared.weblogin import login_link
from aifactory.shared.workload import Workload

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TOKEN = "perf-token-" + "x" * 32
OBSERVE = """() => {
  window.__shown = {};
  const cell = document.querySelector('[data-w=sent]');
  new MutationObserver(() => { window.__shown[cell.textContent] = Date.now(); })
    .observe(cell, {childList: true, characterData: true, subtree: true});
}"""


def window(n: int) -> WindowStats:
    return WindowStats(
        run_index=0,
        label="perf",
        elapsed_s=float(n),
        window_s=1.0,
        sent=n,
        completed=n,
        errors=0,
        in_flight=1,
        cap_hits=0,
        window_completed=1,
        window_errors=0,
        request_rate=1.0,
        output_token_rate=64.0,
        ttft_p50_ms=50.0,
        ttft_p99_ms=60.0,
        e2el_p50_ms=300.0,
    )


async def add_benchmark(nats_url: str) -> str:
    broker = make_broker(Settings(nats_url=nats_url), name="perf-web")
    await broker.connect()
    try:
        topology = await ensure_topology(broker.connection.jetstream())
        benchmark_id = new_id()[:12]
        record = BenchmarkRecord(
            benchmark_id=benchmark_id,
            request_id=new_id(),
            state=BenchState.RUNNING,
            target=BenchTarget(url="http://127.0.0.1:9"),
            workload=Workload(duration_s=3600, profile="constant", rate=1),
        )
        await KVRegistry(topology.benchmarks, BenchmarkRecord).create(benchmark_id, record)
        return benchmark_id
    finally:
        await broker.stop()


def page_loads(base: str, benchmark_id: str, loads: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    timings: dict[str, list[float]] = {}
    paths = {
        "login page (baseline)": "/login",
        "services list": "/services",
        "benchmark live view": f"/benchmarks/{benchmark_id}",
    }
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for _ in range(loads):
            for label, path in paths.items():
                context = browser.new_context()
                page = context.new_page()
                if path != "/login":
                    page.goto(login_link(base, TOKEN))
                page.goto(base + path, wait_until="load")
                entry = page.evaluate(
                    "() => performance.getEntriesByType('navigation')[0].loadEventEnd"
                )
                timings.setdefault(label, []).append(float(entry))
                context.close()
        browser.close()
    return timings


async def event_to_dom(
    base: str, nats_url: str, benchmark_id: str, events: int
) -> dict[str, list[float]]:
    from playwright.async_api import async_playwright

    broker = make_broker(Settings(nats_url=nats_url), name="perf-web-events")
    await broker.connect()
    delivered: dict[int, float] = {}

    async def note(event: BenchMetrics) -> None:
        delivered[event.window.sent] = time.time()

    sub = await watch(broker.connection, subjects.BENCH_METRICS, note)
    sent: dict[int, float] = {}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await browser.new_page()
        await page.goto(login_link(base, TOKEN))
        await page.goto(f"{base}/benchmarks/{benchmark_id}")
        await page.wait_for_function(
            "() => document.getElementById('live-status').textContent === 'live'"
        )
        await page.evaluate(OBSERVE)
        for n in range(1, events + 1):
            sent[n] = time.time()
            await publish(
                broker,
                subjects.BENCH_METRICS,
                BenchMetrics(benchmark_id=benchmark_id, window=window(n)),
            )
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        shown: dict[str, float] = await page.evaluate("() => window.__shown")
        await browser.close()
    await sub.unsubscribe()
    await broker.stop()
    dom = [shown[str(n)] / 1000 - sent[n] for n in sent if str(n) in shown]
    bus = [delivered[n] - sent[n] for n in sent if n in delivered]
    missing = len(sent) - len(dom)
    if missing:
        print(f"warning: {missing} of {len(sent)} windows never showed (coalesced renders)")
    return {"bus → NATS subscriber (baseline)": bus, "bus → page DOM": dom}


async def dashboards(
    base: str, nats_url: str, benchmark_id: str, count: int, stop: asyncio.Event
) -> int:
    """``count`` open event streams and a steady flow of events; returns events received."""
    received = 0
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "text/event-stream"}

    async def stream(path: str) -> None:
        nonlocal received
        async with (
            httpx.AsyncClient(timeout=None, headers=headers) as client,
            client.stream("GET", base + path) as response,
        ):
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    received += 1
                if stop.is_set():
                    return

    broker = make_broker(Settings(nats_url=nats_url), name="perf-web-load")
    await broker.connect()
    services = KVRegistry(
        (await ensure_topology(broker.connection.jetstream())).services, ServiceRecord
    )
    paths = [
        "/events/services" if i % 2 else f"/events/benchmarks/{benchmark_id}" for i in range(count)
    ]
    tasks = [asyncio.create_task(stream(p)) for p in paths]
    n = 0
    refused = 0
    while not stop.is_set():
        n += 1
        try:
            await publish(
                broker,
                subjects.BENCH_METRICS,
                BenchMetrics(benchmark_id=benchmark_id, window=window(n)),
            )
        except PublishRefused:  # a saturated core: the load goes on, the count says so
            refused += 1
        if n % 2 == 0:
            reason = f"tick {n}"
            await services.update(
                "ingress00", lambda r, why=reason: r.model_copy(update={"reason": why})
            )
        await asyncio.sleep(0.1)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await broker.stop()
    if refused:
        print(f"warning: {refused} of {n} windows were not accepted by the bus in time")
    return received


async def wrk_round(
    base: str, script: Path, seconds: float, conns: int
) -> tuple[float, dict[str, float]]:
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "--latency", "-s", str(script)]
    argv += ["-H", f"Authorization: Bearer {TOKEN}", base + "/api/v1/services/x"]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, _ = await proc.communicate()
    _, _, rps, latency, non_2xx, errors = parse_wrk(out.decode())
    if non_2xx or errors:
        print(f"warning: wrk saw {non_2xx} non-2xx answers and {errors} socket errors")
    return rps, latency


async def api_under_dashboards(
    args: argparse.Namespace, base: str, nats_url: str, benchmark_id: str, script: Path
) -> None:
    rows: dict[str, list[tuple[float, dict[str, float]]]] = {"alone": [], "with": []}
    received = 0
    for _ in range(args.repeat):
        rows["alone"].append(await wrk_round(base, script, args.duration, args.connections))
        stop = asyncio.Event()
        load = asyncio.create_task(dashboards(base, nats_url, benchmark_id, args.dashboards, stop))
        await asyncio.sleep(2.0)  # streams open, events flowing
        rows["with"].append(await wrk_round(base, script, args.duration, args.connections))
        stop.set()
        received += await load
    print(
        f"\nGET /api/v1/services/{{id}}, wrk -c{args.connections}, {args.duration:g} s rounds "
        f"(median of {args.repeat}; all p99 in brackets)"
    )
    print(f"{'':<36}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}")
    medians = {}
    for label, runs in rows.items():
        ordered = sorted(runs, key=lambda r: r[1]["99"])
        rps, lat = ordered[(len(ordered) - 1) // 2]
        medians[label] = lat["99"]
        name = "alone (baseline)" if label == "alone" else f"with {args.dashboards} open dashboards"
        all_p99 = " ".join(f"{r[1]['99']:.1f}" for r in runs)
        print(f"{name:<36}{rps:8.0f}{lat['50']:9.2f}{lat['99']:9.2f}  [{all_p99}]")
    print(
        f"p99 with dashboards / alone: {medians['with'] / medians['alone']:.2f}x (target < 2x); "
        f"the dashboards received {received} events"
    )


def report(title: str, timings: dict[str, list[float]], unit_ms: float) -> None:
    print(f"\n{title}")
    print(f"{'':<36}{'n':>5}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for label, values in timings.items():
        ms = [v * unit_ms for v in values]
        cells = "".join(f"{percentile(ms, q):9.1f}" for q in (50, 95, 99, 100))
        print(f"{label:<36}{len(ms):5d}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=20, help="page loads per page")
    parser.add_argument("--events", type=int, default=200, help="windows published")
    parser.add_argument("--dashboards", type=int, default=50)
    parser.add_argument("--connections", type=int, default=50, help="wrk connections")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk round")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--server-cores", default="0")
    parser.add_argument("--load-cores", default="1")
    args = parser.parse_args()
    if not (1 <= args.loads <= 200 and 1 <= args.events <= 5000 and 1 <= args.dashboards <= 500):
        parser.error("keep --loads 1..200, --events 1..5000, --dashboards 1..500")
    if not (1 <= args.duration <= 120 and 1 <= args.repeat <= 9):
        parser.error("keep --duration 1..120 and --repeat 1..9")
    for tool in ("wrk", CHROMIUM):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install wrk chromium")
    warning = load_warning()
    if warning:
        print(f"warning: {warning}")
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {int(c) for c in args.load_cores.split(",")})  # chromium too

    tmp = Path(tempfile.mkdtemp(prefix="aif-bench-web-"))
    (tmp / "recipes").mkdir()
    nats = EmbeddedNats(tmp / "nats").start()
    server = ServerProcess(tmp, nats.url, executor="local", cores=args.server_cores)
    server.env["AIFACTORY_API_TOKEN"] = TOKEN
    try:
        assert nats.pid is not None
        pin_all_threads(nats.pid, args.load_cores)
        server.start()
        ids, _ = asyncio.run(write_records(nats.url, 20))
        benchmark_id = asyncio.run(add_benchmark(nats.url))
        script = tmp / "services.lua"
        script.write_text(LUA % ", ".join(f'"{i}"' for i in ids))
        print(
            f"server on cores {args.server_cores}; nats-server, wrk, chromium on {args.load_cores}"
        )
        report(
            "First page load (loadEventEnd, fresh context each time)",
            page_loads(server.base, benchmark_id, args.loads),
            1.0,
        )
        report(
            f"Bus event → DOM ({args.events} windows at 20/s)",
            asyncio.run(event_to_dom(server.base, nats.url, benchmark_id, args.events)),
            1000.0,
        )
        asyncio.run(api_under_dashboards(args, server.base, nats.url, benchmark_id, script))
    finally:
        server.stop()
        nats.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
