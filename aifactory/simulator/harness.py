"""Run the simulator as a real process and time it from outside: for tests and benchmarks.

The benchmark engine's numbers are proven against a simulator whose latencies are known; this
module is the shared way to start one (a subprocess, stopped with SIGTERM like the executors
do), to read its metrics, and to time a stream with a client too small to add noise.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from aifactory.shared.natsd import free_port

ROOT = Path(__file__).resolve().parents[3]


class SimulatorProcessError(RuntimeError):
    """The simulator process did not start, or did not stop cleanly (stderr included)."""


class SimulatorProcess:
    """``python -m aifactory.simulator`` as a context manager.

    ``with SimulatorProcess("--ttft-ms", "50") as sim: ... sim.url``; leaving the block sends
    SIGTERM and raises :class:`SimulatorProcessError` unless the exit is clean (status 0, no
    traceback), so every user of the harness also checks the shutdown path.
    """

    def __init__(
        self, *options: str, startup_timeout: float = 15.0, env: Mapping[str, str] | None = None
    ) -> None:
        """``env``: variables added to this process's environment (``VLLM_API_KEY``)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._options = options
        self._timeout = startup_timeout
        self._env = {**os.environ, **env} if env else None
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SimulatorProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        cmd = [sys.executable, "-m", "aifactory.simulator", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*cmd, "--log-level", "warning", *self._options],
            cwd=ROOT,
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + self._timeout
        while True:
            if self.proc.poll() is not None:
                stderr = self.proc.communicate()[1].decode()
                raise SimulatorProcessError(f"simulator exited at start-up: {stderr}")
            try:
                health = f"{self.url}/health"  # always http://127.0.0.1
                with urllib.request.urlopen(health, timeout=1) as resp:  # noqa: S310
                    if resp.status == 200:
                        return
            except OSError as exc:
                if time.monotonic() > deadline:
                    self.proc.kill()
                    raise SimulatorProcessError(
                        f"simulator not healthy at {self.url} after {self._timeout} s: {exc}"
                    ) from exc
                time.sleep(0.05)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then require exit status 0 within ``timeout`` and a clean stderr."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.wait()
            raise SimulatorProcessError(f"simulator ignored SIGTERM for {timeout} s") from exc
        stderr = proc.communicate()[1].decode()
        if code != 0 or "Traceback" in stderr:
            raise SimulatorProcessError(f"simulator exit status {code}: {stderr}")


def metric_sample(text: str, name: str, **labels: str) -> float:
    """Value of the sample ``name`` with exactly ``labels`` in Prometheus text exposition."""
    for line in text.splitlines():
        match = re.fullmatch(r"([^{ ]+)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        if dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or "")) == labels:
            return float(match.group(3))
    raise KeyError(f"no sample {name}{labels}")


async def timed_stream(
    port: int, body: dict[str, Any], path: str = "/v1/chat/completions", host: str = "127.0.0.1"
) -> tuple[float, list[float]]:
    """Time one streamed OpenAI request with a raw socket (no HTTP library in the way).

    Returns ``(t0, stamps)``: ``t0`` when the request was written (after connecting) and one
    ``time.monotonic()`` stamp per SSE event carrying generated text, as design.md defines
    TTFT and ITL.
    """
    payload = json.dumps({**body, "stream": True}).encode()
    request = (
        b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (path.encode(), host.encode(), len(payload), payload)
    )
    reader, writer = await asyncio.open_connection(host, port)
    stamps: list[float] = []
    try:
        t0 = time.monotonic()
        writer.write(request)
        buffer = b""
        done = False
        while not done:
            data = await asyncio.wait_for(reader.read(65536), timeout=30)
            now = time.monotonic()
            if not data:
                raise ConnectionError("connection closed before data: [DONE]")
            buffer += data
            *events, buffer = buffer.split(b"\n\n")
            stamps += [now for e in events if b'{"content":"' in e or b'"text":"' in e]
            done = any(e.endswith(b"data: [DONE]") for e in events)
    finally:
        writer.close()
    return t0, stamps


def sse_payloads(text: str) -> list[str]:
    """The ``data:`` payloads of a complete SSE body, in order (``[DONE]`` included).

    Raises ValueError when the body is not well-formed SSE (every event one ``data:`` line,
    terminated by a blank line), so shape tests fail loudly on framing mistakes.
    """
    if not text.endswith("\n\n"):
        raise ValueError(f"SSE body does not end with a blank line: {text[-80:]!r}")
    events = [block for block in text.split("\n\n") if block]
    bad = [e for e in events if not e.startswith("data: ") or "\n" in e]
    if bad:
        raise ValueError(f"malformed SSE events: {bad[:3]!r}")
    return [e.removeprefix("data: ") for e in events]


async def fetch_metrics(url: str) -> str:
    """``GET {url}/metrics`` as text (the simulator's, or any Prometheus endpoint's)."""
    reader, writer = await asyncio.open_connection(*_host_port(url))
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n")
        raw = await asyncio.wait_for(reader.read(-1), timeout=10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        raise ConnectionError(f"GET {url}/metrics: {head[:100]!r}")
    return body.decode()


def _host_port(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rstrip("/").rpartition(":")
    return host, int(port)


def raw_exchange(port: int, payload: bytes, host: str = "127.0.0.1") -> bytes:
    """Send raw bytes; return all the server sends until it closes (10 s socket timeout).

    For protocol-level checks (pipelining, malformed requests) no HTTP client would allow.
    """
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(payload)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def timing_problems(
    runs: list[tuple[float, list[float]]], ttft_ms: float, itl_ms: float, tokens: int
) -> list[str]:
    """Compare streams timed by :func:`timed_stream` with the configured latencies.

    Returns human-readable problems (empty when all is well). Tolerances are the simulator's
    contract: TTFT within 3 ms (judged on the best stream: client-side noise only ever adds
    latency), each stream's mean ITL within 0.5 ms, and the median TPOT within 0.1 ms, which
    absolute deadlines guarantee.
    """
    if not runs or any(len(stamps) != tokens for _, stamps in runs):
        return [f"token counts {[len(s) for _, s in runs]} != {tokens}"]
    problems = []
    ttfts = [(stamps[0] - t0) * 1000 for t0, stamps in runs]
    if abs(min(ttfts) - ttft_ms) > 3.0 or statistics.median(ttfts) > ttft_ms + 6.0:
        problems.append(f"TTFT ms {ttfts} not {ttft_ms} +- 3")
    if tokens >= 2:
        itls = [(s[-1] - s[0]) * 1000 / (tokens - 1) for _, s in runs]
        if not all(abs(i - itl_ms) < 0.5 for i in itls):
            problems.append(f"mean ITL ms {itls} not {itl_ms} +- 0.5")
        if abs(statistics.median(itls) - itl_ms) > 0.1:
            problems.append(f"median TPOT ms {statistics.median(itls)} not {itl_ms} +- 0.1")
    return problems
