"""Helpers shared by the server benchmarks (``server_deploy_latency``, ``server_ingress``).

They run the *real* server (``python -m aifactory.services.server``) as a subprocess against a real
``nats-server``, as ``tests/integration/server_stack.py`` does, because the costs worth
measuring (JetStream round trips, subprocess spawns, uvicorn) vanish in any in-process fake.
Kept here rather than imported from ``tests/`` so a benchmark never depends on test fixtures
and can choose its own settings (production-like ack waits, CPU pinning).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python perf/x.py` puts bench/ first, not the repo root
    sys.path.insert(0, str(ROOT))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from aifactory.shared.natsd import free_port  # noqa: E402 - needs the path fix above


def pinned(cores: str | None, argv: list[str]) -> list[str]:
    """Prefix ``argv`` with ``taskset -c cores`` so load source and server do not share a core.

    On 2 cores an unpinned load generator steals the server's CPU and the figure measures
    the scheduler's whims; pinning makes runs repeatable. No-op on a 1-core machine.
    """
    if cores is None or (os.cpu_count() or 1) < 2:
        return argv
    return ["taskset", "-c", cores, *argv]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation): every reported value was observed."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    n: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Summary:
        return cls(
            n=len(seconds),
            p50=percentile(seconds, 50),
            p90=percentile(seconds, 90),
            p99=percentile(seconds, 99),
            max=max(seconds) if seconds else math.nan,
            mean=sum(seconds) / len(seconds) if seconds else math.nan,
        )

    def row(self, label: str, width: int = 34) -> str:
        ms = [v * 1000 for v in (self.p50, self.p90, self.p99, self.max, self.mean)]
        cells = "".join(f"{v:10.1f}" for v in ms)
        return f"{label:<{width}}{self.n:6d}{cells}"


def table_header(width: int = 34) -> str:
    names = "".join(f"{h:>10}" for h in ("p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms"))
    return f"{'':<{width}}{'n':>6}{names}"


# -- Prometheus histograms -------------------------------------------------------------------


@dataclass(frozen=True)
class Histogram:
    """One scrape of a Prometheus histogram: cumulative buckets by upper bound."""

    buckets: tuple[tuple[float, float], ...]
    total: float
    count: float

    def __sub__(self, other: Histogram) -> Histogram:
        """Observations between two scrapes (histograms are cumulative counters)."""
        before = dict(other.buckets)
        buckets = tuple((le, n - before.get(le, 0.0)) for le, n in self.buckets)
        return Histogram(buckets, self.total - other.total, self.count - other.count)

    def quantile(self, q: float) -> float:
        """Prometheus' ``histogram_quantile``: linear inside the bucket holding rank q."""
        if self.count <= 0:
            return math.nan
        rank = q * self.count
        lower_bound, lower_count = 0.0, 0.0
        for le, cumulative in self.buckets:
            if cumulative >= rank:
                if math.isinf(le):
                    return lower_bound  # beyond the top bucket: the top bound is all we know
                span = cumulative - lower_count
                fraction = (rank - lower_count) / span if span else 1.0
                return lower_bound + (le - lower_bound) * fraction
            lower_bound, lower_count = le, cumulative
        return lower_bound

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan


def parse_histogram(text: str, name: str) -> Histogram:
    """The unlabelled histogram ``name`` from a Prometheus text exposition."""
    buckets: list[tuple[float, float]] = []
    total = count = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
            elif sample.name == f"{name}_sum":
                total = sample.value
            elif sample.name == f"{name}_count":
                count = sample.value
    buckets.sort()
    return Histogram(tuple(buckets), total, count)


def http_get_text(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body: bytes = resp.read()
        return body.decode()


# -- the server subprocess -------------------------------------------------------------------


class ServerProcess:
    """``python -m aifactory.services.server`` with its own state, jobs and recipes directories.

    Settings are the production defaults except the directories, the ingress port and what
    ``env`` overrides: a benchmark should see the ack waits and poll intervals users get.
    """

    def __init__(
        self,
        tmp: Path,
        nats_url: str,
        *,
        executor: str,
        cores: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "server.log"
        self.state_dir = tmp / "state"
        self.cores = cores
        self.env = {
            **os.environ,
            "AIFACTORY_NATS_URL": nats_url,
            "AIFACTORY_STATE_DIR": str(self.state_dir),
            "AIFACTORY_JOBS_DIR": str(tmp / "jobs"),
            "AIFACTORY_RECIPES_DIR": str(tmp / "recipes"),
            "AIFACTORY_EXECUTOR": executor,
            "AIFACTORY_INGRESS_PORT": str(self.port),
            **(env or {}),
        }
        # Loopback bind without a token, so the benchmark's requests stay plain ones: the
        # ingress refuses to start tokenless unless told this is a loopback demo.
        self.env.pop("AIFACTORY_API_TOKEN", None)
        self.env["AIFACTORY_INSECURE_LOOPBACK"] = "true"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> ServerProcess:
        argv = pinned(self.cores, [sys.executable, "-m", "aifactory.services.server"])
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                http_get_text(self.base + "/health", timeout=0.5)
                return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not healthy after {timeout}s: {self.log.read_text()[-3000:]}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def metrics(self) -> str:
        return http_get_text(self.base + "/metrics")

    def stop(self) -> None:
        """SIGTERM (the server drains its consumers), SIGKILL after 15 s."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def load_warning() -> str | None:
    """A warning when other work loads the machine: on 2 cores it moves every figure."""
    load1, _, _ = os.getloadavg()
    cores = os.cpu_count() or 1
    if load1 > 0.5 * cores:
        return (
            f"load average {load1:.1f} on {cores} cores before the run: other processes "
            "compete for CPU, so absolute figures are pessimistic (the in-run baseline shares "
            "the same conditions, compare against it)"
        )
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def slurm_available() -> bool:
    """``sinfo`` answers with at least one usable node."""
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    states = out.stdout.split()
    return out.returncode == 0 and any(s.startswith(("idle", "mix", "alloc")) for s in states)
