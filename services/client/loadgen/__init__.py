"""The load generator behind ``aifactory bench run`` (design.md §6 metric definitions).

Public API: :func:`run_benchmark` (config in, :class:`BenchResult` out), :class:`BenchConfig`,
:class:`BenchSummary`/:class:`RunSummary`, :class:`RequestRecord`, :class:`WindowStats`,
:func:`write_results`/:func:`read_summary`/:func:`read_records`, and the reusable worker
entry :func:`run_worker` for workers started elsewhere (e.g. SLURM nodes over NATS).
"""

from services.client.loadgen.errors import (
    ConfigError,
    DatasetError,
    LoadgenError,
    PreflightError,
    WorkerError,
)
from services.client.loadgen.messages import RecordSink, WorkerProgress, WorkerReport, WorkerSpec
from services.client.loadgen.metrics.records import ErrorType, RequestRecord, TokenSource
from services.client.loadgen.metrics.stats import Distribution, describe, percentile
from services.client.loadgen.metrics.summary import RunSummary
from services.client.loadgen.metrics.window import WindowStats
from services.client.loadgen.results import (
    BenchResult,
    BenchSummary,
    read_records,
    read_summary,
    write_results,
)
from services.client.loadgen.runner import run_benchmark
from services.client.loadgen.workers import run_worker, worker_process_main
from shared.workload import (
    BackendKind,
    BenchConfig,
    DatasetConfig,
    DatasetFormat,
    ProfileKind,
    RateType,
    SloConfig,
    TokenDistribution,
)

__all__ = [
    "BackendKind",
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
