"""The load generator behind ``aifactory bench run`` (design.md §6 metric definitions).

Public API: :func:`run_benchmark` (config in, :class:`BenchResult` out), :class:`BenchConfig`,
:class:`BenchSummary`/:class:`RunSummary`, :class:`RequestRecord`, :class:`WindowStats`,
:func:`write_results`/:func:`read_summary`/:func:`read_records`, and the reusable worker
entry :func:`run_worker` for workers started elsewhere (e.g. SLURM nodes over NATS).
"""

from aifactory.loadgen.errors import (
    ConfigError,
    DatasetError,
    LoadgenError,
    PreflightError,
    WorkerError,
)
from aifactory.loadgen.messages import RecordSink, WorkerProgress, WorkerReport, WorkerSpec
from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.loadgen.metrics.stats import describe, percentile
from aifactory.loadgen.results import BenchResult, read_records, read_summary, write_results
from aifactory.loadgen.runner import run_benchmark
from aifactory.loadgen.workers import run_worker, worker_process_main
from aifactory.shared.results import (
    BenchSummary,
    Distribution,
    ErrorType,
    RunSummary,
    TokenSource,
    WindowStats,
)
from aifactory.shared.workload import (
    BenchConfig,
    DatasetConfig,
    DatasetFormat,
    ProfileKind,
    RateType,
    SloConfig,
    TokenDistribution,
)

__all__ = [
    "BenchConfig",
    "BenchResult",
    "BenchSummary",
    "ConfigError",
    "DatasetConfig",
    "DatasetError",
    "DatasetFormat",
    "Distribution",
    "ErrorType",
    "LoadgenError",
    "PreflightError",
    "ProfileKind",
    "RateType",
    "RecordSink",
    "RequestRecord",
    "RunSummary",
    "SloConfig",
    "TokenDistribution",
    "TokenSource",
    "WindowStats",
    "WorkerError",
    "WorkerProgress",
    "WorkerReport",
    "WorkerSpec",
    "describe",
    "percentile",
    "read_records",
    "read_summary",
    "run_benchmark",
    "run_worker",
    "worker_process_main",
    "write_results",
]
