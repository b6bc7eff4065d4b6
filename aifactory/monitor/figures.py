"""Key figures from scrape rows: the series the report draws, the aggregates a benchmark
summary keeps, and what ``aifactory monitor watch`` shows.

One reading of the raw samples for all three, so the report, the summary and the live view
never disagree: per server, ``vllm:num_requests_running``/``waiting`` summed over engines
and ``vllm:kv_cache_usage_perc`` as its highest engine; token rates from the counters'
differences between consecutive scrapes (a counter that goes down, a restart, starts a new
segment); per GPU the DCGM gauges; per node the CPU's busy fraction (1 - idle share of the
CPU seconds between scrapes) and memory used (MemTotal - MemAvailable).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from statistics import fmean

from aifactory.monitor.window import Row
from aifactory.shared.results import ServerAggregates

RUNNING, WAITING = "vllm:num_requests_running", "vllm:num_requests_waiting"
KV_CACHE, KV_CACHE_OLD = "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"
GENERATION, PROMPT = "vllm:generation_tokens_total", "vllm:prompt_tokens_total"
GPU_FIELDS = {
    "DCGM_FI_DEV_GPU_UTIL": "util",
    "DCGM_FI_DEV_FB_USED": "mem_used",
    "DCGM_FI_DEV_FB_FREE": "mem_free",
    "DCGM_FI_DEV_POWER_USAGE": "power",
    "DCGM_FI_DEV_GPU_TEMP": "temp",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": "engine",
}
CPU, MEM_TOTAL, MEM_AVAILABLE = (
    "node_cpu_seconds_total",
    "node_memory_MemTotal_bytes",
    "node_memory_MemAvailable_bytes",
)

Series = list[tuple[float, float]]  # (seconds since the epoch, value)


@dataclass
class Timeline:
    """Everything drawable, per server (target key), GPU (``host GPU n``) or node."""

    running: dict[str, Series] = field(default_factory=lambda: defaultdict(list))
    waiting: dict[str, Series] = field(default_factory=lambda: defaultdict(list))
    kv_cache: dict[str, Series] = field(default_factory=lambda: defaultdict(list))
    generation: dict[str, Series] = field(default_factory=lambda: defaultdict(list))
    prompt: dict[str, Series] = field(default_factory=lambda: defaultdict(list))
    gpu: dict[str, dict[str, Series]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    cpu: dict[str, list[tuple[float, float, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    mem_used: dict[str, Series] = field(default_factory=lambda: defaultdict(list))
    #: Per target: (time, up, error) of every scrape.
    up: dict[str, list[tuple[float, bool, str]]] = field(default_factory=lambda: defaultdict(list))

    def gpu_series(self, quantity: str) -> dict[str, Series]:
        return {name: q[quantity] for name, q in sorted(self.gpu.items()) if q.get(quantity)}

    def generation_rate(self) -> dict[str, Series]:
        return {k: rate(v) for k, v in self.generation.items()}

    def cpu_busy(self) -> dict[str, Series]:
        return {node: cpu_busy(points) for node, points in self.cpu.items()}


def gpu_name(row: Row) -> str:
    host = row.labels.get("Hostname") or row.labels.get("hostname") or row.node
    return f"{host} GPU {row.labels.get('gpu', '?')}"


def timeline(rows: Iterable[Row]) -> Timeline:
    """Group rows by scrape (target and time) and sum, max or pick as the module says."""
    out = Timeline()
    scrapes: dict[tuple[str, float], dict[str, float]] = defaultdict(dict)
    cpu: dict[tuple[str, float], dict[str, float]] = defaultdict(dict)
    mem: dict[tuple[str, float], dict[str, float]] = defaultdict(dict)
    for r in rows:
        if r.metric == "up":
            out.up[r.target].append((r.time, r.value > 0, r.labels.get("error", "")))
        elif r.metric in (RUNNING, WAITING, GENERATION, PROMPT):
            acc = scrapes[(r.target, r.time)]
            acc[r.metric] = acc.get(r.metric, 0.0) + r.value
        elif r.metric in (KV_CACHE, KV_CACHE_OLD):
            acc = scrapes[(r.target, r.time)]
            acc[KV_CACHE] = max(acc.get(KV_CACHE, 0.0), r.value)
        elif r.metric in GPU_FIELDS:
            out.gpu[gpu_name(r)][GPU_FIELDS[r.metric]].append((r.time, r.value))
        elif r.metric == CPU:
            acc = cpu[(r.node, r.time)]
            acc["total"] = acc.get("total", 0.0) + r.value
            if r.labels.get("mode") == "idle":
                acc["idle"] = acc.get("idle", 0.0) + r.value
        elif r.metric in (MEM_TOTAL, MEM_AVAILABLE):
            mem[(r.node, r.time)][r.metric] = r.value
    series = {
        RUNNING: out.running,
        WAITING: out.waiting,
        KV_CACHE: out.kv_cache,
        GENERATION: out.generation,
        PROMPT: out.prompt,
    }
    for (target, t), values in sorted(scrapes.items(), key=lambda kv: kv[0][1]):
        for metric, value in values.items():
            series[metric][target].append((t, value))
    for (node, t), values in sorted(cpu.items(), key=lambda kv: kv[0][1]):
        if "idle" in values:
            out.cpu[node].append((t, values["total"] - values["idle"], values["total"]))
    for (node, t), values in sorted(mem.items(), key=lambda kv: kv[0][1]):
        if len(values) == 2:
            out.mem_used[node].append((t, values[MEM_TOTAL] - values[MEM_AVAILABLE]))
    for quantities in out.gpu.values():
        for points in quantities.values():
            points.sort()
    return out


def rate(points: Series) -> Series:
    """Per-second increase between consecutive points of a counter (at the later one)."""
    out: Series = []
    for (t0, v0), (t1, v1) in pairwise(points):
        if t1 > t0 and v1 >= v0:
            out.append((t1, (v1 - v0) / (t1 - t0)))
    return out


def cpu_busy(points: list[tuple[float, float, float]]) -> Series:
    out: Series = []
    for (_, busy0, total0), (t1, busy1, total1) in pairwise(points):
        if total1 > total0 and busy1 >= busy0:
            out.append((t1, (busy1 - busy0) / (total1 - total0)))
    return out


def value_at(points: Series, t: float) -> float | None:
    """A counter's value at ``t``, interpolated linearly between the scrapes around it."""
    for (t0, v0), (t1, v1) in pairwise(points):
        if t0 <= t <= t1 and v1 >= v0:
            return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    return None


