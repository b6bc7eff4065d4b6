"""Deploy latency: ``deploy.requested`` published → ``job.submitted`` seen on the bus.

Usage::

    .venv/bin/python perf/server_deploy_latency.py [--executor local|slurm|both]
        [--n-local 50] [--n-slurm 30] [--burst 10]

Why: a user's ``aifactory deploy`` waits on exactly this path (command stream → durable pull
consumer → recipe load/render → registry CAS → scheduler submit → registry CAS → event). The
interesting number is not the absolute latency, which sbatch or a process spawn dominates,
but aifactory's *overhead above the scheduler*. So every run also measures the baseline in
the same process: the executor's ``submit()`` called directly for a trivial script, the same
number of times. The real server (``python -m aifactory.services.server``) runs against an embedded
``nats-server``; N deploys go sequentially, then in bursts of ``--burst`` concurrent
commands, each phase right after its baseline twin (jobs of a phase are waited out before
the next, so the queues start empty).

Latency is taken on the requester's monotonic clock: t0 just before ``aifactory.shared.bus.publish``
(so the PubAck round trip counts, as it does for the CLI), t1 when ``job.submitted`` for that
service id arrives through an ordered JetStream consumer on the events stream. The server's
own view, the ``aifactory_server_submit_seconds`` histogram (command handler entered → job
submitted and event published), is scraped from the ingress ``/metrics`` before and after
each phase; the difference between it and the bus latency is the time the command spends on
the bus and waiting in the consumer. One warm-up deploy/submit per phase family is excluded.

Everything started is stopped: every job id the registry or the baseline knows is cancelled
(local: the executor's ``cancel``; slurm: ``scancel <id>``, never by name or user), the
server gets SIGTERM, nats-server is stopped and the temporary directory removed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from _common import (
    Histogram,
    ServerProcess,
    Summary,
    load_warning,
    parse_histogram,
    slurm_available,
    table_header,
)
from _jobs import cancel_all, make_executor, registry_job_ids, wait_terminal
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from aifactory.shared import subjects
from aifactory.shared.bus import ensure_topology, make_broker, publish
from aifactory.shared.executors.base import Executor
from aifactory.shared.messages import DeployRequested
from aifactory.shared.natsd import EmbeddedNats
from aifactory.shared.registry import KVRegistry, ServiceRecord
from aifactory.shared.settings import Settings

SUBMIT_METRIC = "aifactory_server_submit_seconds"
#: Bounds: no single deploy may take longer than this, nor a drain of finished jobs.
EVENT_TIMEOUT = 60.0
DRAIN_TIMEOUT = 120.0

#: A native job that exits at once: what is measured is submission, not the workload.
QUICK_RECIPE = """\
name: quick
category: inference
description: exits at once; deploy-latency benchmark
version: "1"
runtime: native
command: ["true"]
ports:
  http: 1
resources:
  nodes: 1
  cpus_per_task: 1
  memory: 64M
  time_limit: "00:02:00"
  partition: cpu
health:
  path: /
  timeout: 5
  interval: 1
