"""Helpers for the load-generator benchmarks: a pinned simulator process and pinning.

The simulator runs on core 0 and the measured client on core 1 (``taskset``), so figures
measure the client and not a fight for one core. With ``realtime`` (root only) both also run
at SCHED_FIFO priority 1 (``chrt -f 1``): on a shared machine other processes otherwise
preempt them for milliseconds mid-measurement (the kernel's RT throttle still leaves 5% of
each core to everyone else). Self-contained on purpose: a benchmark must not depend on test
fixtures.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python perf/x.py` puts bench/ first, not the repo root
    sys.path.insert(0, str(ROOT))

_READY = re.compile(r"ready on (http://[\d.]+:\d+)")


def can_pin() -> bool:
    return (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def can_realtime() -> bool:
    return os.geteuid() == 0 and shutil.which("chrt") is not None


def pinned(core: int | None, argv: list[str], realtime: bool = False) -> list[str]:
    """Prefix ``argv`` with ``taskset -c core`` (no-op on one core or without taskset) and,
    if asked and permitted, ``chrt -f 1``."""
    if core is not None and can_pin():
        argv = ["taskset", "-c", str(core), *argv]
    if realtime and can_realtime():
        argv = ["chrt", "-f", "1", *argv]
    return argv


@contextmanager
def simulator(*args: str, core: int | None = 0, realtime: bool = False) -> Iterator[str]:
    """Run ``python -m aifactory.simulator`` with ``args``; yield its base URL."""
    log = Path(tempfile.mkstemp(prefix="loadgen-bench-sim-", suffix=".log")[1])
    cmd = [sys.executable, "-m", "aifactory.simulator", "--host", "127.0.0.1"]
    cmd += ["--port", "0", "--log-level", "info", *args]
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            pinned(core, cmd, realtime), cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        url = None
        while url is None:
            match = _READY.search(log.read_text(errors="replace"))
            if match:
                url = match.group(1)
            elif proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"simulator did not start: {log.read_text()[-2000:]}")
            else:
                time.sleep(0.05)
        with urllib.request.urlopen(url + "/health", timeout=5) as resp:
            assert resp.status == 200
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.unlink(missing_ok=True)
