"""Subprocesses of ``logs_follow.py``: the writing job, and the baseline publisher.

``writer PATH RATE SECONDS``: appends RATE lines/s of exactly 100 bytes for SECONDS, in
10 ms ticks; each line holds its sequence number and the time it was written (ns), so the
reader can check order and measure lag. Prints the number of lines written.

``baseline PATH NATS_URL SUBJECT SECONDS``: the floor a follower can be compared with: a
plain read loop (``tail -F`` without the process pipe) that publishes each chunk's complete
lines as one JetStream message and waits for the ack. No checkpoint, no decoding, no
batching limits, no alerts, no exactly-once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

LINE_BYTES = 100
TICK_S = 0.01


def line(seq: int, now_ns: int) -> bytes:
    head = f"{seq:010d} {now_ns:019d} "
    return (head + "x" * (LINE_BYTES - 1 - len(head)) + "\n").encode()


def writer(path: Path, rate: int, seconds: float) -> None:
    per_tick = max(1, round(rate * TICK_S))
    ticks = round(seconds / TICK_S)
    start = time.monotonic()
    seq = 0
    with path.open("ab", buffering=0) as fh:
        for tick in range(ticks):
            now = time.time_ns()
            fh.write(b"".join(line(seq + i, now) for i in range(per_tick)))
            seq += per_tick
            delay = start + (tick + 1) * TICK_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    print(seq, flush=True)


async def baseline(path: Path, nats_url: str, subject: str, seconds: float) -> None:
    import nats

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    deadline = time.monotonic() + seconds
    offset, pending = 0, b""
    with path.open("rb") as fh:
        while time.monotonic() < deadline:
            fh.seek(offset)
            data = fh.read(256 * 1024)  # a message stays under max_payload (1 MiB)
            if not data:
                await asyncio.sleep(0.05)
                continue
            offset += len(data)
            pending += data
            cut = pending.rfind(b"\n") + 1
            if cut:
                await js.publish(subject, pending[:cut])
                pending = pending[cut:]
    await nc.close()


def main() -> None:
    if sys.argv[1] == "writer":
        writer(Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    else:
        asyncio.run(baseline(Path(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])))


if __name__ == "__main__":
    main()
