"""Per-operation statistics: searches, upserts (and generations) of one run, apart.

A mixed vector load interleaves cheap searches and heavy upserts; one latency distribution
over both would describe neither. Each operation gets its own counts, failures by type,
exact latency percentiles, throughput (over the run's duration, so the operations add up
to the run's), goodput against the run's SLOs, bytes each way, recall@k (searches) and
rows written (upserts). Computed from the same measured records as the run summary, for
runs with vector operations.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.loadgen.metrics.stats import describe
from aifactory.shared.results import ErrorType, Operation, OperationSummary
from aifactory.shared.workload import SloConfig


def _rate(count: float, seconds: float | None) -> float | None:
    return count / seconds if seconds is not None and seconds > 0 else None


def _span(records: Sequence[RequestRecord]) -> float | None:
    """First send to last response of ``records`` (cancelled ones do not end anything)."""
    ends = [r.end_s for r in records if r.error is not ErrorType.CANCELLED]
    if not records or not ends:
        return None
    return max(ends) - min(r.t0_s for r in records)


def operation_summaries(
    measured: Sequence[RequestRecord],
    duration_s: float | None,
    slo: SloConfig,
    meets_slo: Callable[[RequestRecord, SloConfig], bool],
    top_k: int | None = None,
) -> list[OperationSummary]:
    """One :class:`OperationSummary` per operation present, in :class:`Operation` order.

    Nothing for a run of LLM generations only: its one operation is the run itself, whose
    figures the run summary already has (and a second pass over every record would only
    cost time).
    """
    by_op: dict[Operation, list[RequestRecord]] = {}
    for rec in measured:
        by_op.setdefault(rec.operation, []).append(rec)
    if set(by_op) <= {Operation.GENERATE}:
        return []
    out = []
    for op in Operation:
        mine = by_op.get(op)
        if not mine:
            continue
        ok = [r for r in mine if r.ok]
        failures = Counter(r.error for r in mine if r.error is not None)
        good = sum(1 for r in ok if meets_slo(r, slo)) if slo.any else None
        rows = sum(r.rows or 0 for r in ok)
        out.append(
            OperationSummary(
                operation=op,
                requests_sent=len(mine),
                requests_ok=len(ok),
                requests_failed=len(mine) - len(ok),
                failures={k: failures[k] for k in sorted(failures)},
                request_throughput=_rate(len(ok), duration_s),
                goodput=_rate(good, duration_s) if good is not None else None,
                latency_ms=describe(r.e2e_ms for r in ok if r.e2e_ms is not None),
                bytes_sent=sum(r.bytes_sent or 0 for r in mine),
                bytes_received=sum(r.bytes_received or 0 for r in mine),
                recall=describe(r.recall for r in ok if r.recall is not None),
                top_k=top_k if op is Operation.SEARCH else None,
                rows=rows,
                rows_per_s=_rate(rows, _span(mine)) if op is Operation.UPSERT else None,
            )
        )
    return out


def operation_csv(operations: Sequence[OperationSummary]) -> dict[str, object]:
    """Headline per-operation columns for ``summary.csv`` (``search_recall_mean``...)."""
    row: dict[str, object] = {}
    for o in operations:
        name = o.operation.value
        row[f"{name}_ok"] = o.requests_ok
        row[f"{name}_failed"] = o.requests_failed
        row[f"{name}_per_s"] = o.request_throughput
        for stat in ("p50", "p90", "p99"):
            row[f"{name}_latency_ms_{stat}"] = getattr(o.latency_ms, stat)
        if o.operation is Operation.SEARCH:
            row["search_top_k"] = o.top_k
            for stat in ("mean", "min", "p5", "p50"):
                row[f"search_recall_{stat}"] = getattr(o.recall, stat)
        if o.operation is Operation.UPSERT:
            row["upsert_rows"] = o.rows
            row["upsert_rows_per_s"] = o.rows_per_s
    return row
