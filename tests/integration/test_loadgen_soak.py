"""A minute at full rate: the load generator's memory stays flat.

Records stream to disk, windows are sketches: nothing grows with the number of requests.
RSS is read from /proc at half a minute and at a minute; nothing here is timed (a slow,
shared CI machine sends fewer requests, and the bound holds all the same).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aifactory.loadgen import BenchConfig, run_benchmark
from aifactory.shared.results import WindowStats
from tests.integration.test_loadgen_simfixture import running

#: Growth allowed from 0.5 to 1 minute. Keeping every record (as before) grew ~1.3 KB per
#: request: tens of MB per half minute at this rate.
MAX_GROWTH_MB = 25.0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_a_minute_at_full_rate_keeps_memory_flat(tmp_path: Path) -> None:
    samples: dict[str, float] = {}
    requests: list[int] = []

    def on_window(window: WindowStats) -> None:
        requests.append(window.completed)
        if window.elapsed_s >= 30 and "half" not in samples:
            samples["half"] = rss_mb()
        if window.elapsed_s >= 60 and "full" not in samples:
            samples["full"] = rss_mb()

    with running("--ttft-ms", "0", "--itl-ms", "0", "--output-tokens", "16", core=None) as sim:
        config = BenchConfig(
            target=sim.url,
            profile="concurrency",
            concurrency=64,
            duration_s=62,
            workers=1,  # in this process: its RSS is the load generator's
            window_s=1.0,
            dataset={"output_tokens": {"mean": 16}},
        )
        result = asyncio.run(
            run_benchmark(config, progress=False, on_window=on_window, out_dir=tmp_path)
        )
    [run] = result.summary.runs
    assert set(samples) == {"half", "full"}, samples
    growth = samples["full"] - samples["half"]
    half_minute_requests = requests[-1] // 2
    assert growth < MAX_GROWTH_MB, (
        f"RSS grew {growth:.1f} MB between 0.5 and 1 min ({half_minute_requests:,} requests "
        f"in that half minute; {samples})"
    )
    assert run.requests_ok > 10_000  # a real load, not an idle minute
    assert (tmp_path / "records.parquet").is_file()