def increase(
    points: Series,
    start: float,
    end: float,
    *,
    quiet_before: float = float("-inf"),
    quiet_after: float = float("inf"),
) -> float | None:
    """A counter's increase over ``[start, end]``; ``None`` without the scrapes for it.

    Where nothing else loaded the server next to the window (before ``quiet_before`` ends
    the previous run, after ``quiet_after`` starts the next one) the scrapes just outside
    the window bound it exactly: the last one at or before ``start``, the first at or after
    ``end``. Next to another run (sweep stages run back to back) those scrapes would count
    part of the neighbour's load, so the counter is extended from the window's own scrapes
    to the boundary at the window's own rate (or interpolated, with fewer than two).
    """
    before = [p for p in points if p[0] <= start]
    after = [p for p in points if p[0] >= end]
    inside = [p for p in points if start < p[0] < end]
    own_rate = None
    if len(inside) >= 2 and inside[-1][0] > inside[0][0]:
        own_rate = (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])
    first: float | None
    last: float | None
    if before and before[-1][0] >= quiet_before:
        first = before[-1][1]
    elif own_rate is not None:
        first = inside[0][1] - own_rate * (inside[0][0] - start)
        first = max(first, before[-1][1]) if before else first
    else:
        first = value_at(points, start)
    if after and after[0][0] <= quiet_after:
        last = after[0][1]
    elif own_rate is not None:
        last = inside[-1][1] + own_rate * (end - inside[-1][0])
        last = min(last, after[0][1]) if after else last
    else:
        last = value_at(points, end)
    if first is None or last is None or last < first:
        return None
    return last - first


def _within(points: Series, start: float, end: float) -> list[float]:
    return [v for t, v in points if start <= t <= end]


def _mean(values: list[float]) -> float | None:
    return fmean(values) if values else None


def _sum_of_means(per_target: dict[str, Series], start: float, end: float) -> float | None:
    means = [m for s in per_target.values() if (m := _mean(_within(s, start, end))) is not None]
    return sum(means) if means else None


