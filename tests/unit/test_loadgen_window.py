"""Live windows: TTFT, TPOT and schedule-delay percentiles from the window's sketches."""

from __future__ import annotations

import numpy as np
import pytest

from aifactory.loadgen.messages import WorkerProgress
from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.loadgen.metrics.window import RELATIVE_ACCURACY, Window, window_stats
from aifactory.shared.results import ErrorType, WindowStats


def _record(
    i: int, *, ttft: float, tpot: float | None, delay_ms: float, ok: bool = True
) -> RequestRecord:
    scheduled = i * 0.01
    return RequestRecord(
        run_index=0,
        worker_id=0,
        request_index=i,
        prompt_index=i,
        warmup=False,
        scheduled_s=scheduled,
        t0_s=scheduled + delay_ms / 1000.0,
        end_s=scheduled + 1.0,
        ttft_ms=ttft if ok else None,
        e2e_ms=ttft + 100 if ok else None,
        tpot_ms=tpot if ok else None,
        output_tokens=10 if ok else None,
        error=None if ok else ErrorType.TIMEOUT,
    )


def _stats(window: Window) -> WindowStats:
    progress = [
        WorkerProgress(worker_id=0, run_index=0, sent=100, completed=100, in_flight=0, cap_hits=0)
    ]
    return window_stats(
        run_index=0,
        label="run",
        elapsed_s=1.0,
        window_s=1.0,
        progress=progress,
        errors_total=window.errors,
        window=window,
    )


def test_window_percentiles_are_within_the_sketch_accuracy() -> None:
    rng = np.random.default_rng(7)
    ttft = rng.uniform(10, 200, 1000)
    tpot = rng.uniform(1, 20, 1000)
    delay = rng.uniform(0, 50, 1000)
    window = Window()
    window.add([_record(i, ttft=ttft[i], tpot=tpot[i], delay_ms=delay[i]) for i in range(1000)])
    stats = _stats(window)
    for name, values in (("ttft", ttft), ("tpot", tpot), ("schedule_delay", delay)):
        for q, suffix in ((0.5, "p50"), (0.99, "p99")):
            got = getattr(stats, f"{name}_{suffix}_ms")
            # The sketch's quantile is a value within 1 % of an order statistic near q.
            lower = np.quantile(values, q - 0.002) * (1 - RELATIVE_ACCURACY)
            upper = np.quantile(values, q + 0.002) * (1 + RELATIVE_ACCURACY)
            assert lower <= got <= upper, (name, suffix, got)


def test_failures_count_for_schedule_delay_but_not_for_latencies() -> None:
    window = Window()
    window.add([_record(i, ttft=50, tpot=5, delay_ms=2) for i in range(90)])
    window.add([_record(90 + i, ttft=0, tpot=None, delay_ms=400, ok=False) for i in range(10)])
    stats = _stats(window)
    assert stats.window_errors == 10
    assert stats.ttft_p99_ms == pytest.approx(50, rel=0.02)  # failures never in latencies
    assert stats.tpot_p50_ms == pytest.approx(5, rel=0.02)
    assert stats.schedule_delay_p50_ms == pytest.approx(2, rel=0.02)
    assert stats.schedule_delay_p99_ms == pytest.approx(400, rel=0.02)  # late failed sends


def test_an_empty_window_has_no_percentiles() -> None:
    stats = _stats(Window())
    assert stats.tpot_p50_ms is None and stats.schedule_delay_p99_ms is None
