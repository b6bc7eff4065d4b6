"""Per-run summary statistics, computed once over the union of all workers' records.

Definitions (design.md §6): duration = last response - first send (measured requests);
achieved rate = sent / (last send - first send); request/s and token/s are over duration and
count successful requests; goodput = successful requests meeting every SLO set / duration.
A request with no measurable TTFT (non-streaming) does not meet a TTFT objective; one with
fewer than two output tokens has no TPOT and meets a TPOT objective. Warmup requests are
excluded from everything but ``warmup_excluded``; failures (by type) from every latency.
A recall objective applies to requests that have a recall (searches with ground truth).
Per-operation figures (``operations``) come from :mod:`operations`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from aifactory.loadgen.messages import WorkerReport
from aifactory.loadgen.metrics.operations import operation_summaries
from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.loadgen.metrics.stats import describe
from aifactory.loadgen.scheduler.plan import RunPlan
from aifactory.shared.results import EndpointSummary, ErrorType, LoopKind, RunSummary
from aifactory.shared.states import BenchState
from aifactory.shared.workload import SloConfig


def meets_slo(rec: RequestRecord, slo: SloConfig) -> bool:
    if not rec.ok:
        return False
    if slo.ttft_ms is not None and (rec.ttft_ms is None or rec.ttft_ms > slo.ttft_ms):
        return False
    if slo.tpot_ms is not None and rec.tpot_ms is not None and rec.tpot_ms > slo.tpot_ms:
        return False
    if slo.recall is not None and rec.recall is not None and rec.recall < slo.recall:
        return False
    return not (slo.e2el_ms is not None and (rec.e2e_ms is None or rec.e2e_ms > slo.e2el_ms))


def rate(count: float, seconds: float | None) -> float | None:
    if seconds is None or seconds <= 0:
        return None
    return count / seconds


def summarize_run(
    plan: RunPlan,
    records: Sequence[RequestRecord],
    reports: Sequence[WorkerReport],
    slo: SloConfig,
    *,
    state: BenchState,
    targets: Sequence[str] = (),
    started_at: datetime | None = None,
    top_k: int | None = None,
) -> RunSummary:
    """``targets``: the config's base URLs; with several, per-endpoint figures are added.
    ``top_k``: the k of a vector workload's searches (echoed in their figures)."""
    measured = [r for r in records if not r.warmup]
    warm = len(records) - len(measured)
    ok = [r for r in measured if r.ok]
    failures = Counter(r.error for r in measured if r.error is not None)
    sends = [r.t0_s for r in measured]
    ends = [r.end_s for r in measured if r.error is not ErrorType.CANCELLED]
    first_send = min(sends) if sends else None
    last_send = max(sends) if sends else None
    last_resp = max(ends) if ends else None
    duration = last_resp - first_send if last_resp is not None and first_send is not None else None
    send_window = last_send - first_send if last_send is not None and first_send is not None else 0
    out_tokens = [r.output_tokens for r in ok if r.output_tokens is not None]
    in_tokens = [r.prompt_tokens for r in ok if r.prompt_tokens is not None]
    good = sum(1 for r in ok if meets_slo(r, slo)) if slo.any else None
    cpu = math.fsum(w.cpu_s for w in reports)
    stop_reasons = sorted({w.stop_reason for w in reports})
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
        requests_sent=len(measured),
        requests_ok=len(ok),
        requests_failed=len(measured) - len(ok),
        failures={k: failures[k] for k in sorted(failures)},
        warmup_excluded=warm,
        warmup_failed=sum(1 for r in records if r.warmup and not r.ok),
        first_send_s=first_send,
        last_send_s=last_send,
        last_response_s=last_resp,
        duration_s=duration,
        achieved_rate=rate(len(measured), send_window),
        request_throughput=rate(len(ok), duration),
        output_token_throughput=rate(sum(out_tokens), duration),
        total_token_throughput=rate(sum(out_tokens) + sum(in_tokens), duration),
        goodput=rate(good, duration) if good is not None else None,
        goodput_requests=good,
        slo=slo,
        ttft_ms=describe(r.ttft_ms for r in ok if r.ttft_ms is not None),
        tpot_ms=describe(r.tpot_ms for r in ok if r.tpot_ms is not None),
        itl_ms=describe(x for r in ok for x in r.itl_ms),
        e2el_ms=describe(r.e2e_ms for r in ok if r.e2e_ms is not None),
        schedule_delay_ms=describe(r.schedule_delay_ms for r in measured),
        output_tokens=describe(float(n) for n in out_tokens),
        prompt_tokens=describe(float(n) for n in in_tokens),
        tokens_per_chunk=describe(t for r in ok if (t := r.tokens_per_chunk) is not None),
        output_tokens_source=dict(
            Counter(r.output_tokens_source for r in ok if r.output_tokens_source is not None)
        ),
        in_flight_cap_hits=sum(w.cap_hits for w in reports),
        max_in_flight=sum(w.max_in_flight for w in reports),
        cpu_s=cpu,
        cpu_ms_per_request=cpu * 1000 / len(records) if records else None,
        preemptions=sum(w.preemptions for w in reports),
        worker_pids=[w.pid for w in reports],
        endpoints=_per_endpoint(measured, targets, duration) if len(targets) > 1 else [],
        operations=operation_summaries(measured, duration, slo, meets_slo, top_k),
        bytes_sent=sum(r.bytes_sent or 0 for r in measured),
        bytes_received=sum(r.bytes_received or 0 for r in measured),
    )


def _per_endpoint(
    measured: Sequence[RequestRecord], targets: Sequence[str], duration: float | None
) -> list[EndpointSummary]:
    out = []
    for index, url in enumerate(targets):
        mine = [r for r in measured if r.endpoint == index]
        ok = [r for r in mine if r.ok]
        out.append(
            EndpointSummary(
                index=index,
                url=url,
                requests_sent=len(mine),
                requests_ok=len(ok),
                requests_failed=len(mine) - len(ok),
                request_throughput=rate(len(ok), duration),
                ttft_ms=describe(r.ttft_ms for r in ok if r.ttft_ms is not None),
                e2el_ms=describe(r.e2e_ms for r in ok if r.e2e_ms is not None),
            )
        )
    return out