def _total(per_target: dict[str, Series], start: float, end: float, **quiet: float) -> float | None:
    parts = [d for s in per_target.values() if (d := increase(s, start, end, **quiet)) is not None]
    return sum(parts) if parts else None


def aggregates(
    tl: Timeline,
    start: float,
    end: float,
    *,
    client_prompt_tokens: int | None = None,
    client_output_tokens: int | None = None,
    quiet_before: float = float("-inf"),
    quiet_after: float = float("inf"),
) -> ServerAggregates:
    """The summary's server figures for the run that sent its first request at ``start``
    and received its last response at ``end`` (seconds since the epoch); the previous run
    ended at ``quiet_before`` and the next starts at ``quiet_after`` (see :func:`increase`)."""
    quiet = {"quiet_before": quiet_before, "quiet_after": quiet_after}
    ups = [u for scrapes in tl.up.values() for t, u, _ in scrapes if start <= t <= end]
    util = [v for s in tl.gpu_series("util").values() for v in _within(s, start, end)]
    mem = [v for s in tl.gpu_series("mem_used").values() for v in _within(s, start, end)]
    power = [v for s in tl.gpu_series("power").values() for v in _within(s, start, end)]
    kv = [v for s in tl.kv_cache.values() for v in _within(s, start, end)]
    busy = [v for s in tl.cpu_busy().values() for v in _within(s, start, end)]
    node_mem = [v for s in tl.mem_used.values() for v in _within(s, start, end)]
    return ServerAggregates(
        window_start=datetime.fromtimestamp(start, UTC),
        window_end=datetime.fromtimestamp(end, UTC),
        scrapes=sum(1 for u in ups if u),
        failed_scrapes=sum(1 for u in ups if not u),
        gpus=len(tl.gpu_series("util")),
        gpu_util_mean=_mean(util),
        gpu_util_max=max(util, default=None),
        gpu_memory_used_max_mib=max(mem, default=None),
        gpu_power_mean_w=_mean(power),
        kv_cache_usage_max=max(kv, default=None),
        requests_running_mean=_sum_of_means(tl.running, start, end),
        requests_waiting_mean=_sum_of_means(tl.waiting, start, end),
        server_prompt_tokens=_total(tl.prompt, start, end, **quiet),
        server_generation_tokens=_total(tl.generation, start, end, **quiet),
        client_prompt_tokens=client_prompt_tokens,
        client_output_tokens=client_output_tokens,
        node_cpu_util_mean=_mean(busy),
        node_memory_used_max_bytes=max(node_mem, default=None),
    )


def _last(series: dict[str, Series]) -> list[float]:
    return [points[-1][1] for points in series.values() if points]


def live_figures(tl: Timeline) -> list[tuple[str, str]]:
    """The latest key figures, for a live view: (name, formatted value)."""
    out: list[tuple[str, str]] = []
    if tl.running:
        out.append(("requests running", f"{sum(_last(tl.running)):.0f}"))
        out.append(("requests waiting", f"{sum(_last(tl.waiting)):.0f}"))
    if tl.kv_cache:
        out.append(("KV cache used", f"{100 * max(_last(tl.kv_cache)):.1f} %"))
    for name, series in (("output tokens/s", tl.generation), ("prompt tokens/s", tl.prompt)):
        rates = _last({k: rate(v) for k, v in series.items()})
        if rates:
            out.append((name, f"{sum(rates):,.0f}"))
    for gpu, q in sorted(tl.gpu.items()):
        parts = []
        for quantity, fmt in (
            ("util", "{:.0f} %"),
            ("mem_used", "{:,.0f} MiB"),
            ("power", "{:.0f} W"),
            ("temp", "{:.0f} C"),
        ):
            if q.get(quantity):
                parts.append(fmt.format(q[quantity][-1][1]))
        out.append((gpu, "  ".join(parts)))
    for node, busy in sorted(tl.cpu_busy().items()):
        if busy:
            used = tl.mem_used.get(node)
            memory = f"  memory {used[-1][1] / 1024**3:.1f} GiB" if used else ""
            out.append((f"node {node}", f"CPU {100 * busy[-1][1]:.0f} %{memory}"))
    for target, scrapes in sorted(tl.up.items()):
        _, up, error = scrapes[-1]
        out.append((f"target {target}", "up" if up else f"DOWN: {error}"))
    return out