"""

#: The baseline script: the same resource requests, nothing aifactory rendered.
TRIVIAL_SCRIPT = """\
#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=1
#SBATCH --mem=64M
#SBATCH --time=00:02:00
#SBATCH --partition=cpu
true
"""


@dataclass
class PhaseResult:
    label: str
    seconds: list[float]
    failures: int = 0
    histogram: Histogram | None = None


@dataclass
class Run:
    """What one executor's run submitted: every id here is cancelled at the end."""

    executor: str
    baseline_jobs: list[str] = field(default_factory=list)
    service_ids: list[str] = field(default_factory=list)
    results: list[PhaseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def timed_batches(
    n: int, concurrency: int, one: Callable[[int], Awaitable[float]]
) -> tuple[list[float], int]:
    """Run ``one(i)`` for i < n, ``concurrency`` at a time, each batch fully before the next.

    Bursts rather than a sliding window: the question is "10 users press deploy at once",
    and each burst starting from an idle server keeps bursts comparable with each other.
    """
    seconds: list[float] = []
    failures = 0
    for start in range(0, n, concurrency):
        batch = range(start, min(n, start + concurrency))
        results = await asyncio.gather(*(one(i) for i in batch), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                failures += 1
                print(f"  failure: {type(result).__name__}: {result}", file=sys.stderr)
            else:
                seconds.append(result)
    return seconds, failures


# -- the two measured paths --------------------------------------------------------------


class DeployBench:
    """Both measured paths for one executor, sharing one bus connection and one server.

    Baseline and server phases alternate (baseline sequential, server sequential, baseline
    burst, server burst) so that a neighbour's load on this shared 2-core machine hits both
    sides of each comparison rather than one.
    """

    def __init__(self, run: Run, tmp: Path, server: ServerProcess, executor: Executor) -> None:
        self.run = run
        self.tmp = tmp
        self.server = server
        self.executor = executor
        self.tag = f"{int(time.time() * 1000) % 10**8}"
        self.waiting: dict[str, asyncio.Future[float]] = {}
        #: Wall-clock marks per service: [sent, job.submitted published, arrived]; with the
        #: record's ``created`` they split the latency into segments (same host, same clock).
        self.wall: dict[str, list[float]] = {}
        self.broker = make_broker(Settings(nats_url=server.env["AIFACTORY_NATS_URL"]), name="bench")
        self.registry: KVRegistry[ServiceRecord] | None = None

    async def connect(self) -> None:
        await self.broker.connect()
        js = self.broker.connection.jetstream()
        self.registry = KVRegistry((await ensure_topology(js)).services, ServiceRecord)
        await js.subscribe(
            subjects.JOB.subject(event="submitted"),
            stream=subjects.EVENTS_STREAM,
            cb=self._on_submitted,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
        )

    async def close(self) -> None:
        await self.broker.stop()

    async def _on_submitted(self, msg: Msg) -> None:
        arrived, arrived_wall = time.perf_counter(), time.time()  # before parsing
        event = json.loads(msg.data)
        future = self.waiting.get(event.get("service_id"))
        if future is not None and not future.done():
            future.set_result(arrived)
            published = datetime.fromisoformat(event["time"]).timestamp()
            self.wall[event["service_id"]] += [published, arrived_wall]

    # -- baseline: the scheduler alone ------------------------------------------------

    async def submit(self, phase: str, i: int) -> float:
        """``executor.submit()`` of a trivial script: no bus, no registry, no rendering."""
        name = f"aifb-{self.tag}-{phase}{i}"
        started = time.perf_counter()
        job = await self.executor.submit(TRIVIAL_SCRIPT, name, self.tmp / "baseline-jobs" / name)
        elapsed = time.perf_counter() - started
        self.run.baseline_jobs.append(job.job_id)
        return elapsed

    async def baseline_phase(self, n: int, concurrency: int) -> None:
        phase = "seq" if concurrency == 1 else "burst"
        seconds, failures = await timed_batches(
            n, concurrency, functools.partial(self.submit, phase)
        )
        kind = "sequential" if concurrency == 1 else f"burst x{concurrency}"
        self.run.results.append(PhaseResult(f"baseline submit() {kind}", seconds, failures))
        if not await wait_terminal(self.executor, list(self.run.baseline_jobs), DRAIN_TIMEOUT):
            self.run.notes.append(f"baseline {phase}: jobs still active after {DRAIN_TIMEOUT:g}s")

    # -- through the server -----------------------------------------------------------

    async def deploy(self, phase: str, i: int) -> float:
        """Publish one ``deploy.requested``; seconds until its ``job.submitted`` arrives."""
        service_id = f"bd{self.tag}{phase}{i}"
        self.run.service_ids.append(service_id)
        future = self.waiting[service_id] = asyncio.get_running_loop().create_future()
        cmd = DeployRequested(service_id=service_id, recipe="inference/quick")
        self.wall[service_id] = [time.time()]
        started = time.perf_counter()
        try:
            await publish(self.broker, subjects.DEPLOY_REQUESTED, cmd)
            arrived = await asyncio.wait_for(future, EVENT_TIMEOUT)
        finally:
            self.waiting.pop(service_id, None)
        return arrived - started

    async def drain(self, ids: list[str]) -> None:
        """Until every service of the phase has ended (bounded): phases must not overlap."""
        assert self.registry is not None
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while time.monotonic() < deadline:
            records = [await self.registry.get(s) for s in ids]
            if all(r is not None and r[0].state.is_terminal for r in records):
                return
            await asyncio.sleep(0.5)
        self.run.notes.append(f"server: {len(ids)} services not ended after {DRAIN_TIMEOUT:g}s")

    async def server_phase(self, n: int, concurrency: int) -> None:
        phase = "seq" if concurrency == 1 else "burst"
        before = parse_histogram(self.server.metrics(), SUBMIT_METRIC)
        first = len(self.run.service_ids)
        seconds, failures = await timed_batches(
            n, concurrency, functools.partial(self.deploy, phase)
        )
        after = parse_histogram(self.server.metrics(), SUBMIT_METRIC)
        kind = "sequential" if concurrency == 1 else f"burst x{concurrency}"
        self.run.results.append(
            PhaseResult(f"aifactory deploy→job.submitted {kind}", seconds, failures)
        )
        self.run.results.append(PhaseResult(f"  server {SUBMIT_METRIC}", [], 0, after - before))
        await self.segments(self.run.service_ids[first:])
        await self.drain(self.run.service_ids[first:])

    async def segments(self, ids: list[str]) -> None:
        """Split each deploy's latency at the record's ``created`` and the event's ``time``.

        sent → record created: the command's trip through JetStream and the pull consumer
        (plus the handler's duplicate-check KV get); record created → event stamped: the
        handler's work (render, CAS writes, scheduler submit); event stamped → arrived: the
        event's trip to a subscriber. Shows where an outlier sits without touching the server.
        """
        assert self.registry is not None
        pickup, handler, delivery = [], [], []
        for service_id in ids:
            marks = self.wall.get(service_id, [])
            found = await self.registry.get(service_id)
            if len(marks) != 3 or found is None:
                continue
            sent, stamped, arrived = marks
            created = found[0].created.timestamp()
            pickup.append(created - sent)
            handler.append(stamped - created)
            delivery.append(arrived - stamped)
        for label, values in (
            ("  sent → handler built the record", pickup),
            ("  record → job.submitted stamped", handler),
            ("  stamped → event arrived", delivery),
        ):
            self.run.results.append(PhaseResult(label, values))

    async def warm_up(self) -> None:
        """Excluded: the first submit/deploy pays imports, template compilation, RPC setup."""
        await self.submit("warm", 0)
        await self.deploy("warm", 0)
        await wait_terminal(self.executor, list(self.run.baseline_jobs), DRAIN_TIMEOUT)
        await self.drain(list(self.run.service_ids))


# -- one executor ------------------------------------------------------------------------


async def bench_executor(kind: str, n: int, burst: int) -> Run:
    run = Run(kind)
    tmp = Path(tempfile.mkdtemp(prefix=f"aif-bench-deploy-{kind}-"))
    (tmp / "recipes" / "inference").mkdir(parents=True)
    (tmp / "recipes" / "inference" / "quick.yaml").write_text(QUICK_RECIPE)
    nats = EmbeddedNats(tmp / "nats").start()
    server = ServerProcess(tmp, nats.url, executor=kind)
    baseline_executor = make_executor(kind, tmp / "baseline-state")
    server_executor = make_executor(kind, server.state_dir)
    bench = DeployBench(run, tmp, server, baseline_executor)
    try:
        server.start()
        await bench.connect()
        await bench.warm_up()
        for concurrency in (1, burst):
            how = "sequential" if concurrency == 1 else f"in bursts of {burst}"
            print(f"[{kind}] {n} x executor.submit() {how}, then {n} deploys {how}")
            await bench.baseline_phase(n, concurrency)
            await bench.server_phase(n, concurrency)
    finally:
        # Each step runs even if an earlier one failed: no job, process or file left behind.
        try:
            await bench.close()
            server.stop()
            cancelled = await cancel_all(baseline_executor, run.baseline_jobs)
            server_jobs = await registry_job_ids(nats.url, run.service_ids)
            cancelled += await cancel_all(server_executor, server_jobs)
            if cancelled:
                run.notes.append(f"cleanup: cancelled {cancelled} jobs still active")
        finally:
            server.stop()
            nats.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    return run


def report(run: Run) -> None:
    print(f"\n== executor: {run.executor} ==")
    print(table_header(40))
    medians: dict[str, float] = {}
    for result in run.results:
        if result.histogram is not None:
            h = result.histogram
            cells = "".join(
                f"{v * 1000:10.1f}" for v in (h.quantile(0.5), h.quantile(0.9), h.quantile(0.99))
            )
            print(f"{result.label:<40}{int(h.count):6d}{cells}{'':>10}{h.mean * 1000:10.1f}")
            continue
        summary = Summary.of(result.seconds)
        print(summary.row(result.label, 40))
        medians[result.label] = summary.p50
        if result.failures:
            print(f"{'':<40}failures: {result.failures} (not in the latencies)")
    print("(histogram rows: bucket-interpolated estimates, as Prometheus' histogram_quantile)")
    for kind in ("sequential", "burst"):
        base = next((v for k, v in medians.items() if k.startswith("baseline") and kind in k), None)
        ours = next(
            (v for k, v in medians.items() if k.startswith("aifactory") and kind in k), None
        )
        if base is not None and ours is not None:
            print(
                f"overhead above {run.executor} submit ({kind}, p50): "
                f"{(ours - base) * 1000:+.1f} ms ({ours / base:.1f}x)"
            )
    for note in run.notes:
        print(f"note: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executor", choices=("local", "slurm", "both"), default="both")
    parser.add_argument("--n-local", type=int, default=50)
    parser.add_argument("--n-slurm", type=int, default=30)
    parser.add_argument("--burst", type=int, default=10)
    args = parser.parse_args()
    if not 1 <= args.burst <= 100 or not (1 <= args.n_local <= 1000 and 1 <= args.n_slurm <= 500):
        parser.error("keep --burst in 1..100, --n-local in 1..1000, --n-slurm in 1..500")
    warning = load_warning()
    if warning:
        print(f"warning: {warning}")
    kinds = ["local", "slurm"] if args.executor == "both" else [args.executor]
    if "slurm" in kinds and not slurm_available():
        if args.executor == "slurm":
            sys.exit("sinfo does not answer: start SLURM with deploy/local-slurm/up.sh")
        print("sinfo does not answer: skipping the slurm executor")
        kinds.remove("slurm")
    runs = []
    for kind in kinds:
        n = args.n_local if kind == "local" else args.n_slurm
        runs.append(asyncio.run(bench_executor(kind, n, args.burst)))
    for run in runs:
        report(run)


if __name__ == "__main__":
    main()
