"""Vector search: the load generator's client CPU per search against the official client.

Usage::

    .venv/bin/python perf/vector_client_cpu.py [--requests 3000] [--concurrency 1,8]
        [--rows 20000] [--dimension 128] [--json out.json]

Why: a benchmark client that costs more CPU per request than the server it measures
becomes the bottleneck, and on a shared node it steals the server's cycles. Setup: a real
Chroma (``chroma run`` from the chromadb package) pinned to core 0, ``--rows`` seeded
random vectors ingested once (not measured). Each client runs in its own process pinned to
core 1 and sends the same held-out queries for top-10, ids only. The baseline in the same
run is a bare loop of the official ``chromadb.HttpClient`` (``collection.query``, one
query per call, ``include=[]``), the way a hand-written script would do it; the client's
CPU is measured around the loop alone. For the load generator, ``cpu ms/req`` is the
worker's CPU during the load (``RunSummary.cpu_ms_per_request``: sending, parsing, recall,
records) and ``process ms/req`` the whole child process's, pre-flight, dataset, ground
truth and summary included. Target: the worker's figure no higher than the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loadgen_common import ROOT, pinned

COLLECTION = "perf-vectors"


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _dataset(args: argparse.Namespace) -> dict[str, Any]:
    return {"count": args.rows, "dimension": args.dimension, "queries": 500, "seed": 3}


@contextmanager
def chroma(core: int) -> Iterator[str]:
    """``chroma run`` on a free port, data in a temporary folder; yields its URL."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = Path(sys.executable).with_name("chroma")
    folder = tempfile.TemporaryDirectory(prefix="perf-chroma-")
    cmd = [str(exe), "run", "--host", "127.0.0.1", "--port", str(port), "--path", folder.name]
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.Popen(
        pinned(core, cmd), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/api/v2/heartbeat", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("chroma did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        folder.cleanup()


def _config(args: argparse.Namespace, url: str, **fields: Any) -> Any:
    from aifactory.loadgen import BenchConfig

    vector = {"collection": COLLECTION, "dataset": _dataset(args), **fields.pop("vector", {})}
    return BenchConfig.model_validate(
        {"target": url, "backend": "chroma", "workers": 1, "vector": vector, **fields}
    )


async def _ingest(args: argparse.Namespace, url: str) -> None:
    from aifactory.loadgen import run_benchmark

    cfg = _config(
        args,
        url,
        profile="concurrency",
        concurrency=4,
        vector={"mode": "ingest", "batch_size": 1000},
    )
    run = (await run_benchmark(cfg, progress=False)).summary.runs[0]
    if run.requests_failed:
        raise RuntimeError(f"ingest failed: {run.failures}")


async def _loadgen(args: argparse.Namespace) -> dict[str, Any]:
    from aifactory.loadgen import run_benchmark

    profile = {"profile": "concurrency", "concurrency": args.concurrency}
    if args.concurrency == 1:
        profile = {"profile": "synchronous"}
    cfg = _config(args, args.url, requests=args.requests, **profile)
    cpu0, t0 = _cpu(), time.perf_counter()
    result = await run_benchmark(cfg, progress=False)
    cpu, wall = _cpu() - cpu0, time.perf_counter() - t0
    run = result.summary.runs[0]
    [search] = run.operations
    return {
        "ok": search.requests_ok,
        "failed": search.requests_failed,
        "req_per_s": search.request_throughput,
        "cpu_ms_per_req": run.cpu_ms_per_request,
        "process_ms_per_req": cpu * 1000 / args.requests,
        "recall": search.recall.mean,
        "wall_s": wall,
    }


def _official(args: argparse.Namespace) -> dict[str, Any]:
    """The baseline: the official client, one query per call, as a script would."""
    import chromadb

    from aifactory.loadgen.vector.data import load_vectors
    from aifactory.loadgen.vector.truth import ground_truth, recall_sets
    from aifactory.shared.vectors import VectorDataset, VectorWorkload

    dataset = VectorDataset.model_validate(_dataset(args))
    data = load_vectors(dataset)
    truth = recall_sets(ground_truth(data, VectorWorkload(dataset=dataset)))
    host, port = args.url.removeprefix("http://").split(":")
    client = chromadb.HttpClient(host=host, port=int(port))
    collection = client.get_collection(COLLECTION)
    queries = [q.tolist() for q in data.queries]
    recalls = []
    cpu0, t0 = _cpu(), time.perf_counter()
    for i in range(args.requests):
        q = i % len(queries)
        found = collection.query(query_embeddings=[queries[q]], n_results=10, include=[])
        recalls.append(len(truth[q].intersection(int(x) for x in found["ids"][0])) / 10)
    cpu, wall = _cpu() - cpu0, time.perf_counter() - t0
    return {
        "ok": args.requests,
        "failed": 0,
        "req_per_s": args.requests / wall,
        "cpu_ms_per_req": cpu * 1000 / args.requests,
        "process_ms_per_req": None,
        "recall": sum(recalls) / len(recalls),
        "wall_s": wall,
    }


def child(args: argparse.Namespace) -> None:
    import uvloop

    out = uvloop.run(_loadgen(args)) if args.engine == "loadgen" else _official(args)
    print(json.dumps(out))


def _run_child(args: argparse.Namespace, engine: str, url: str, conc: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "child", "--engine", engine, "--url", url]
    cmd += ["--concurrency", str(conc), "--requests", str(args.requests)]
    cmd += ["--rows", str(args.rows), "--dimension", str(args.dimension)]
    proc = subprocess.run(pinned(1, cmd), cwd=ROOT, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} child failed: {proc.stderr[-3000:]}")
    return {"engine": engine, "concurrency": conc, **json.loads(proc.stdout.splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cmd", nargs="?", choices=["child"])
    parser.add_argument("--engine", choices=["loadgen", "chromadb"])
    parser.add_argument("--url")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--dimension", type=int, default=128)
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    if args.cmd == "child":
        args.concurrency = int(args.concurrency)
        child(args)
        return
    rows: list[dict[str, Any]] = []
    with chroma(core=0) as url:
        asyncio.run(_ingest(args, url))
        rows.append(_run_child(args, "chromadb", url, 1))
        for conc in (int(x) for x in args.concurrency.split(",")):
            rows.append(_run_child(args, "loadgen", url, conc))
        rows.append(_run_child(args, "chromadb", url, 1))
    head = f"{'client':9} {'conc':>4} {'ok':>6} {'fail':>4} {'req/s':>8} {'cpu ms/req':>10}"
    print(f"{head} {'process ms/req':>14} {'recall@10':>9}")
    for r in rows:
        process = "-" if r["process_ms_per_req"] is None else f"{r['process_ms_per_req']:.3f}"
        print(
            f"{r['engine']:9} {r['concurrency']:>4} {r['ok']:>6} {r['failed']:>4} "
            f"{r['req_per_s']:>8.0f} {r['cpu_ms_per_req']:>10.3f} {process:>14} "
            f"{r['recall']:>9.4f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
