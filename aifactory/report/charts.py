"""The report's charts: matplotlib figures rendered to SVG and inlined in the page.

Why matplotlib's SVG and not a JS library: the report must work offline and as an e-mail
attachment, so nothing may be fetched; inline SVG is vector, needs no script and is small
when text is left as text (``svg.fonttype = none``). Figures are built with the object API
(no ``pyplot``), so there is no global figure state and no GUI backend is ever touched.
Several SVGs share one HTML document, so ids must not collide: each chart salts matplotlib's
id hashes with its own chart id, and ids nothing refers to are dropped. Only successful,
non-warmup records enter a chart; scatter plots keep at most :data:`MAX_SCATTER_POINTS`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib as mpl
import numpy as np
from markupsafe import Markup
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from aifactory.report.load import ReportError
from aifactory.report.points import F64, RunPoints, cdf_points, thin
from aifactory.shared.results import RunSummary

MAX_SCATTER_POINTS = 5000
#: Requests always kept when a scatter is thinned: the slowest ones are what readers look for.
KEEP_SLOWEST = 100
MAX_CDF_POINTS = 1000
#: Beyond this many points a scatter is drawn as an embedded PNG inside the SVG (axes and
#: text stay vector): one ``<use>`` element per point costs ~110 bytes, an image ~10x less.
RASTER_ABOVE = 1500
RASTER_DPI = 150
MAX_LEGEND = 12
_NO_METADATA: dict[str, str | None] = {"Creator": None, "Date": None, "Format": None}
_NO_METADATA["Type"] = None
_REF = re.compile(r'(?:href="#|url\(#)([^")]+)')
_ID = re.compile(r' id="([^"]*)"')
_FORBIDDEN = re.compile(r"<\s*(script|foreignobject|iframe)|javascript:", re.IGNORECASE)


@dataclass(frozen=True)
class Chart:
    """One inline figure; ``caption`` is plain text (escaped by the template)."""

    chart_id: str
    title: str
    svg: Markup
    caption: str


@dataclass(frozen=True)
class Series:
    """One run's per-request values for the charts (send times in report time)."""

    label: str
    ttft: F64
    tpot: F64
    e2e: F64
    #: (send times, values), in send order.
    ttft_at: tuple[F64, F64]
    tpot_at: tuple[F64, F64]


def plain(text: str) -> str:
    """Data text for matplotlib: ``$`` would start mathtext (and can fail to parse)."""
    return text.replace("\\", "\\\\").replace("$", r"\$")


def clean_svg(text: str) -> str:
    """Drop the XML prolog/DOCTYPE and unreferenced ids; refuse anything active."""
    start = text.find("<svg")
    if start < 0:
        raise ReportError("matplotlib produced no <svg> element")
    body = text[start:].strip()
    referenced = set(_REF.findall(body))
    body = _ID.sub(lambda m: m.group(0) if m.group(1) in referenced else "", body)
    if _FORBIDDEN.search(body):
        raise ReportError("refusing to inline an SVG with active content")
    return body


def render_svg(fig: Figure, chart_id: str) -> Markup:
    buf = io.StringIO()
    with mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": chart_id}):
        fig.savefig(buf, format="svg", metadata=_NO_METADATA, dpi=RASTER_DPI)
    # clean_svg only passes matplotlib's own output, whose text is XML-escaped.
    return Markup(clean_svg(buf.getvalue()))  # noqa: S704


def colours(n: int) -> list[tuple[float, float, float, float]]:
    if n <= 0:
        return []
    if n == 1:
        return [mpl.colors.to_rgba("C0")]
    cmap = mpl.colormaps["viridis"]
    return [cmap(0.9 * k / (n - 1)) for k in range(n)]


