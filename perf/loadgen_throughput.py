"""Load-generator throughput: streamed requests/s ONE worker process drives, CPU per request.

Usage::

    .venv/bin/python perf/loadgen_throughput.py [--requests 20000] [--concurrency 16,64,256]
        [--baseline-requests 3000] [--before REF] [--json out.json]

Why: the generator must never be the bottleneck it measures. Setup: the simulator streams
16 tokens per request with TTFT 1 ms and no inter-token delay, pinned to core 0
(``taskset -c 0``); each client runs in its own process pinned to core 1 (both at
SCHED_FIFO 1 when root, see ``loadgen_common``). For every
concurrency a fresh child runs ``run_benchmark`` (closed loop, ``workers=1``: one process,
in-process worker, uvloop) and reports completed streamed requests per second and CPU time
per request from ``resource.getrusage`` (user + system, the whole child process, measured
around the run, including its pre-flight, summary and records). The baseline in the same run
is a naive loop with the official ``openai`` client (``AsyncOpenAI``, streaming with
``include_usage``, ``asyncio.gather`` over the same concurrency), what many benchmark scripts
do. Targets: >= 1,000 req/s per worker and <= 1 ms CPU per streamed request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from loadgen_common import ROOT, can_realtime, pinned, simulator

SIM_ARGS = ("--ttft-ms", "1", "--itl-ms", "0", "--output-tokens", "16", "--max-running", "100000")


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def _loadgen(url: str, concurrency: int, requests: int) -> dict[str, Any]:
    from aifactory.loadgen import BenchConfig, run_benchmark

    cfg = BenchConfig(
        target=url,
        profile="concurrency",
        concurrency=concurrency,
        requests=requests,
        workers=1,
        dataset={"input_tokens": {"mean": 32}, "output_tokens": {"mean": 16}},
    )
    cpu0, t0 = _cpu(), time.perf_counter()
    result = await run_benchmark(cfg, progress=False)
    cpu, wall = _cpu() - cpu0, time.perf_counter() - t0
    run = result.summary.runs[0]
    return {
        "ok": run.requests_ok,
        "failed": run.requests_failed,
        "req_per_s": run.request_throughput,
        "cpu_ms_per_req": cpu * 1000 / run.requests_sent,
        "engine_cpu_ms_per_req": run.cpu_ms_per_request,
        "wall_s": wall,
        "ttft_p50_ms": run.ttft_ms.p50,
        "tokens_ok": all(r.output_tokens == 16 for r in result.records if r.ok),
    }


async def _openai(url: str, concurrency: int, requests: int) -> dict[str, Any]:
    import openai

    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
    models = await client.models.list()
    model = models.data[0].id
    prompt = " ".join(["the"] * 32)
    done = failed = 0
    remaining = requests

    async def one() -> None:
        nonlocal done, failed
        stream = await client.completions.create(
            model=model,
            prompt=prompt,
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for _chunk in stream:
            pass
        done += 1

    async def loop() -> None:
        nonlocal remaining, failed
        while remaining > 0:
            remaining -= 1
            try:
                await one()
            except openai.OpenAIError:
                failed += 1

    cpu0, t0 = _cpu(), time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    cpu, wall = _cpu() - cpu0, time.perf_counter() - t0
    await client.close()
    return {
        "ok": done,
        "failed": failed,
        "req_per_s": done / wall,
        "cpu_ms_per_req": cpu * 1000 / requests,
        "wall_s": wall,
    }


def child(args: argparse.Namespace) -> None:
    import uvloop

    fn = _loadgen if args.engine == "loadgen" else _openai
    out = uvloop.run(fn(args.url, args.concurrency, args.requests))
    print(json.dumps(out))


def _run_child(
    engine: str,
    url: str,
    concurrency: int,
    requests: int,
    realtime: bool,
    tree: Path = ROOT,
    label: str | None = None,
) -> dict[str, Any]:
    """One measurement in a fresh process; ``tree``: the source tree it imports."""
    script = tree / "perf" / Path(__file__).name
    cmd = [sys.executable, str(script), "child", "--engine", engine, "--url", url]
    cmd += ["--concurrency", str(concurrency), "--requests", str(requests)]
    proc = subprocess.run(
        pinned(1, cmd, realtime), cwd=tree, capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{label or engine} child failed: {proc.stderr[-3000:]}")
    return {
        "engine": label or engine,
        "concurrency": concurrency,
        **json.loads(proc.stdout.splitlines()[-1]),
    }


def export_tree(ref: str, stack: ExitStack) -> Path:
    """The repository at ``ref`` in a temporary folder (removed when ``stack`` closes)."""
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="loadgen-before-")))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref],
        capture_output=True,
        check=True,
        timeout=120,
    )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd")
    c = sub.add_parser("child")
    c.add_argument("--engine", choices=["loadgen", "openai"], required=True)
    c.add_argument("--url", required=True)
    c.add_argument("--concurrency", type=int, required=True)
    c.add_argument("--requests", type=int, required=True)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--baseline-requests", type=int, default=3000)
    parser.add_argument("--concurrency", default="16,64,256")
    parser.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=can_realtime(),
        help="run simulator and client at SCHED_FIFO 1 (default: when root)",
    )
    parser.add_argument("--json", default=None, help="also write the rows here")
    parser.add_argument(
        "--before", default=None, metavar="REF", help="also measure git revision REF's loadgen"
    )
    args = parser.parse_args()
    if args.cmd == "child":
        child(args)
        return
    rows: list[dict[str, Any]] = []
    print(f"realtime scheduling: {args.realtime}")
    with ExitStack() as stack:
        before = export_tree(args.before, stack) if args.before else None
        url = stack.enter_context(simulator(*SIM_ARGS, core=0, realtime=args.realtime))
        for conc in (int(x) for x in args.concurrency.split(",")):
            if before is not None:
                label = f"loadgen@{args.before}"[:24]
                rows.append(
                    _run_child("loadgen", url, conc, args.requests, args.realtime, before, label)
                )
            rows.append(_run_child("loadgen", url, conc, args.requests, args.realtime))
            rows.append(_run_child("openai", url, conc, args.baseline_requests, args.realtime))
    print(f"{'client':24} {'conc':>5} {'ok':>7} {'fail':>5} {'req/s':>9} {'CPU ms/req':>11}")
    for r in rows:
        print(
            f"{r['engine']:24} {r['concurrency']:>5} {r['ok']:>7} {r['failed']:>5} "
            f"{r['req_per_s']:>9.0f} {r['cpu_ms_per_req']:>11.3f}"
        )
    best = max((r for r in rows if r["engine"] == "loadgen"), key=lambda r: r["req_per_s"])
    base = max((r for r in rows if r["engine"] == "openai"), key=lambda r: r["req_per_s"])
    print(
        f"loadgen best: {best['req_per_s']:.0f} req/s at concurrency {best['concurrency']}, "
        f"{best['cpu_ms_per_req']:.3f} ms CPU/req; openai baseline best: "
        f"{base['req_per_s']:.0f} req/s, {base['cpu_ms_per_req']:.3f} ms CPU/req "
        f"(targets: >= 1000 req/s, <= 1 ms CPU/req)"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
