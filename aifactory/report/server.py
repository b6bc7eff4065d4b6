"""The report's "Server and GPU" section: the monitor's samples of the benchmark's window.

Drawn on the client charts' time axis: each run's clock starts at its ``started_at`` and
runs are laid end to end exactly as in "TTFT and TPOT over time", so a queue building up
on the server sits above the latencies it causes. Samples between sweep stages are left
out; a few seconds before the first and after the last run are kept, to show the idle
server around the load. The table puts each run's server aggregates (``summary.json``)
next to the client's own token counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from aifactory.monitor.figures import Series, Timeline, timeline
from aifactory.monitor.window import Row
from aifactory.report.charts import Chart, colours, plain, render_svg
from aifactory.report.points import RunPoints
from aifactory.report.view import Cell, fmt_value, raw_value
from aifactory.shared.results import RunSummary, ServerAggregates

#: Seconds of samples kept before the first run and after the last.
MARGIN_S = 5.0
GIB = 1024**3

#: (aggregate field, row name, display scale).
ROWS: tuple[tuple[str, str, float], ...] = (
    ("gpu_util_mean", "GPU utilisation, mean (%)", 1.0),
    ("gpu_util_max", "GPU utilisation, max (%)", 1.0),
    ("gpu_memory_used_max_mib", "GPU memory used, peak (MiB)", 1.0),
    ("gpu_power_mean_w", "GPU power, mean (W)", 1.0),
    ("kv_cache_usage_max", "KV cache used, peak (%)", 100.0),
    ("requests_running_mean", "Requests running, mean", 1.0),
    ("requests_waiting_mean", "Requests waiting, mean", 1.0),
    ("server_prompt_tokens", "Prompt tokens, server", 1.0),
    ("client_prompt_tokens", "Prompt tokens, client", 1.0),
    ("server_generation_tokens", "Output tokens, server", 1.0),
    ("client_output_tokens", "Output tokens, client", 1.0),
    ("node_cpu_util_mean", "Node CPU busy, mean (%)", 100.0),
    ("node_memory_used_max_bytes", "Node memory used, peak (GiB)", 1.0 / GIB),
    ("scrapes", "Scrapes (failed)", 1.0),
)


@dataclass(frozen=True)
class ServerView:
    columns: list[str]
    rows: list[tuple[str, list[Cell]]]
    charts: list[Chart]
    notes: list[str] = field(default_factory=list)


def _cell(agg: ServerAggregates | None, name: str, scale: float) -> Cell:
    if agg is None:
        return Cell.of(None)
    value = getattr(agg, name)
    if name == "scrapes":
        return Cell(f"{value:,} ({agg.failed_scrapes:,})", raw_value(value), f"server.{name}")
    shown = None if value is None else value * scale
    return Cell(fmt_value(shown), raw_value(value), f"server.{name}")


class TimeAxis:
    """Wall-clock seconds → the client charts' x (runs laid end to end from 0)."""

    def __init__(self, runs: Sequence[RunSummary], points: Mapping[int, RunPoints]):
        self.spans: list[tuple[float, float, float]] = []  # (run start, length, offset)
        offset = 0.0
        for run in runs:
            found = points.get(run.run_index)
            length = found.end_max if found is not None else 0.0
            if run.started_at is not None:
                self.spans.append((run.started_at.timestamp(), length, offset))
            offset += length

    def __bool__(self) -> bool:
        return bool(self.spans)

    def x(self, t: float) -> float | None:
        first, last = self.spans[0], self.spans[-1]
        if t < first[0]:
            return t - first[0] + first[2] if first[0] - t <= MARGIN_S else None
        for start, length, offset in reversed(self.spans):
            if t >= start:
                inside = t - start <= length
                after_last = (start, length, offset) == last and t - start <= length + MARGIN_S
                return offset + (t - start) if inside or after_last else None
        return None

    def map(self, points: Series) -> Series:
        return [(x, v) for t, v in points if (x := self.x(t)) is not None]


def _plot(ax: Axes, axis: TimeAxis, series: dict[str, Series], scale: float = 1.0) -> int:
    drawn = 0
    for (name, points), colour in zip(series.items(), colours(len(series)), strict=True):
        mapped = axis.map(points)
        if mapped:
            xs, ys = zip(*mapped, strict=True)
            ax.plot(xs, [y * scale for y in ys], color=colour, label=plain(name), lw=1.3)
            drawn += 1
    return drawn