def series_for(runs: Sequence[RunSummary], points: dict[int, RunPoints]) -> list[Series]:
    """Per-run chart data; runs are laid end to end on the time axis (each starts at 0)."""
    out: list[Series] = []
    offset = 0.0
    empty = np.empty(0)
    for run in runs:
        p = points.get(run.run_index) or RunPoints(empty, empty, empty, empty, 0.0)
        has_ttft, has_tpot = ~np.isnan(p.ttft), ~np.isnan(p.tpot)
        out.append(
            Series(
                label=run.label,
                ttft=p.ttft[has_ttft],
                tpot=p.tpot[has_tpot],
                e2e=p.e2e[~np.isnan(p.e2e)],
                ttft_at=(offset + p.t0[has_ttft], p.ttft[has_ttft]),
                tpot_at=(offset + p.t0[has_tpot], p.tpot[has_tpot]),
            )
        )
        offset += p.end_max
    return out


def _legend(ax: Axes, n: int) -> None:
    if 1 < n <= MAX_LEGEND:
        ax.legend(fontsize="small", frameon=False)


def _empty(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)


def cdf_chart(chart_id: str, series: Sequence[Series]) -> Chart | None:
    panels = (("TTFT", "ttft"), ("TPOT", "tpot"), ("E2E latency", "e2e"))
    if not any(getattr(s, attr).size for s in series for _, attr in panels):
        return None
    fig = Figure(figsize=(11, 3.4), layout="constrained")
    axes = fig.subplots(1, 3)
    cols = colours(len(series))
    for ax, (name, attr) in zip(axes, panels, strict=True):
        drawn = 0
        for s, col in zip(series, cols, strict=True):
            values: F64 = getattr(s, attr)
            if not values.size:
                continue
            x, y = cdf_points(values, MAX_CDF_POINTS)
            ax.step(x, y, where="post", color=col, label=plain(s.label), linewidth=1.4)
            drawn += 1
            low, high = float(values.min()), float(values.max())
            if values.size > 1 and low > 0 and high / low > 50:
                ax.set_xscale("log")
        if not drawn:
            _empty(ax)
        ax.set_title(name)
        ax.set_xlabel("ms")
        ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("fraction of requests")
    _legend(axes[0], len(series))
    total = sum(s.e2e.size for s in series)
    caption = (
        f"Cumulative distributions over {total:,} successful measured requests "
        "(failures and warmup excluded)"
    )
    if any(getattr(s, a).size > MAX_CDF_POINTS for s in series for _, a in panels):
        caption += f"; curves drawn through {MAX_CDF_POINTS:,} evenly spaced quantiles"
    return Chart(chart_id, "Latency CDFs", render_svg(fig, chart_id), caption + ".")


def over_time_chart(chart_id: str, series: Sequence[Series], *, stages: bool) -> Chart | None:
    panels = (("TTFT (ms)", "ttft_at"), ("TPOT (ms)", "tpot_at"))
    if not any(getattr(s, attr)[0].size for s in series for _, attr in panels):
        return None
    fig = Figure(figsize=(11, 5.2), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    cols = colours(len(series))
    shown: list[tuple[int, int]] = []
    for ax, (name, attr) in zip(axes, panels, strict=True):
        owner = np.concatenate([np.full(getattr(s, attr)[0].size, i) for i, s in enumerate(series)])
        xs_all = np.concatenate([getattr(s, attr)[0] for s in series])
        ys_all = np.concatenate([getattr(s, attr)[1] for s in series])
        if not xs_all.size:
            _empty(ax)
        kept = thin(ys_all, MAX_SCATTER_POINTS, KEEP_SLOWEST)
        shown.append((kept.size, xs_all.size))
        for i, (s, col) in enumerate(zip(series, cols, strict=True)):
            mine = kept[owner[kept] == i]
            if mine.size:
                xs, ys = xs_all[mine], ys_all[mine]
                ax.scatter(
                    xs,
                    ys,
                    s=6,
                    color=col,
                    alpha=0.6,
                    linewidths=0,
                    label=plain(s.label),
                    rasterized=kept.size > RASTER_ABOVE,
                )
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
    axes[1].set_xlabel("send time (s" + (", stages laid end to end)" if stages else ")"))
    _legend(axes[0], len(series))
    caption = "Per-request values against send time; failures and warmup excluded. "
    thinned = [f"{k:,} of {n:,}" for k, n in shown if k < n]
    if thinned:
        caption += (
            f"Thinned to at most {MAX_SCATTER_POINTS:,} points per panel ({', '.join(thinned)}"
            f" shown): evenly spaced in time plus the {KEEP_SLOWEST} slowest requests."
        )
    else:
        caption += "Every request shown."
    if any(k > RASTER_ABOVE for k, _ in shown):
        caption += " Points are drawn as an embedded image to keep the file small."
    return Chart(chart_id, "TTFT and TPOT over time", render_svg(fig, chart_id), caption)


def _rate_runs(runs: Sequence[RunSummary]) -> list[RunSummary]:
    return sorted(
        (r for r in runs if r.achieved_rate is not None), key=lambda r: r.achieved_rate or 0.0
    )


def _by_rate(
    ax: Axes, runs: Sequence[RunSummary], values: Sequence[float | None], label: str
) -> None:
    pts = [
        (r.achieved_rate, v)
        for r, v in zip(runs, values, strict=True)
        if r.achieved_rate is not None and v is not None
    ]
    if pts:
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=label)
    ax.margins(x=0.12, y=0.1)


