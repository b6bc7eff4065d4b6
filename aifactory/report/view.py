"""Turn summaries into display rows: the numbers a reader looks for, formatted once.

Every displayed figure keeps its exact value next to the formatted text (``raw``, rendered as
``data-value``), so a reader or a test can check the page against ``summary.json`` without
parsing rounded text. Nothing here produces HTML: the template escapes whatever these rows
hold, so data strings (model names, labels, error types) can never inject markup.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aifactory.shared.results import BenchSummary, Distribution, LoopKind, RunSummary
from aifactory.shared.workload import ProfileKind

#: The latency distributions in the statistics table: (summary field, display name).
STAT_METRICS: tuple[tuple[str, str], ...] = (
    ("ttft_ms", "TTFT"),
    ("tpot_ms", "TPOT"),
    ("itl_ms", "ITL"),
    ("e2el_ms", "E2E latency"),
    ("schedule_delay_ms", "Schedule delay"),
)
#: The statistics columns: (Distribution field, header).
STAT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("mean", "mean"),
    ("std", "std"),
    ("min", "min"),
    ("p50", "p50"),
    ("p90", "p90"),
    ("p95", "p95"),
    ("p99", "p99"),
    ("p99_9", "p99.9"),
    ("max", "max"),
)
MISSING = "n/a"


def fmt_value(value: float | int | None) -> str:
    """Human formatting: integers with separators, floats with 3 significant-ish digits."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude == 0:
        return "0"
    return f"{value:.3g}"


def raw_value(value: float | int | None) -> str | None:
    """The exact value for ``data-value`` (``repr`` round-trips a float)."""
    return None if value is None else repr(value)


@dataclass(frozen=True)
class Cell:
    """One displayed number: ``text`` for people, ``raw`` (exact) for machines."""

    text: str
    raw: str | None = None
    key: str | None = None

    @classmethod
    def of(cls, value: float | int | None, key: str | None = None) -> Cell:
        return cls(text=fmt_value(value), raw=raw_value(value), key=key)


@dataclass(frozen=True)
class KeyNumber:
    """A headline figure of one run (label, value with unit, optional explanation)."""

    key: str
    label: str
    cell: Cell
    unit: str = ""
    note: str = ""


@dataclass(frozen=True)
class StatRow:
    name: str
    count: int
    cells: list[Cell]


def failures_note(run: RunSummary) -> str:
    """``timeout 2, http_5xx 1``: failures by type, as the load generator counted them."""
    if not run.failures:
        return "none"
    return ", ".join(f"{kind.value} {count:,}" for kind, count in run.failures.items())


def slo_text(run: RunSummary) -> str:
    parts = [
        f"{name} ≤ {fmt_value(limit)} ms"
        for name, limit in (
            ("TTFT", run.slo.ttft_ms),
            ("TPOT", run.slo.tpot_ms),
            ("E2E", run.slo.e2el_ms),
        )
        if limit is not None
    ]
    return ", ".join(parts)


def is_open_loop(run: RunSummary) -> bool:
    return run.loop is not LoopKind.CLOSED


