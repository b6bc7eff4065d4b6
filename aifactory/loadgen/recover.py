"""A benchmark whose process died: its records kept, its statistics computed, marked
``interrupted``.

The collector writes each stage to ``stage-<k>.parquet`` in fsynced segments (at most
``FLUSH_S`` seconds of records only in memory), so after ``kill -9`` the folder holds the
closed stages whole and the stage that was running in segments. Re-running instead would
load the target a second time and mix two measurements, so the run is closed as it was.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from aifactory.loadgen.errors import LoadgenError
from aifactory.loadgen.metrics.columns import summarize_file
from aifactory.loadgen.results import RECORDS_FILE, BenchResult
from aifactory.loadgen.runner import next_stage
from aifactory.loadgen.scheduler.plan import RunPlan
from aifactory.loadgen.store import concatenate, recover
from aifactory.shared.messages.base import utcnow
from aifactory.shared.results import BenchSummary, RunSummary
from aifactory.shared.states import BenchState
from aifactory.shared.workload import BenchConfig

_STAGE = re.compile(r"stage-(\d+)(?:\.seg-\d+)?\.parquet")


def stages_on_disk(out_dir: Path) -> dict[int, bool]:
    """Stage index → whether it was closed (a whole file, no segments left over)."""
    found: dict[int, bool] = {}
    for path in out_dir.glob("stage-*.parquet"):
        match = _STAGE.fullmatch(path.name)
        if match is None:
            continue
        index = int(match.group(1))
        closed = ".seg-" not in path.name
        found[index] = found.get(index, True) and closed
    return dict(sorted(found.items()))


def recover_interrupted(
    config: BenchConfig, out_dir: Path, *, started_at: datetime
) -> BenchResult | None:
    """Close the run found in ``out_dir``; ``None`` when it wrote no records at all."""
    stages = stages_on_disk(out_dir)
    if not stages:
        return None
    runs: list[RunSummary] = []
    paths: list[Path] = []
    for index, closed in stages.items():
        path = out_dir / f"stage-{index}.parquet"
        if not closed:
            path.unlink(missing_ok=True)
            recover(path)
        plan = _plan(config, runs, index)
        state = BenchState.COMPLETED if closed else BenchState.INTERRUPTED
        top_k = config.vector.top_k if config.vector else None
        runs.append(
            summarize_file(
                path, plan, [], config.slo, state=state, targets=config.targets, top_k=top_k
            )
        )
        paths.append(path)
    records = out_dir / RECORDS_FILE
    concatenate(paths, records)
    for path in paths:
        path.unlink(missing_ok=True)
    summary = BenchSummary(
        state=BenchState.INTERRUPTED,
        target=config.target,
        backend=config.backend,
        model=config.model,
        config=config,
        started_at=started_at,
        finished_at=utcnow(),
        runs=runs,
    )
    return BenchResult(summary=summary, records_path=records)


def _plan(config: BenchConfig, done: list[RunSummary], index: int) -> RunPlan:
    """The stage's plan as the run made it (sweeps derive later stages from earlier ones);
    a stage that cannot be re-derived keeps its index with the profile's plan."""
    try:
        plan = next_stage(config, done)
    except LoadgenError:
        plan = None
    if plan is None:
        plan = next_stage(config, [])
        assert plan is not None, "a benchmark always has a first stage"
    return plan.model_copy(update={"run_index": index})
