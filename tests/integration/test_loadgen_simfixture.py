"""The inference simulator as a test fixture for the load generator's integration tests.

Started as a real process (``python -m aifactory.simulator``) on a free port, pinned to
core 0 when the machine has two or more (the load generator then runs pinned to core 1, so
timing tests measure the generator, not a fight for one core). Timing tests also ask for
``realtime``: SCHED_FIFO priority 1 for both sides when permitted (root), so that other
processes on a shared machine cannot preempt them mid-measurement (the kernel's RT throttle
still leaves 5% of each core to everyone else). Other loadgen test modules import
:func:`running` and :func:`pinned` from here.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import need

REPO = Path(__file__).resolve().parents[2]
SIMULATOR_MAIN = REPO / "aifactory" / "simulator" / "__main__.py"
_READY = re.compile(r"ready on (http://[\d.]+:\d+)")


@dataclass
class Simulator:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _two_cores() -> bool:
    return (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def _can_realtime() -> bool:
    return os.geteuid() == 0 and shutil.which("chrt") is not None


def start_simulator(*args: str, core: int | None = 0, realtime: bool = False) -> Simulator:
    """Start a simulator with ``args`` (e.g. ``"--ttft-ms", "50"``); wait until it serves."""
    need(SIMULATOR_MAIN.exists(), "the inference simulator (aifactory/simulator)")
    log = Path(tempfile.mkstemp(prefix="loadgen-sim-", suffix=".log")[1])
    cmd = [sys.executable, "-m", "aifactory.simulator", "--host", "127.0.0.1"]
    cmd += ["--port", "0", "--log-level", "info", *args]
    if core is not None and _two_cores():
        cmd = ["taskset", "-c", str(core), *cmd]
    if realtime and _can_realtime():
        cmd = ["chrt", "-f", "1", *cmd]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = _READY.search(log.read_text(errors="replace"))
        if match:
            sim = Simulator(url=match.group(1), process=proc, log=log)
            with urllib.request.urlopen(sim.url + "/health", timeout=5) as resp:
                assert resp.status == 200
            return sim
        if proc.poll() is not None:
            raise RuntimeError(f"simulator exited ({proc.returncode}): {log.read_text()[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"simulator not ready within 30 s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def running(*args: str, core: int | None = 0, realtime: bool = False) -> Iterator[Simulator]:
    sim = start_simulator(*args, core=core, realtime=realtime)
    try:
        yield sim
    finally:
        sim.stop()


@contextlib.contextmanager
def pinned(core: int = 1, realtime: bool = True) -> Iterator[None]:
    """Run the block on one core (the simulator has core 0), at SCHED_FIFO 1 if permitted.

    Worker processes spawned inside inherit both. No-op on a one-core machine.
    """
    if not _two_cores():
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    elevated = False
    if realtime and os.geteuid() == 0:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        elevated = True
    try:
        yield
    finally:
        if elevated:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        os.sched_setaffinity(0, before)


def test_simulator_fixture_serves_and_stops() -> None:
    with running("--ttft-ms", "1", "--itl-ms", "0", "--output-tokens", "2") as sim:
        with urllib.request.urlopen(sim.url + "/v1/models", timeout=5) as resp:
            assert b'"data"' in resp.read()
        proc = sim.process
    assert proc.poll() is not None
