"""What the pages show of a service or a benchmark, as plain JSON-able dicts.

The server-rendered HTML and the live updates pushed over SSE are built from the same
dicts, so a row looks the same whether it was rendered or updated. Values are data: the
templates escape them and the page's script only ever sets ``textContent``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import yaml

from aifactory.shared.registry import BenchmarkRecord, ServiceRecord
from aifactory.shared.results import BenchSummary, RunSummary


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def as_yaml(value: Any) -> str:
    """Readable YAML of user data (overrides, a recipe): shown as text, never evaluated."""
    if value in ({}, [], None):
        return ""
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True)


def service_view(record: ServiceRecord) -> dict[str, Any]:
    job = record.job_id or ""
    if record.job_id and record.job_state:
        job = f"{record.job_id} ({record.job_state.value})"
    return {
        "service_id": record.service_id,
        "recipe": record.recipe,
        "state": record.state.value,
        "terminal": record.state.is_terminal,
        "job": job,
        "job_state": record.job_state.value if record.job_state else "",
        "reason": record.reason or "",
        "exit_code": "" if record.exit_code is None else str(record.exit_code),
        "nodes": ", ".join(record.nodes),
        "endpoints": [e.url for e in record.endpoints],
        "created": when(record.created),
        "updated": when(record.updated),
        "started": when(record.started),
        "ready": when(record.ready),
        "ended": when(record.ended),
        "cancel_requested": record.cancel_requested,
        "script_path": record.script_path or "",
        "output_path": record.output_path or "",
        "history": [
            {
                "at": when(c.at),
                "state": c.state.value,
                "job_state": c.job_state.value if c.job_state else "",
            }
            for c in record.history
        ],
        "job_history": [
            {"at": when(c.at), "job_state": c.job_state.value, "reason": c.reason or ""}
            for c in record.job_history
        ],
    }


def target_text(record: BenchmarkRecord) -> str:
    if record.target.service_id is not None:
        return f"service {record.target.service_id}"
    return record.target.url or ""


def benchmark_view(record: BenchmarkRecord) -> dict[str, Any]:
    w = record.workload
    load = {
        "constant": f"{w.rate:g}/s" if w.rate else "",
        "poisson": f"{w.rate:g}/s" if w.rate else "",
        "concurrency": f"{w.concurrency} in flight" if w.concurrency else "",
    }.get(w.profile.value, "")
    stop = " ".join(
        part
        for part in (
            f"{w.duration_s:g} s" if w.duration_s else "",
            f"{w.requests} requests" if w.requests else "",
        )
        if part
    )
    return {
        "benchmark_id": record.benchmark_id,
        "state": record.state.value,
        "terminal": record.state.is_terminal,
        "target": target_text(record),
        "target_url": record.target_url or "",
        "backend": w.backend,
        "profile": w.profile.value,
        "load": load,
        "stop": stop,
        "reason": record.reason or "",
        "created": when(record.created),
        "updated": when(record.updated),
        "has_results": bool(record.results_dir),
    }


def _fmt(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def run_rows(summary: BenchSummary | None) -> list[dict[str, str]]:
    """The headline figures of each run (or sweep stage) for the results table."""
    if summary is None:
        return []
    return [_run_row(run) for run in summary.runs]


def _run_row(run: RunSummary) -> dict[str, str]:
    return {
        "label": run.label,
        "state": run.state.value,
        "sent": str(run.requests_sent),
        "ok": str(run.requests_ok),
        "failed": str(run.requests_failed),
        "rps": _fmt(run.request_throughput, 2),
        "tok_s": _fmt(run.output_token_throughput, 1),
        "ttft_p50": _fmt(run.ttft_ms.p50),
        "ttft_p99": _fmt(run.ttft_ms.p99),
        "tpot_p50": _fmt(run.tpot_ms.p50, 2),
        "tpot_p99": _fmt(run.tpot_ms.p99, 2),
        "e2el_p50": _fmt(run.e2el_ms.p50),
        "delay_p99": _fmt(run.schedule_delay_ms.p99, 2),
        "goodput": _fmt(run.goodput, 2),
    }
