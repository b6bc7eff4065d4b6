"""What encrypting the embedded JetStream store costs: acked publishes, plain vs encrypted.

``aifactory up`` encrypts its store (ChaCha20-Poly1305, key in ``credentials.json``) so the
secrets some commands carry are never on disk in clear. This publishes the same acked
JetStream messages to two embedded servers, one without a store key (the baseline) and
one with, in interleaved rounds, and prints messages per second and the server's CPU time
per message for a command-sized (1 KiB) and a record-batch-sized (32 KiB) payload.

    .venv/bin/python perf/nats_store_encryption.py [--messages 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python perf/x.py` puts perf/ first, not the repo root
    sys.path.insert(0, str(ROOT))

import nats  # noqa: E402

from aifactory.shared.natsd import EmbeddedNats  # noqa: E402 - needs the path fix above

USER, PASSWORD = "aif-perf", "perf-password-0123456789"
STORE_KEY = "perf-store-key-0123456789abcdef"
SIZES = {"command 1 KiB": 1024, "records 32 KiB": 32 * 1024}
#: Acked publishes in flight at once (the client service and workers pipeline too).
WINDOW = 64


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid``'s threads so far, in nanoseconds' resolution (``/proc/PID/stat``
    counts clock ticks: 10 ms, too coarse for a few thousand messages). Go keeps its
    threads, so none of the time is lost with an exited thread."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1e9


async def publish_round(url: str, subject: str, size: int, count: int) -> float:
    """Seconds to publish ``count`` acked messages of ``size`` bytes, ``WINDOW`` in flight."""
    nc = await nats.connect(url, user=USER, password=PASSWORD)
    try:
        js = nc.jetstream()
        payload = os.urandom(size)
        started = time.perf_counter()
        for first in range(0, count, WINDOW):
            batch = range(first, min(first + WINDOW, count))
            await asyncio.gather(*(js.publish(subject, payload) for _ in batch))
        return time.perf_counter() - started
    finally:
        await nc.close()


async def create_stream(url: str) -> None:
    nc = await nats.connect(url, user=USER, password=PASSWORD)
    try:
        await nc.jetstream().add_stream(name="PERF", subjects=["perf.>"])
    finally:
        await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    if load > 1.5:
        print(f"warning: load average {load:.1f}: other work moves the absolute figures")
    with tempfile.TemporaryDirectory(prefix="aif-perf-store-") as tmp:
        servers = {
            "plain (baseline)": EmbeddedNats(Path(tmp, "plain"), user=USER, password=PASSWORD),
            "encrypted": EmbeddedNats(
                Path(tmp, "enc"), user=USER, password=PASSWORD, store_key=STORE_KEY
            ),
        }
        for server in servers.values():
            server.start()
        try:
            for server in servers.values():
                asyncio.run(create_stream(server.url))
            results: dict[tuple[str, str], list[tuple[float, float]]] = {}
            for _ in range(args.rounds):
                for size_name, size in SIZES.items():
                    for name, server in servers.items():
                        assert server.pid is not None
                        cpu = cpu_seconds(server.pid)
                        wall = asyncio.run(publish_round(server.url, "perf.x", size, args.messages))
                        cpu = cpu_seconds(server.pid) - cpu
                        results.setdefault((size_name, name), []).append((wall, cpu))
        finally:
            for server in servers.values():
                server.stop()
    print(f"{args.messages} acked publishes per round, {WINDOW} in flight, median of rounds")
    print(f"{'payload':<16}{'store':<18}{'msg/s':>10}{'server CPU µs/msg':>20}")
    for (size_name, name), rounds in results.items():
        rate = statistics.median(args.messages / wall for wall, _ in rounds)
        cpu_us = statistics.median(cpu / args.messages * 1e6 for _, cpu in rounds)
        print(f"{size_name:<16}{name:<18}{rate:>10,.0f}{cpu_us:>20.1f}")


if __name__ == "__main__":
    main()
