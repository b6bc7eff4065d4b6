"""Twenty-five seconds at full rate: the load generator's memory stays flat.

Records stream to disk, windows are sketches: nothing grows with the number of requests.
RSS is read from /proc at 10 s and at 24 s; nothing here is timed (a slow, shared CI
machine sends fewer requests, and the bound holds all the same). perf/loadgen_memory.py
runs the longer soak, next to the old keep-everything baseline.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aifactory.loadgen import BenchConfig, run_benchmark
from aifactory.shared.results import WindowStats
from tests.integration.test_loadgen_simfixture import running

#: Growth allowed from 10 s to 24 s. Keeping every record (as before) grew ~0.9-1.3 KB per
#: request: 50-100 MB over those 14 s at this rate.
MAX_GROWTH_MB = 25.0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_full_rate_keeps_memory_flat(tmp_path: Path) -> None:
    samples: dict[str, float] = {}

    def on_window(window: WindowStats) -> None:
        if window.elapsed_s >= 10 and "early" not in samples:
            samples["early"] = rss_mb()
        if window.elapsed_s >= 24 and "late" not in samples:
            samples["late"] = rss_mb()

    with running("--ttft-ms", "0", "--itl-ms", "0", "--output-tokens", "16", core=None) as sim:
        config = BenchConfig(
            target=sim.url,
            profile="concurrency",
            concurrency=64,
            duration_s=25,
            workers=1,  # in this process: its RSS is the load generator's
            window_s=1.0,
            dataset={"output_tokens": {"mean": 16}},
        )
        result = asyncio.run(
            run_benchmark(config, progress=False, on_window=on_window, out_dir=tmp_path)
        )
    [run] = result.summary.runs
    assert set(samples) == {"early", "late"}, samples
    growth = samples["late"] - samples["early"]
    assert growth < MAX_GROWTH_MB, (
        f"RSS grew {growth:.1f} MB between 10 and 24 s ({run.requests_ok:,} requests in all; "
        f"{samples})"
    )
    assert run.requests_ok > 10_000  # a real load, not an idle run
    assert (tmp_path / "records.parquet").is_file()
