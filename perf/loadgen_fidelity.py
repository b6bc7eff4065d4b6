"""Load-generator fidelity: does an open-loop Poisson run measure what the server did?

Usage::

    .venv/bin/python perf/loadgen_fidelity.py [--rate 500] [--duration 20] [--json out.json]

Why: a load generator that falls behind inflates TTFT (its own queueing) and smears ITL. The
simulator is told the truth (TTFT 50 ms, ITL 5 ms, 16 tokens, pinned to core 0); the
generator runs open-loop Poisson at ``--rate`` for ``--duration`` s in one process pinned to
core 1 (``workers=1``, uvloop); both at SCHED_FIFO 1 when root (see ``loadgen_common``).
Reported: achieved vs requested rate, schedule delay (t0 - scheduled) p50/p99, TTFT p50
(target: within 2 ms of 50) and TPOT p50 (target: within 0.5 ms of 5), failures, and the
generator's CPU per request.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from loadgen_common import ROOT, can_realtime, pinned, simulator

SIM_ARGS = ("--ttft-ms", "50", "--itl-ms", "5", "--output-tokens", "16", "--max-running", "100000")


async def _measure(url: str, rate: float, duration: float) -> dict[str, Any]:
    from aifactory.loadgen import BenchConfig, run_benchmark

    cfg = BenchConfig(
        target=url,
        profile="poisson",
        rate=rate,
        duration_s=duration,
        warmup_s=1.0,
        workers=1,
        dataset={"input_tokens": {"mean": 32}, "output_tokens": {"mean": 16}},
    )
    result = await run_benchmark(cfg, progress=False)
    run = result.summary.runs[0]
    return {
        "requested_rate": rate,
        "achieved_rate": run.achieved_rate,
        "sent": run.requests_sent,
        "failed": run.requests_failed,
        "warmup_excluded": run.warmup_excluded,
        "schedule_delay_p50_ms": run.schedule_delay_ms.p50,
        "schedule_delay_p99_ms": run.schedule_delay_ms.p99,
        "ttft_p50_ms": run.ttft_ms.p50,
        "ttft_p99_ms": run.ttft_ms.p99,
        "tpot_p50_ms": run.tpot_ms.p50,
        "itl_p50_ms": run.itl_ms.p50,
        "cpu_ms_per_req": run.cpu_ms_per_request,
        "max_in_flight": run.max_in_flight,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=can_realtime(),
        help="run simulator and client at SCHED_FIFO 1 (default: when root)",
    )
    parser.add_argument("--json", default=None)
    parser.add_argument("--child-url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_url:
        import uvloop

        print(json.dumps(uvloop.run(_measure(args.child_url, args.rate, args.duration))))
        return
    print(f"realtime scheduling: {args.realtime}")
    with simulator(*SIM_ARGS, core=0, realtime=args.realtime) as url:
        cmd = [sys.executable, __file__, "--child-url", url]
        cmd += ["--rate", str(args.rate), "--duration", str(args.duration)]
        proc = subprocess.run(
            pinned(1, cmd, args.realtime), cwd=ROOT, capture_output=True, text=True
        )
    if proc.returncode != 0:
        raise SystemExit(f"measurement failed: {proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.splitlines()[-1])
    for key, value in res.items():
        print(f"{key:24} {value:.3f}" if isinstance(value, float) else f"{key:24} {value}")
    ttft_ok = abs(res["ttft_p50_ms"] - 50.0) <= 2.0
    tpot_ok = abs(res["tpot_p50_ms"] - 5.0) <= 0.5
    print(f"TTFT p50 within 2 ms of 50: {ttft_ok}; TPOT p50 within 0.5 ms of 5: {tpot_ok}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()
