"""Memory of a long benchmark, the final statistics of 10 million records, bytes per record.

    .venv/bin/python perf/loadgen_memory.py                 # 10 min per side, 10M records
    .venv/bin/python perf/loadgen_memory.py --minutes 2 --records 2000000

1. One worker (in this process) at its maximum rate against the simulator on the other
   core, RSS sampled every 10 s: records streamed to disk (today) next to the same load
   with every record kept in memory, as the load generator did before (the baseline, an
   ``on_records`` callback that keeps them). Prints RSS against elapsed time, side by side.
2. ``records.parquet`` bytes per request of that run (16-token streamed requests).
3. A synthetic records file of N records (16 token gaps each), then the final statistics
   computed from it in a child process: wall time and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loadgen_common import ROOT, pinned, simulator

from aifactory.loadgen import BenchConfig, run_benchmark
from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.shared.results import WindowStats

SAMPLE_S = 10.0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def soak(url: str, minutes: float, out: Path, keep: bool) -> tuple[list[tuple[float, float]], int]:
    samples: list[tuple[float, float]] = [(0.0, rss_mb())]
    kept: list[RequestRecord] = []

    def on_window(window: WindowStats) -> None:
        if window.elapsed_s >= samples[-1][0] + SAMPLE_S:
            samples.append((window.elapsed_s, rss_mb()))

    config = BenchConfig(
        target=url,
        profile="concurrency",
        concurrency=64,
        duration_s=minutes * 60,
        workers=1,
        dataset={"output_tokens": {"mean": 16}},
    )
    result = asyncio.run(
        run_benchmark(
            config,
            progress=False,
            on_window=on_window,
            on_records=kept.extend if keep else None,
            out_dir=out,
        )
    )
    return samples, result.summary.runs[0].requests_sent


def synthetic(path: Path, n: int) -> None:
    """N records with realistic values, written column-wise (fast: no record objects)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from aifactory.loadgen.store import FLOATS, ROW_GROUP, SCHEMA

    rng = np.random.default_rng(0)
    writer = pq.ParquetWriter(path, SCHEMA, compression="zstd", use_byte_stream_split=FLOATS)
    done = 0
    while done < n:
        k = min(ROW_GROUP * 8, n - done)
        t0 = np.sort(rng.uniform(0, 3600, k))
        ttft = rng.lognormal(3.9, 0.3, k)
        itl = rng.gamma(20, 0.25, (k, 15))
        e2e = ttft + itl.sum(axis=1)
        columns = {
            "run_index": np.zeros(k, dtype=np.int64),
            "worker_id": np.arange(k) % 8,
            "request_index": np.arange(done, done + k) // 8,
            "prompt_index": rng.integers(0, 1000, k),
            "warmup": np.zeros(k, dtype=bool),
            "scheduled_s": t0 - rng.uniform(0, 1e-4, k),
            "t0_s": t0,
            "end_s": t0 + e2e / 1000,
            "ttft_ms": ttft,
            "e2e_ms": e2e,
            "tpot_ms": (e2e - ttft) / 15,
            "chunks": np.full(k, 16),
            "output_tokens": np.full(k, 16),
            "output_tokens_source": pa.array(["usage"] * k).dictionary_encode(),
            "prompt_tokens": rng.integers(50, 500, k),
            "prompt_tokens_source": pa.array(["usage"] * k).dictionary_encode(),
            "error": pa.array([None] * k, pa.string()).dictionary_encode(),
            "error_message": pa.array([None] * k, pa.string()).dictionary_encode(),
            "http_status": np.full(k, 200),
            "endpoint": np.zeros(k, dtype=np.int64),
            "itl_us": pa.ListArray.from_arrays(
                np.arange(0, k * 15 + 1, 15, dtype=np.int32),
                pa.array(np.round(itl.ravel() * 1000).astype(np.int32)),
            ),
            "operation": pa.array(["generate"] * k).dictionary_encode(),
            **{name: pa.nulls(k, pa.int64()) for name in ("results", "rows")},
            "bytes_sent": np.full(k, 400),
            "bytes_received": np.full(k, 2000),
            "recall": pa.nulls(k, pa.float64()),
        }
        table = pa.table({f.name: columns[f.name] for f in SCHEMA}).cast(SCHEMA)
        writer.write_table(table, row_group_size=ROW_GROUP)
        done += k
    writer.close()


def final_statistics(path: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of computing a run summary from ``path``, measured in
    a fresh process so nothing else is counted."""
    code = (
        "import resource, sys, time\n"
        "from pathlib import Path\n"
        "from aifactory.loadgen.metrics.columns import summarize_file\n"
        "from aifactory.loadgen.scheduler.plan import RunPlan\n"
        "from aifactory.shared.results import LoopKind\n"
        "from aifactory.shared.states import BenchState\n"
        "from aifactory.shared.workload import SloConfig\n"
        "plan = RunPlan(loop=LoopKind.CLOSED, concurrency=8, max_seconds=3600, max_in_flight=8)\n"
        "t = time.perf_counter()\n"
        "s = summarize_file(Path(sys.argv[1]), plan, [], SloConfig(ttft_ms=60),"
        " state=BenchState.COMPLETED)\n"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,"
        " s.itl_ms.count, s.ttft_ms.p99)\n"
    )
    out = subprocess.run(
        pinned(1, [sys.executable, "-c", code, str(path)]),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    seconds, peak, itl_count, p99 = out.stdout.split()
    print(f"  {int(itl_count):,} pooled ITL values; TTFT p99 {float(p99):.2f} ms")
    return float(seconds), float(peak)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--skip-soak", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aifactory-memory-") as tmp:
        work = Path(tmp)
        if not args.skip_soak:
            with simulator(
                "--ttft-ms", "0", "--itl-ms", "0", "--output-tokens", "16", core=0
            ) as url:
                print(f"soak: one worker at full rate for {args.minutes:g} min, each way")
                streamed, n_new = soak(url, args.minutes, work / "new", keep=False)
                kept, n_old = soak(url, args.minutes, work / "old", keep=True)
            print(f"{'elapsed s':>10} {'streamed MB':>12} {'kept (before) MB':>17}")
            for (t, new), (_, old) in zip(streamed, kept, strict=False):
                print(f"{t:10.0f} {new:12.1f} {old:17.1f}")
            print(f"requests: streamed {n_new:,}, kept {n_old:,}")
            size = (work / "new" / "records.parquet").stat().st_size
            print(f"records.parquet: {size / n_new:.1f} bytes per request")
        print(f"final statistics of {args.records:,} synthetic records (16 tokens each):")
        path = work / "synthetic.parquet"
        started = time.perf_counter()
        synthetic(path, args.records)
        print(
            f"  written in {time.perf_counter() - started:.1f} s, "
            f"{path.stat().st_size / args.records:.1f} bytes per record"
        )
        seconds, peak = final_statistics(path)
        print(f"  computed in {seconds:.1f} s, peak RSS {peak:.0f} MB (targets: < 30 s, < 1 GB)")


if __name__ == "__main__":
    main()