def key_numbers(run: RunSummary) -> list[KeyNumber]:
    """The run's headline figures (design.md §6), in reading order."""
    out = [
        KeyNumber("requests_ok", "Requests ok", Cell.of(run.requests_ok, "requests_ok")),
        KeyNumber(
            "requests_failed",
            "Requests failed",
            Cell.of(run.requests_failed, "requests_failed"),
            note=failures_note(run),
        ),
        KeyNumber(
            "warmup_excluded",
            "Warmup excluded",
            Cell.of(run.warmup_excluded, "warmup_excluded"),
            note=f"{run.warmup_failed:,} failed" if run.warmup_failed else "",
        ),
        KeyNumber("duration_s", "Duration", Cell.of(run.duration_s, "duration_s"), "s"),
        KeyNumber(
            "request_throughput",
            "Request throughput",
            Cell.of(run.request_throughput, "request_throughput"),
            "req/s",
        ),
        KeyNumber(
            "output_token_throughput",
            "Output tokens",
            Cell.of(run.output_token_throughput, "output_token_throughput"),
            "tok/s",
        ),
        KeyNumber(
            "total_token_throughput",
            "Total tokens",
            Cell.of(run.total_token_throughput, "total_token_throughput"),
            "tok/s",
        ),
    ]
    if run.slo.any:
        met = f"{fmt_value(run.goodput_requests)} of {run.requests_ok:,} ok requests met "
        out.append(
            KeyNumber(
                "goodput",
                "Goodput",
                Cell.of(run.goodput, "goodput"),
                "req/s",
                note=met + slo_text(run),
            )
        )
    if is_open_loop(run):
        out += [
            KeyNumber(
                "requested_rate",
                "Requested rate",
                Cell.of(run.requested_rate, "requested_rate"),
                "req/s",
                note=f"{run.loop.value} arrivals"
                + (f", burstiness {fmt_value(run.burstiness)}" if run.burstiness else ""),
            ),
            KeyNumber(
                "achieved_rate",
                "Achieved rate",
                Cell.of(run.achieved_rate, "achieved_rate"),
                "req/s",
                note=achieved_note(run),
            ),
            KeyNumber(
                "schedule_delay_p99",
                "Schedule delay p99",
                Cell.of(run.schedule_delay_ms.p99, "schedule_delay_p99"),
                "ms",
                note="send time - planned send time",
            ),
        ]
    else:
        out.append(
            KeyNumber(
                "concurrency",
                "Concurrency",
                Cell.of(run.concurrency, "concurrency"),
                "",
                "closed loop",
            )
        )
    if run.in_flight_cap_hits:
        out.append(
            KeyNumber(
                "in_flight_cap_hits",
                "In-flight cap hits",
                Cell.of(run.in_flight_cap_hits, "in_flight_cap_hits"),
                note="sends waited for the max_in_flight valve: the offered load was capped",
            )
        )
    return out


def achieved_note(run: RunSummary) -> str:
    if run.achieved_rate is None or not run.requested_rate:
        return ""
    return f"{run.achieved_rate / run.requested_rate:.1%} of requested"


def stat_rows(run: RunSummary) -> list[StatRow]:
    """One row per latency metric: count then :data:`STAT_COLUMNS`, all in milliseconds."""
    rows = []
    for field, name in STAT_METRICS:
        dist: Distribution = getattr(run, field)
        cells = [Cell.of(getattr(dist, col), f"{field}.{col}") for col, _ in STAT_COLUMNS]
        rows.append(StatRow(name=name, count=dist.count, cells=cells))
    return rows


@dataclass(frozen=True)
class StageRow:
    """One sweep stage in the overview table."""

    run: RunSummary
    load: str
    cells: list[Cell]


STAGE_COLUMNS: tuple[str, ...] = (
    "achieved req/s",
    "ok",
    "failed",
    "req/s",
    "output tok/s",
    "goodput req/s",
    "TTFT p50 ms",
    "TTFT p99 ms",
    "TPOT p50 ms",
    "E2E p99 ms",
    "sched. delay p99 ms",
)


def load_text(run: RunSummary) -> str:
    if run.loop is LoopKind.CLOSED:
        return f"concurrency {run.concurrency}"
    return f"{run.loop.value} {fmt_value(run.requested_rate)} req/s"


