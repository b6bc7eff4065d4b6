"""A service with several endpoints: requests go round-robin over all of them, and the
summary has each endpoint's figures next to the merged ones."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from aifactory.loadgen import BenchConfig, run_benchmark, write_results
from aifactory.loadgen.errors import PreflightError
from aifactory.report import build_report
from aifactory.shared.natsd import free_port
from tests.integration.test_loadgen_simfixture import running


def test_load_is_spread_round_robin_with_per_endpoint_statistics(tmp_path: Path) -> None:
    fast = ("--ttft-ms", "2", "--itl-ms", "1", "--output-tokens", "8")
    slow = ("--ttft-ms", "30", "--itl-ms", "1", "--output-tokens", "8")
    with running(*fast, core=None) as a, running(*slow, core=None) as b:
        config = BenchConfig(
            target=a.url,
            endpoints=[b.url],
            profile="concurrency",
            concurrency=4,
            requests=60,
            workers=2,
        )
        result = asyncio.run(run_benchmark(config, progress=False))
    [run] = result.summary.runs
    assert run.requests_ok == 60
    first, second = run.endpoints
    assert (first.url, second.url) == (a.url, b.url)
    assert first.requests_sent + second.requests_sent == 60
    assert abs(first.requests_sent - second.requests_sent) <= 2  # an even share each
    assert {r.endpoint for r in result.records} == {0, 1}
    # Each endpoint's own latency shows: the slow one's TTFT is the slow one's.
    assert first.ttft_ms.p50 is not None and second.ttft_ms.p50 is not None
    assert second.ttft_ms.p50 > first.ttft_ms.p50 + 15
    assert run.ttft_ms.count == first.ttft_ms.count + second.ttft_ms.count
    write_results(result, tmp_path / "res")
    page = build_report(tmp_path / "res").read_text()
    assert "Per endpoint" in page and a.url in page and b.url in page


def test_a_dead_endpoint_fails_the_preflight_not_a_share_of_requests() -> None:
    with running("--output-tokens", "4", core=None) as a:
        dead = f"http://127.0.0.1:{free_port()}"
        config = BenchConfig(target=a.url, endpoints=[dead], requests=5)
        with pytest.raises(PreflightError, match=str(dead.rsplit(":", 1)[1])):
            asyncio.run(run_benchmark(config, progress=False))