def _finish(ax: Axes, ylabel: str, drawn: int) -> None:
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if drawn == 0:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    elif 1 < drawn <= 12:
        ax.legend(fontsize="x-small", frameon=False, loc="upper right")


def server_chart(chart_id: str, tl: Timeline, axis: TimeAxis, sweep: bool) -> Chart:
    fig = Figure(figsize=(11, 6.4), layout="constrained")
    a1, a2, a3 = fig.subplots(3, 1, sharex=True)
    queue = {f"running {k}": v for k, v in tl.running.items()}
    queue |= {f"waiting {k}": v for k, v in tl.waiting.items()}
    _finish(a1, "requests", _plot(a1, axis, queue))
    _finish(a2, "KV cache used (%)", _plot(a2, axis, tl.kv_cache, 100.0))
    _finish(a3, "output tokens/s", _plot(a3, axis, tl.generation_rate()))
    a3.set_xlabel("time (s" + (", stages laid end to end)" if sweep else ")"))
    caption = (
        "vllm:num_requests_running and _waiting, vllm:kv_cache_usage_perc and the rate of "
        "vllm:generation_tokens_total between scrapes, per server, on the time axis of the "
        "client charts."
    )
    return Chart(chart_id, "Server: queue, KV cache, tokens", render_svg(fig, chart_id), caption)


def gpu_node_chart(chart_id: str, tl: Timeline, axis: TimeAxis, sweep: bool) -> Chart:
    fig = Figure(figsize=(11, 9.0), layout="constrained")
    axes = fig.subplots(5, 1, sharex=True)
    _finish(axes[0], "GPU util (%)", _plot(axes[0], axis, tl.gpu_series("util")))
    memory = tl.gpu_series("mem_used")
    _finish(axes[1], "GPU memory (GiB)", _plot(axes[1], axis, memory, 1 / 1024))
    _finish(axes[2], "GPU power (W)", _plot(axes[2], axis, tl.gpu_series("power")))
    _finish(axes[3], "node CPU busy (%)", _plot(axes[3], axis, tl.cpu_busy(), 100.0))
    _finish(axes[4], "node memory (GiB)", _plot(axes[4], axis, tl.mem_used, 1 / GIB))
    axes[4].set_xlabel("time (s" + (", stages laid end to end)" if sweep else ")"))
    caption = (
        "DCGM_FI_DEV_GPU_UTIL, DCGM_FI_DEV_FB_USED and DCGM_FI_DEV_POWER_USAGE per GPU; node "
        "CPU busy share (node_cpu_seconds_total) and memory used (MemTotal - MemAvailable) "
        "per node."
    )
    return Chart(chart_id, "GPUs and nodes", render_svg(fig, chart_id), caption)


def server_view(
    prefix: str,
    runs: Sequence[RunSummary],
    points: Mapping[int, RunPoints],
    rows: Sequence[Row] | None,
) -> ServerView | None:
    """The section for one workload; ``None`` when there is nothing of the server's."""
    aggregates = [run.server for run in runs]
    if rows is None and not any(aggregates):
        return None
    table = [(title, [_cell(a, name, scale) for a in aggregates]) for name, title, scale in ROWS]
    notes: list[str] = []
    charts: list[Chart] = []
    axis = TimeAxis(runs, points)
    if rows and axis:
        tl = timeline(rows)
        sweep = len(runs) > 1
        # The inference server's panels only for a server exposing them (vLLM's series): a
        # vector database or a plain HTTP service would get three empty panels.
        serving = tl.running or tl.waiting or tl.kv_cache or tl.generation
        charts = [
            *([server_chart(f"{prefix}-server", tl, axis, sweep)] if serving else []),
            gpu_node_chart(f"{prefix}-gpu-node", tl, axis, sweep),
        ]
    elif rows:
        notes.append("The runs have no start time: server charts cannot share the client axis.")
    else:
        notes.append("server_metrics.jsonl is missing: only the aggregates are shown.")
    return ServerView([run.label for run in runs], table, charts, notes)