def _annotate(ax: Axes, runs: Sequence[RunSummary], values: Sequence[float | None]) -> None:
    for run, value in zip(runs, values, strict=True):
        if value is not None and run.achieved_rate is not None:
            ax.annotate(
                plain(run.label),
                (run.achieved_rate, value),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize="x-small",
                color="0.35",
            )


def sweep_throughput_chart(chart_id: str, runs: Sequence[RunSummary]) -> Chart | None:
    ordered = _rate_runs(runs)
    if len(ordered) < 2:
        return None
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    out_tok = [r.output_token_throughput for r in ordered]
    req = [r.request_throughput for r in ordered]
    _by_rate(left, ordered, out_tok, "output tok/s")
    _annotate(left, ordered, out_tok)
    _by_rate(right, ordered, req, "requests/s")
    _annotate(right, ordered, req)
    right.plot(
        [0, ordered[-1].achieved_rate or 0],
        [0, ordered[-1].achieved_rate or 0],
        linestyle=":",
        color="0.6",
        label="throughput = offered rate",
    )
    right.legend(fontsize="small", frameon=False)
    for ax, name in ((left, "output tokens/s"), (right, "completed requests/s")):
        ax.set_xlabel("achieved send rate (req/s)")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
    caption = (
        "Throughput of each sweep stage against its achieved send rate; closed-loop stages "
        "(synchronous, concurrency@N) sit at the rate their concurrency produced."
    )
    return Chart(chart_id, "Sweep: throughput", render_svg(fig, chart_id), caption)


def sweep_latency_chart(chart_id: str, runs: Sequence[RunSummary]) -> Chart | None:
    ordered = _rate_runs(runs)
    if len(ordered) < 2:
        return None
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, field, name in ((axes[0], "ttft_ms", "TTFT"), (axes[1], "tpot_ms", "TPOT")):
        for stat in ("p50", "p99"):
            values = [getattr(getattr(r, field), stat) for r in ordered]
            _by_rate(ax, ordered, values, f"{name} {stat}")
        _annotate(ax, ordered, [getattr(r, field).p99 for r in ordered])
        ax.set_xlabel("achieved send rate (req/s)")
        ax.set_ylabel(f"{name} (ms)")
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small", frameon=False)
        else:
            _empty(ax)
    caption = "TTFT and TPOT percentiles of each sweep stage against its achieved send rate."
    return Chart(chart_id, "Sweep: latency against rate", render_svg(fig, chart_id), caption)


def workload_charts(
    prefix: str, runs: Sequence[RunSummary], points: dict[int, RunPoints]
) -> list[Chart]:
    """Every chart of one results folder, ids prefixed with ``prefix`` (unique per page)."""
    series = series_for(runs, points)
    sweep = len(runs) > 1
    charts = [
        sweep_throughput_chart(f"{prefix}-sweep-throughput", runs) if sweep else None,
        sweep_latency_chart(f"{prefix}-sweep-latency", runs) if sweep else None,
        cdf_chart(f"{prefix}-cdf", series),
        over_time_chart(f"{prefix}-over-time", series, stages=sweep),
    ]
    return [c for c in charts if c is not None]