def stage_rows(summary: BenchSummary) -> list[StageRow]:
    rows = []
    for run in summary.runs:
        values: list[tuple[float | int | None, str]] = [
            (run.achieved_rate, "achieved_rate"),
            (run.requests_ok, "requests_ok"),
            (run.requests_failed, "requests_failed"),
            (run.request_throughput, "request_throughput"),
            (run.output_token_throughput, "output_token_throughput"),
            (run.goodput, "goodput"),
            (run.ttft_ms.p50, "ttft_ms.p50"),
            (run.ttft_ms.p99, "ttft_ms.p99"),
            (run.tpot_ms.p50, "tpot_ms.p50"),
            (run.e2el_ms.p99, "e2el_ms.p99"),
            (run.schedule_delay_ms.p99, "schedule_delay_ms.p99"),
        ]
        cells = [Cell.of(v, k) for v, k in values]
        rows.append(StageRow(run=run, load=load_text(run), cells=cells))
    return rows


def is_sweep(summary: BenchSummary) -> bool:
    return summary.config.profile is ProfileKind.SWEEP or len(summary.runs) > 1


def meta_rows(summary: BenchSummary) -> list[tuple[str, str]]:
    """What was benchmarked and how: the header table of a workload."""
    cfg = summary.config
    ds = cfg.dataset
    sources: dict[str, int] = {}
    for run in summary.runs:
        for src, n in run.output_tokens_source.items():
            sources[src.value] = sources.get(src.value, 0) + n
    rows = [
        ("Target", summary.target),
        ("Backend", summary.backend),
        ("Model", summary.model or MISSING),
        ("Profile", profile_text(summary)),
        ("State", summary.state.value),
        ("Started", summary.started_at.isoformat(timespec="seconds")),
        ("Finished", summary.finished_at.isoformat(timespec="seconds")),
        ("Streaming", "yes" if cfg.stream else "no (no TTFT/TPOT/ITL)"),
        ("Workers", str(cfg.workers)),
        (
            "Dataset",
            f"{ds.format.value}{f' ({ds.path.name})' if ds.path else ''}; input tokens "
            f"~{ds.input_tokens.mean}, output tokens ~{ds.output_tokens.mean}",
        ),
        ("Stop", stop_text(summary)),
        ("Output token counts", ", ".join(f"{k}: {v:,}" for k, v in sources.items()) or MISSING),
    ]
    if cfg.slo.any and summary.runs:
        rows.append(("SLO", slo_text(summary.runs[0])))
    return rows


def profile_text(summary: BenchSummary) -> str:
    cfg = summary.config
    match cfg.profile:
        case ProfileKind.CONCURRENCY:
            return f"concurrency {cfg.concurrency}"
        case ProfileKind.CONSTANT | ProfileKind.POISSON:
            return f"{cfg.profile.value} {fmt_value(cfg.rate)} req/s"
        case ProfileKind.SWEEP:
            return f"sweep ({len(summary.runs)} stages, {cfg.sweep_rate_type.value} rates)"
        case _:
            return cfg.profile.value


def stop_text(summary: BenchSummary) -> str:
    cfg = summary.config
    parts = []
    if cfg.requests is not None:
        parts.append(f"{cfg.requests:,} requests")
    if cfg.duration_s is not None:
        parts.append(f"{fmt_value(cfg.duration_s)} s")
    warm = (
        f"; warmup {cfg.warmup_requests:,} requests"
        if cfg.warmup_requests
        else (f"; warmup {fmt_value(cfg.warmup_s)} s" if cfg.warmup_s else "")
    )
    return " or ".join(parts) + " per run" + warm


def config_json(summary: BenchSummary) -> str:
    """The benchmark's full configuration for reproduction, without the API key."""
    data = summary.config.model_dump(mode="json", exclude={"api_key"})
    return json.dumps(data, indent=2, sort_keys=True)


def setup_rows(extra: Mapping[str, Any] | None, *, prefix: str = "") -> list[tuple[str, str]]:
    """Flatten caller context into key/value rows (nested mappings become dotted keys)."""
    if not extra:
        return []
    rows: list[tuple[str, str]] = []
    for key, value in extra.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and prefix.count(".") < 3:
            rows += setup_rows(value, prefix=f"{name}.")
        else:
            rows.append((name, setup_text(value)))
    return rows


def setup_text(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(setup_text(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)
