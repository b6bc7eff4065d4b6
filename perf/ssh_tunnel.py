"""Tunnel cost: the simulator benchmarked through an SSH port forward vs directly.

Usage::

    .venv/bin/python perf/ssh_tunnel.py [--latency-requests 300] [--requests 3000]
        [--concurrency 32] [--rounds 3] [--megabytes 256]

Why: with ``slurm+ssh`` a laptop reaches a service on a compute node through a local port
forward of the one SSH connection; the benchmark results it reports must be about the
service, not the tunnel. So the same run measures, alternating direct and tunnelled rounds:

- latency: one request at a time (``synchronous``), TTFT and E2E p50 (the simulator's
  TTFT is fixed at 10 ms, ITL 1 ms, 16 tokens): the difference is the tunnel's;
- request throughput: closed loop at ``--concurrency``, streamed requests/s;
- byte throughput: one TCP connection reading ``--megabytes`` from a local sender.

The forward is held by a separate process, as in production (the server holds it, the
benchmark client is another process): ``SshConnection.forward`` through a throw-away sshd
on loopback (``deploy/local-sshd``). The simulator is pinned to core 0 and this client to
core 1 when the machine has two; sshd and the forwarding process take what is left, which
is the honest cost on a laptop too. As root every process of the path runs at SCHED_FIFO 1
(``--no-realtime`` to compare), as ``loadgen_fidelity.py`` does: on a shared 2-core machine
other work otherwise pre-empts them mid-request and the difference measures the neighbours.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import cpu_seconds
from _sshd import Sshd
from loadgen_common import ROOT, can_realtime, pinned, simulator

from aifactory.shared.executors.ssh_connection import SshConnection
from aifactory.shared.settings import SshSettings

SIM_ARGS = ("--ttft-ms", "10", "--itl-ms", "1", "--output-tokens", "16", "--max-running", "100000")


# -- the forwarding process ----------------------------------------------------------------


async def hold_forward(settings: SshSettings, port: int) -> None:
    """Child mode: forward 127.0.0.1:<port> through sshd, print the local port, hold it
    until stdin closes."""
    conn = SshConnection(settings)
    local = await conn.forward("127.0.0.1", port)
    print(local, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await conn.close()


def start_forward(
    sshd: Sshd, port: int, realtime: bool = False
) -> tuple[subprocess.Popen[str], int]:
    argv = [sys.executable, __file__, "--hold-forward", str(port), "--sshd", str(sshd.folder),
            "--sshd-port", str(sshd.port)]  # fmt: skip
    proc = subprocess.Popen(
        pinned(None, argv, realtime),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"the forwarding process did not start: {line!r}")
    return proc, int(line)


# -- measurements ----------------------------------------------------------------------------


async def loadgen(url: str, **workload: Any) -> dict[str, float]:
    from aifactory.loadgen import BenchConfig, run_benchmark

    cfg = BenchConfig(
        target=url,
        workers=1,
        dataset={"input_tokens": {"mean": 32}, "output_tokens": {"mean": 16}},
        **workload,
    )
    result = await run_benchmark(cfg, progress=False)
    run = result.summary.runs[0]
    if run.requests_failed:
        raise RuntimeError(f"{run.requests_failed} requests failed against {url}")
    return {
        "ttft_p50": run.ttft_ms.p50,
        "e2el_p50": run.e2el_ms.p50,
        "req_per_s": run.request_throughput or 0.0,
    }


def bulk_sender(megabytes: int, realtime: bool) -> tuple[subprocess.Popen[bytes], int]:
    """A process that sends ``megabytes`` MiB to each connection, then closes it."""
    code = (
        "import socket,sys\n"
        "s=socket.socket();s.bind(('127.0.0.1',0));s.listen();print(s.getsockname()[1],flush=True)\n"
        "chunk=b'x'*(1<<20)\n"
        "while True:\n"
        "    c,_=s.accept()\n"
        f"    [c.sendall(chunk) for _ in range({megabytes})]\n"
        "    c.close()\n"
    )
    proc = subprocess.Popen(
        pinned(None, [sys.executable, "-c", code], realtime), stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def read_all(port: int) -> float:
    """MiB/s reading everything one connection to ``port`` sends."""
    started, total = time.perf_counter(), 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        while data := sock.recv(1 << 20):
            total += len(data)
    return total / (1 << 20) / (time.perf_counter() - started)


def median_of(rounds: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def run(args: argparse.Namespace) -> None:
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    rt = bool(args.realtime)
    if rt:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    print(f"realtime scheduling: {rt}")
    tmp = Path(tempfile.mkdtemp(prefix="aif-bench-tunnel-"))
    sshd = Sshd(tmp / "sshd").start(realtime=rt)
    procs: list[subprocess.Popen[Any]] = []
    try:
        with simulator(*SIM_ARGS, core=0, realtime=rt) as direct:
            sim_port = int(direct.rsplit(":", 1)[1])
            forward, local = start_forward(sshd, sim_port, rt)
            procs.append(forward)
            tunnel = f"http://127.0.0.1:{local}"
            latency: dict[str, list[dict[str, float]]] = {"direct": [], "tunnel": []}
            load: dict[str, list[dict[str, float]]] = {"direct": [], "tunnel": []}
            for url in (direct, tunnel):  # warm-up, excluded
                asyncio.run(loadgen(url, profile="synchronous", requests=20))
            for _ in range(args.rounds):
                for name, url in (("direct", direct), ("tunnel", tunnel)):
                    latency[name].append(
                        asyncio.run(
                            loadgen(url, profile="synchronous", requests=args.latency_requests)
                        )
                    )
                    closed_loop = {"concurrency": args.concurrency, "requests": args.requests}
                    cpu = cpu_seconds(forward.pid)
                    figures = asyncio.run(loadgen(url, profile="concurrency", **closed_loop))
                    cpu = cpu_seconds(forward.pid) - cpu
                    figures["forwarder_cpu_ms"] = cpu * 1000 / args.requests
                    load[name].append(figures)
            sender, bulk_port = bulk_sender(args.megabytes, rt)
            procs.append(sender)
            bulk_forward, bulk_local = start_forward(sshd, bulk_port, rt)
            procs.append(bulk_forward)
            bulk: dict[str, list[float]] = {"direct": [], "tunnel": []}
            for _ in range(args.rounds):
                bulk["direct"].append(read_all(bulk_port))
                bulk["tunnel"].append(read_all(bulk_local))
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        sshd.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n== simulator direct vs through an SSH forward (medians of {args.rounds} rounds) ==")
    print(f"{'':<34}{'direct':>12}{'tunnel':>12}{'difference':>14}")
    for label, table, key, unit in (
        (f"TTFT p50, 1 at a time (n={args.latency_requests})", latency, "ttft_p50", "ms"),
        ("E2E p50, 1 at a time", latency, "e2el_p50", "ms"),
        (f"req/s at concurrency {args.concurrency}", load, "req_per_s", ""),
        (f"TTFT p50 at concurrency {args.concurrency}", load, "ttft_p50", "ms"),
    ):
        d, t = median_of(table["direct"], key), median_of(table["tunnel"], key)
        print(f"{label:<34}{d:12.2f}{t:12.2f}{t - d:+12.2f} {unit}")
    cpu = median_of(load["tunnel"], "forwarder_cpu_ms")
    print(f"{'forwarding process CPU per request':<34}{'':>12}{cpu:12.3f} ms")
    d, t = statistics.median(bulk["direct"]), statistics.median(bulk["tunnel"])
    print(f"{f'MiB/s, one connection ({args.megabytes} MiB)':<34}{d:12.0f}{t:12.0f}{t - d:+12.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-requests", type=int, default=300)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=can_realtime(),
        help="every process of the path (client, forwarder, sshd, simulator) at SCHED_FIFO 1 "
        "(default: when root): on a shared machine pre-emption otherwise dominates",
    )
    parser.add_argument("--hold-forward", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sshd", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sshd-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hold_forward is not None:
        sshd = Sshd(args.sshd)
        sshd.port = args.sshd_port
        sshd.env = {"AIFACTORY_SSH__USER": _whoami()}  # up.sh lets its own user in
        asyncio.run(hold_forward(sshd.settings(), args.hold_forward))
        return
    if not (
        1 <= args.rounds <= 20
        and 1 <= args.latency_requests <= 10_000
        and 1 <= args.requests <= 100_000
        and 1 <= args.concurrency <= 1024
        and 1 <= args.megabytes <= 4096
    ):
        parser.error("keep --rounds ≤ 20, --requests ≤ 100000, --concurrency ≤ 1024, ≤ 4 GiB")
    run(args)


def _whoami() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


if __name__ == "__main__":
    main()
