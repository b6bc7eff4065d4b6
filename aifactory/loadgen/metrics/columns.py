"""A run's summary computed from its records file: exact, and in bounded memory.

The same definitions and numbers as :func:`aifactory.loadgen.metrics.summary.summarize_run`
(which works on records in memory and is the reference the equality test holds this to),
read from Parquet one row group at a time: counts and sums in one pass, then each
distribution through :func:`aifactory.loadgen.metrics.exact.describe_chunks`. Vector
workloads get the per-operation figures of :mod:`aifactory.loadgen.metrics.operations` the
same way (each operation's rows picked from the ``operation`` column of every batch).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aifactory.loadgen.messages import WorkerReport
from aifactory.loadgen.metrics.exact import Chunks, describe_chunks
from aifactory.loadgen.metrics.summary import rate
from aifactory.loadgen.scheduler.plan import RunPlan
from aifactory.loadgen.store import ITL_COLUMN, ROW_GROUP
from aifactory.shared.results import (
    Distribution,
    EndpointSummary,
    ErrorType,
    LoopKind,
    Operation,
    OperationSummary,
    RunSummary,
    TokenSource,
)
from aifactory.shared.states import BenchState
from aifactory.shared.workload import SloConfig

Mask = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]
#: Which rows of a batch a statistic takes.
Rows = Callable[[pa.RecordBatch], Mask]
#: What row selections read (warmup and failure flags, the endpoint a request went to).
ROW_COLUMNS = ("warmup", "error", "endpoint")
SCALARS = (
    "warmup", "error", "t0_s", "end_s", "scheduled_s", "output_tokens", "prompt_tokens",
    "output_tokens_source", "ttft_ms", "tpot_ms", "e2e_ms", "chunks", "endpoint",
    "operation", "bytes_sent", "bytes_received", "recall", "rows",
)  # fmt: skip


def _bools(array: pa.Array | pa.ChunkedArray) -> Mask:
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=bool)


def _floats(batch: pa.RecordBatch, name: str) -> F64:
    """A column as float64, nulls as NaN."""
    column = pc.fill_null(batch.column(name).cast(pa.float64()), math.nan)
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)


def measured(batch: pa.RecordBatch) -> Mask:
    return ~_bools(batch.column("warmup"))


def succeeded(batch: pa.RecordBatch) -> Mask:
    return measured(batch) & _bools(batch.column("error").is_null())


def on_endpoint(index: int) -> Rows:
    return lambda b: succeeded(b) & (_floats(b, "endpoint") == index)


def doing(op: Operation) -> Rows:
    """Successful measured requests of one operation."""
    return lambda b: succeeded(b) & operations(b).get(op, False)


def operations(batch: pa.RecordBatch) -> dict[Operation, Mask]:
    """The rows of each operation present in ``batch`` (from the column's dictionary)."""
    column = batch.column("operation")
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    codes = np.asarray(column.indices.to_numpy(zero_copy_only=False))
    masks = {Operation(v): codes == i for i, v in enumerate(column.dictionary.to_pylist())}
    return {op: mask for op, mask in masks.items() if mask.any()}


def meets_slo(batch: pa.RecordBatch, slo: SloConfig) -> Mask:
    """Successful measured requests meeting every objective set (``recall``: those that
    have a recall, searches with ground truth, reach it; the others meet it)."""
    good = succeeded(batch)
    ttft, tpot, e2e = (_floats(batch, n) for n in ("ttft_ms", "tpot_ms", "e2e_ms"))
    if slo.ttft_ms is not None:
        good &= ~np.isnan(ttft) & (np.nan_to_num(ttft, nan=math.inf) <= slo.ttft_ms)
    if slo.tpot_ms is not None:  # fewer than two tokens: no TPOT, and that meets the objective
        good &= np.isnan(tpot) | (np.nan_to_num(tpot, nan=-math.inf) <= slo.tpot_ms)
    if slo.e2el_ms is not None:
        good &= ~np.isnan(e2e) & (np.nan_to_num(e2e, nan=math.inf) <= slo.e2el_ms)
    if slo.recall is not None:
        recall = _floats(batch, "recall")
        good &= np.isnan(recall) | (np.nan_to_num(recall, nan=-math.inf) >= slo.recall)
    return good


class RecordsFile:
    """One records file, read one row group's worth of columns at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def batches(self, columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
        file = pq.ParquetFile(self.path)
        yield from file.iter_batches(batch_size=ROW_GROUP, columns=list(columns))

    def values(
        self, rows: Rows, value: Callable[[pa.RecordBatch], F64], needs: Sequence[str]
    ) -> Chunks:
        """Re-readable chunks: ``value`` of each batch on the ``rows`` kept, NaNs dropped;
        only the ``needs`` columns (and those ``rows`` reads) are read."""
        columns = sorted({*ROW_COLUMNS, *needs})

        def chunks() -> Iterator[F64]:
            for batch in self.batches(columns):
                picked = value(batch)[rows(batch)]
                yield picked[~np.isnan(picked)]

        return chunks

    def column(self, rows: Rows, name: str, *also: str) -> Chunks:
        """One column's values on the ``rows`` kept (``also``: more columns they read)."""
        return self.values(rows, lambda b: _floats(b, name), (name, *also))

    def itl(self, rows: Rows) -> Chunks:
        """Every inter-token gap of the rows kept, pooled (stored in whole microseconds)."""

        def chunks() -> Iterator[F64]:
            for batch in self.batches([*ROW_COLUMNS, ITL_COLUMN]):
                lists = batch.column(ITL_COLUMN).filter(pa.array(rows(batch)))
                flat = pc.list_flatten(lists).to_numpy(zero_copy_only=False)
                yield np.asarray(flat, dtype=np.float64) / 1000

        return chunks

    def describe(self, chunks: Chunks) -> Distribution:
        return describe_chunks(chunks)


@dataclass
class OperationTotals:
    """One operation's counts and sums (measured requests), gathered with :class:`Totals`."""

    sent: int = 0
    ok: int = 0
    good: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    rows: int = 0
    first_send: float = math.inf
    last_response: float = -math.inf
    failures: Counter[ErrorType] = field(default_factory=Counter)

    @property
    def span(self) -> float | None:
        """First send to last response (cancelled requests end nothing)."""
        if self.last_response == -math.inf:
            return None
        return self.last_response - self.first_send


@dataclass
class Totals:
    """Everything a run summary counts, gathered in one pass over the row groups."""

    records: int = 0
    measured: int = 0
    ok: int = 0
    warmup: int = 0
    warmup_failed: int = 0
    good: int = 0
    output_tokens: int = 0
    prompt_tokens: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    first_send: float = math.inf
    last_send: float = -math.inf
    last_response: float = -math.inf
    failures: Counter[ErrorType] = field(default_factory=Counter)
    sources: Counter[TokenSource] = field(default_factory=Counter)
    ops: dict[Operation, OperationTotals] = field(default_factory=dict)

    def add(self, batch: pa.RecordBatch, slo: SloConfig) -> None:
        m, ok = measured(batch), succeeded(batch)
        failed = _bools(batch.column("error").is_valid())
        self.records += batch.num_rows
        self.measured += int(m.sum())
        self.ok += int(ok.sum())
        self.warmup += int((~m).sum())
        self.warmup_failed += int((~m & failed).sum())
        _count_errors(self.failures, batch, m & failed)
        sources = batch.column("output_tokens_source").filter(pa.array(ok)).drop_null()
        for item in pc.value_counts(sources.cast(pa.string())).to_pylist():
            self.sources[TokenSource(item["values"])] += item["counts"]
        out, prompt = _floats(batch, "output_tokens")[ok], _floats(batch, "prompt_tokens")[ok]
        self.output_tokens += int(np.nansum(out))
        self.prompt_tokens += int(np.nansum(prompt))
        sends = _floats(batch, "t0_s")[m]
        cancelled = _bools(
            pc.fill_null(pc.equal(batch.column("error").cast(pa.string()), "cancelled"), False)
        )
        ends = _floats(batch, "end_s")[m & ~cancelled]
        if sends.size:
            self.first_send = min(self.first_send, float(sends.min()))
            self.last_send = max(self.last_send, float(sends.max()))
        if ends.size:
            self.last_response = max(self.last_response, float(ends.max()))
        good = meets_slo(batch, slo) if slo.any else np.zeros(batch.num_rows, dtype=bool)
        self.good += int(good.sum())
        sent, received = _floats(batch, "bytes_sent"), _floats(batch, "bytes_received")
        self.bytes_sent += int(np.nansum(sent[m]))
        self.bytes_received += int(np.nansum(received[m]))
        t0, end, rows = _floats(batch, "t0_s"), _floats(batch, "end_s"), _floats(batch, "rows")
        for op, of_op in operations(batch).items():
            mine = of_op & m
            if not mine.any():
                continue  # warmup only: not an operation of the measured run
            o = self.ops.setdefault(op, OperationTotals())
            o.sent += int(mine.sum())
            o.ok += int((mine & ok).sum())
            o.good += int((mine & good).sum())
            o.bytes_sent += int(np.nansum(sent[mine]))
            o.bytes_received += int(np.nansum(received[mine]))
            o.rows += int(np.nansum(rows[mine & ok]))
            o.first_send = min(o.first_send, float(t0[mine].min()))
            if (ended := mine & ~cancelled).any():
                o.last_response = max(o.last_response, float(end[ended].max()))
            _count_errors(o.failures, batch, mine & failed)


def _count_errors(into: Counter[ErrorType], batch: pa.RecordBatch, rows: Mask) -> None:
    errors = batch.column("error").filter(pa.array(rows))
    for item in pc.value_counts(errors.cast(pa.string())).to_pylist():
        into[ErrorType(item["values"])] += item["counts"]


def summarize_file(
    path: Path,
    plan: RunPlan,
    reports: Sequence[WorkerReport],
    slo: SloConfig,
    *,
    state: BenchState,
    targets: Sequence[str] = (),
    started_at: datetime | None = None,
    top_k: int | None = None,
) -> RunSummary:
    """The :class:`RunSummary` of the records in ``path`` (one run, or one sweep stage);
    ``started_at``: the stage's wall-clock start, which ties it to the monitor's samples;
    ``top_k``: the k of a vector workload's searches (echoed in their figures)."""
    f = RecordsFile(path)
    t = Totals()
    for batch in f.batches(SCALARS):
        t.add(batch, slo)
    first = t.first_send if t.measured else None
    last = t.last_send if t.measured else None
    last_resp = t.last_response if t.last_response > -math.inf else None
    duration = last_resp - first if last_resp is not None and first is not None else None
    send_window = last - first if last is not None and first is not None else 0
    cpu = math.fsum(w.cpu_s for w in reports)
    stop_reasons = sorted({w.stop_reason for w in reports})
    good = t.good if slo.any else None
    ok = succeeded
    return RunSummary(
        run_index=plan.run_index,
        label=plan.label,
        started_at=started_at,
        loop=plan.loop,
        requested_rate=plan.rate,
        concurrency=plan.concurrency,
        burstiness=plan.burstiness if plan.loop is LoopKind.POISSON else None,
        workers=len(reports),
        state=state,
        stop_reason=",".join(stop_reasons) or "none",
        requests_sent=t.measured,
        requests_ok=t.ok,
        requests_failed=t.measured - t.ok,
        failures={k: t.failures[k] for k in sorted(t.failures)},
        warmup_excluded=t.warmup,
        warmup_failed=t.warmup_failed,
        first_send_s=first,
        last_send_s=last,
        last_response_s=last_resp,
        duration_s=duration,
        achieved_rate=rate(t.measured, send_window),
        request_throughput=rate(t.ok, duration),
        output_token_throughput=rate(t.output_tokens, duration),
        total_token_throughput=rate(t.output_tokens + t.prompt_tokens, duration),
        goodput=rate(good, duration) if good is not None else None,
        goodput_requests=good,
        slo=slo,
        ttft_ms=f.describe(f.column(ok, "ttft_ms")),
        tpot_ms=f.describe(f.column(ok, "tpot_ms")),
        itl_ms=f.describe(f.itl(ok)),
        e2el_ms=f.describe(f.column(ok, "e2e_ms")),
        schedule_delay_ms=f.describe(f.values(measured, _schedule_delay, ("t0_s", "scheduled_s"))),
        output_tokens=f.describe(f.column(ok, "output_tokens")),
        prompt_tokens=f.describe(f.column(ok, "prompt_tokens")),
        tokens_per_chunk=f.describe(f.values(ok, _tokens_per_chunk, ("output_tokens", "chunks"))),
        output_tokens_source=dict(t.sources),
        in_flight_cap_hits=sum(w.cap_hits for w in reports),
        max_in_flight=sum(w.max_in_flight for w in reports),
        cpu_s=cpu,
        cpu_ms_per_request=cpu * 1000 / t.records if t.records else None,
        preemptions=sum(w.preemptions for w in reports),
        worker_pids=[w.pid for w in reports],
        endpoints=_per_endpoint(f, targets, duration) if len(targets) > 1 else [],
        operations=_per_operation(f, t, duration, slo, top_k),
        bytes_sent=t.bytes_sent,
        bytes_received=t.bytes_received,
    )


def _schedule_delay(batch: pa.RecordBatch) -> F64:
    return (_floats(batch, "t0_s") - _floats(batch, "scheduled_s")) * 1000.0


def _tokens_per_chunk(batch: pa.RecordBatch) -> F64:
    """Output tokens per token-carrying chunk (no chunk, or no count: none)."""
    chunks = _floats(batch, "chunks")
    return _floats(batch, "output_tokens") / np.where(chunks == 0, math.nan, chunks)


def _per_endpoint(
    f: RecordsFile, targets: Sequence[str], duration: float | None
) -> list[EndpointSummary]:
    out = []
    for index, url in enumerate(targets):
        sent = ok = 0
        for batch in f.batches(ROW_COLUMNS):
            mine = _floats(batch, "endpoint") == index
            sent += int((measured(batch) & mine).sum())
            ok += int((succeeded(batch) & mine).sum())
        rows = on_endpoint(index)
        out.append(
            EndpointSummary(
                index=index,
                url=url,
                requests_sent=sent,
                requests_ok=ok,
                requests_failed=sent - ok,
                request_throughput=rate(ok, duration),
                ttft_ms=f.describe(f.column(rows, "ttft_ms")),
                e2el_ms=f.describe(f.column(rows, "e2e_ms")),
            )
        )
    return out


def _per_operation(
    f: RecordsFile, t: Totals, duration: float | None, slo: SloConfig, top_k: int | None
) -> list[OperationSummary]:
    """As :func:`aifactory.loadgen.metrics.operations.operation_summaries`: nothing for a
    run of LLM generations only (the run is its one operation)."""
    if set(t.ops) <= {Operation.GENERATE}:
        return []
    out = []
    for op in Operation:
        o = t.ops.get(op)
        if o is None:
            continue
        ok = doing(op)
        out.append(
            OperationSummary(
                operation=op,
                requests_sent=o.sent,
                requests_ok=o.ok,
                requests_failed=o.sent - o.ok,
                failures={k: o.failures[k] for k in sorted(o.failures)},
                request_throughput=rate(o.ok, duration),
                goodput=rate(o.good, duration) if slo.any else None,
                latency_ms=f.describe(f.column(ok, "e2e_ms", "operation")),
                bytes_sent=o.bytes_sent,
                bytes_received=o.bytes_received,
                recall=f.describe(f.column(ok, "recall", "operation")),
                top_k=top_k if op is Operation.SEARCH else None,
                rows=o.rows,
                rows_per_s=rate(o.rows, o.span) if op is Operation.UPSERT else None,
            )
        )
    return out
