"""The report's vector-database part: per-operation rows, recall against QPS, ingest.

Runs with searches or upserts (``RunSummary.operations`` beyond ``generate``) get, instead
of token figures: per-operation latency and recall rows in the statistics table, key
numbers (search QPS, recall@k, rows/s, index build time), and three charts: recall@k
against search QPS over a sweep's stages (a fast answer that misses the true neighbours is
a wrong answer, so the two are read together), latency and recall CDFs per operation, and
rows written over time (the ingest throughput). Built from the same files as the rest: the
summary, and the columns the charts draw read from ``records.parquet``
(:mod:`.vector_points`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from aifactory.report.charts import MAX_CDF_POINTS, Chart, _legend, colours, plain, render_svg
from aifactory.report.points import F64, cdf_points
from aifactory.report.vector_points import OperationPoints, load_operation_points
from aifactory.report.view import STAT_COLUMNS, Cell, KeyNumber, StatRow
from aifactory.shared.results import Operation, OperationSummary, RunSummary

VECTOR_OPS = (Operation.SEARCH, Operation.UPSERT)
#: Points of an ingest curve drawn (a cumulative step curve; more add nothing visible).
MAX_INGEST_POINTS = 2000


def has_vectors(runs: Sequence[RunSummary]) -> bool:
    return any(o.operation in VECTOR_OPS for r in runs for o in r.operations)


def _op(run: RunSummary, which: Operation) -> OperationSummary | None:
    return next((o for o in run.operations if o.operation is which), None)


def stat_rows(run: RunSummary) -> list[StatRow]:
    """Latency per operation (ms), then recall@k of the searches (a fraction, 0 to 1)."""
    rows = []
    for o in run.operations:
        if o.operation not in VECTOR_OPS:
            continue
        key = f"operations.{o.operation.value}"
        for dist, name, field in (
            (o.latency_ms, f"{o.operation.value} latency", "latency_ms"),
            (o.recall, f"{o.operation.value} recall@{o.top_k}", "recall"),
        ):
            if dist.count or field == "latency_ms":
                cells = [Cell.of(getattr(dist, c), f"{key}.{field}.{c}") for c, _ in STAT_COLUMNS]
                rows.append(StatRow(name=name, count=dist.count, cells=cells))
    return rows


def key_numbers(run: RunSummary) -> list[KeyNumber]:
    out: list[KeyNumber] = []
    search, upsert = _op(run, Operation.SEARCH), _op(run, Operation.UPSERT)
    if search is not None:
        out.append(
            KeyNumber(
                "search_qps",
                "Searches",
                Cell.of(search.request_throughput, "search_qps"),
                "/s",
                note=f"{search.requests_ok:,} ok, {search.requests_failed:,} failed",
            )
        )
        out.append(
            KeyNumber(
                "recall_mean",
                f"Recall@{search.top_k}",
                Cell.of(search.recall.mean, "recall_mean"),
                note=f"p5 {Cell.of(search.recall.p5).text}, min {Cell.of(search.recall.min).text}"
                if search.recall.count
                else "no ground truth",
            )
        )
    if upsert is not None:
        out.append(
            KeyNumber(
                "rows_per_s",
                "Rows written",
                Cell.of(upsert.rows_per_s, "rows_per_s"),
                "rows/s",
                note=f"{upsert.rows:,} rows in {upsert.requests_ok:,} upserts",
            )
        )
    if run.index_ready_s is not None:
        out.append(
            KeyNumber(
                "index_ready_s",
                "Index built",
                Cell.of(run.index_ready_s, "index_ready_s"),
                "s",
                note="after the last write",
            )
        )
    out.append(
        KeyNumber(
            "bytes",
            "Bytes sent / received",
            Cell.of(run.bytes_sent, "bytes_sent"),
            "B",
            note=f"{run.bytes_received:,} B received",
        )
    )
    return out


def recall_qps_chart(chart_id: str, runs: Sequence[RunSummary]) -> Chart | None:
    points = [
        (run, s)
        for run in runs
        if (s := _op(run, Operation.SEARCH)) is not None
        and s.recall.mean is not None
        and s.request_throughput is not None
    ]
    if not points:
        return None
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.subplots()
    points.sort(key=lambda p: p[1].request_throughput or 0.0)
    xs = [s.request_throughput or 0.0 for _, s in points]
    means = [s.recall.mean or 0.0 for _, s in points]
    ax.plot(xs, means, marker="o", label="mean")
    ax.plot(xs, [s.recall.p5 or 0.0 for _, s in points], marker="v", linestyle=":", label="p5")
    for (run, s), x in zip(points, xs, strict=True):
        ax.annotate(
            plain(run.label),
            (x, s.recall.mean or 0.0),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize="x-small",
            color="0.35",
        )
    ax.set_xlabel("searches/s (QPS)")
    ax.set_ylabel(f"recall@{points[0][1].top_k}")
    ax.set_ylim(min(0.9, *(s.recall.min or 0.0 for _, s in points)) - 0.02, 1.01)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", frameon=False)
    caption = (
        "Recall@k of the searches of each run or sweep stage against the searches per second "
        "it completed: mean and 5th percentile over queries."
    )
    return Chart(chart_id, "Recall against QPS", render_svg(fig, chart_id), caption)


def cdf_chart(
    chart_id: str, runs: Sequence[RunSummary], points: Sequence[OperationPoints]
) -> Chart | None:
    panels: list[tuple[str, str]] = [
        ("search latency (ms)", "search_latency"),
        ("upsert latency (ms)", "upsert_latency"),
        ("search recall@k", "recall"),
    ]
    shown = [(name, attr) for name, attr in panels if any(getattr(p, attr).size for p in points)]
    if not shown:
        return None
    fig = Figure(figsize=(3.8 * len(shown), 3.4), layout="constrained")
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    cols = colours(len(runs))
    thinned = False
    for ax, (name, attr) in zip(axes, shown, strict=True):
        low, high = math.inf, -math.inf
        for run, p, col in zip(runs, points, cols, strict=True):
            values: F64 = getattr(p, attr)
            if values.size:
                x, y = cdf_points(values, MAX_CDF_POINTS)
                ax.step(x, y, where="post", color=col, label=plain(run.label), linewidth=1.4)
                low, high = min(low, float(values.min())), max(high, float(values.max()))
                thinned |= values.size > MAX_CDF_POINTS
        if attr != "recall" and low > 0 and high / low > 50:
            ax.set_xscale("log")
        ax.set_title(name)
        ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("fraction of requests")
    _legend(axes[0], len(runs))
    caption = "Cumulative distributions per operation over successful measured requests"
    if thinned:
        caption += f"; curves drawn through {MAX_CDF_POINTS:,} evenly spaced quantiles"
    return Chart(
        chart_id, "Latency and recall CDFs per operation", render_svg(fig, chart_id), caption + "."
    )


def _thin_curve(xs: F64, ys: F64, limit: int) -> tuple[F64, F64]:
    """At most ``limit`` points of a cumulative curve, evenly spaced by rank, last kept."""
    if xs.size <= limit:
        return xs, ys
    picks = np.unique(np.round(np.linspace(0, xs.size - 1, limit)).astype(np.intp))
    return xs[picks], ys[picks]


def ingest_chart(
    chart_id: str, runs: Sequence[RunSummary], points: Sequence[OperationPoints]
) -> Chart | None:
    series = [(run, p) for run, p in zip(runs, points, strict=True) if p.ingest_at.size]
    if not series:
        return None
    fig = Figure(figsize=(7, 3.4), layout="constrained")
    ax = fig.subplots()
    for (run, p), col in zip(series, colours(len(series)), strict=True):
        xs, ys = _thin_curve(p.ingest_at, p.ingest_rows, MAX_INGEST_POINTS)
        ax.step(
            np.concatenate(([0.0], xs)), np.concatenate(([0.0], ys)),
            where="post", color=col, label=plain(run.label),
        )  # fmt: skip
    ax.set_xlabel("seconds since the first write")
    ax.set_ylabel("rows written")
    ax.grid(True, alpha=0.3)
    _legend(ax, len(series))
    rates = ", ".join(
        f"{plain(run.label)} {o.rows_per_s:,.0f} rows/s"
        for run, _ in series
        if (o := _op(run, Operation.UPSERT)) is not None and o.rows_per_s is not None
    )
    caption = f"Rows acknowledged by the database over time ({rates})."
    return Chart(chart_id, "Ingest throughput", render_svg(fig, chart_id), caption)


def vector_charts(prefix: str, runs: Sequence[RunSummary], records: Path) -> list[Chart]:
    """The vector charts of one results folder, each run's columns read from ``records``."""
    points = [load_operation_points(records, run.run_index) for run in runs]
    charts = [
        recall_qps_chart(f"{prefix}-recall-qps", runs),
        cdf_chart(f"{prefix}-op-cdf", runs, points),
        ingest_chart(f"{prefix}-ingest", runs, points),
    ]
    return [c for c in charts if c is not None]
