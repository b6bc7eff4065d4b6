"""Benchmark results as they travel: summaries, their distributions, and live windows.

These are the contract of ``bench.completed`` (the summary), ``bench.metrics`` (a window) and
the benchmarks registry, so they live in ``shared`` where every service and the ingress can
validate them; the load generator computes them (``aifactory.loadgen.metrics``). Latencies
are in milliseconds, rates per second, times in seconds since the run's start.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializationInfo, field_serializer

from aifactory.shared.states import BenchState
from aifactory.shared.workload import BenchConfig, SloConfig

#: The reported percentiles (field name → fraction).
PERCENTILES: dict[str, float] = {
    "p1": 0.01,
    "p5": 0.05,
    "p10": 0.10,
    "p25": 0.25,
    "p50": 0.50,
    "p75": 0.75,
    "p90": 0.90,
    "p95": 0.95,
    "p99": 0.99,
    "p99_9": 0.999,
}


class Distribution(BaseModel):
    """Summary of one metric; all ``None`` (with ``count`` 0) when there are no values."""

    model_config = ConfigDict(frozen=True)

    count: int = 0
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    p1: float | None = None
    p5: float | None = None
    p10: float | None = None
    p25: float | None = None
    p50: float | None = None
    p75: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    p99_9: float | None = None


class ErrorType(StrEnum):
    """Why a request failed. Counted apart from latencies, one counter per type."""

    HTTP_4XX = "http_4xx"
    HTTP_5XX = "http_5xx"
    TIMEOUT = "timeout"
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_ERROR = "connection_error"  # reset, DNS, disconnect before any response byte
    STREAM_CUT = "stream_cut"  # response ended before its terminal marker
    STREAM_ERROR = "stream_error"  # the server put an error object inside the stream
    INVALID_RESPONSE = "invalid_response"  # unparsable JSON / unexpected shape
    CANCELLED = "cancelled"  # still in flight when the run stopped
    #: The server refused vectors of another dimension than its collection's.
    DIMENSION_MISMATCH = "dimension_mismatch"
    #: A search found no hits at all where the dataset has neighbours: the collection is
    #: empty (not ingested yet) or lost its rows.
    EMPTY_COLLECTION = "empty_collection"


class Operation(StrEnum):
    """What one request did; statistics are also given per operation."""

    GENERATE = "generate"  # an LLM generation (completion, chat, Ollama generate)
    SEARCH = "search"  # a top-k vector search
    UPSERT = "upsert"  # a batch of vectors written


class TokenSource(StrEnum):
    """Where a token count came from."""

    USAGE = "usage"  # the server's usage block (OpenAI usage / Ollama eval_count)
    TOKENIZER = "tokenizer"  # a real tokenizer supplied by the caller
    ESTIMATE = "estimate"  # the built-in deterministic estimate (no tokenizer download)


class LoopKind(StrEnum):
    CLOSED = "closed"  # a fixed number of requests always in flight
    CONSTANT = "constant"  # open loop, evenly spaced
    POISSON = "poisson"  # open loop, gamma inter-arrivals


class EndpointSummary(BaseModel):
    """One endpoint's share of a run spread over several (round-robin per request)."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(description="Position in the config's targets (target first).")
    url: str
    requests_sent: int
    requests_ok: int
    requests_failed: int
    request_throughput: float | None = None
    ttft_ms: Distribution
    e2el_ms: Distribution


class OperationSummary(BaseModel):
    """One operation's share of a run (searches and upserts of a mixed load apart)."""

    model_config = ConfigDict(frozen=True)

    operation: Operation = Field(description="What these requests did.")
    requests_sent: int = Field(description="Measured requests of this operation sent.")
    requests_ok: int = Field(description="Of them, successful.")
    requests_failed: int = Field(description="Of them, failed (by type in failures).")
    failures: dict[ErrorType, int] = Field(
        default_factory=dict, description="Failed requests of this operation by error type."
    )
    request_throughput: float | None = Field(
        default=None, description="Successful requests per second over the run's duration (QPS)."
    )
    goodput: float | None = Field(
        default=None, description="Successful requests meeting every SLO set, per second."
    )
    latency_ms: Distribution = Field(description="Whole-response latency of successful ones.")
    bytes_sent: int = Field(0, description="Request bytes (headers and body) sent.")
    bytes_received: int = Field(0, description="Response bytes (headers and body) received.")
    recall: Distribution = Field(
        default_factory=Distribution,
        description="Searches: recall@k per query (|returned ∩ true top-k| / k).",
    )
    top_k: int | None = Field(default=None, description="Searches: the k asked for.")
    rows: int = Field(0, description="Upserts: rows written by successful requests.")
    rows_per_s: float | None = Field(
        default=None,
        description="Upserts: rows written per second, first send to last response of the "
        "upserts (the ingest throughput).",
    )


class ServerAggregates(BaseModel):
    """The server's and the GPUs' side of one run, from the monitor's samples of its window.

    Means are over every scrape in the window (and every GPU); token counts are the
    server's counters from the last scrape before the run to the first after it, so they
    include warmup and failed requests like the client's sums beside them (all requests of
    the run that completed). ``None`` where the service exposes no such series.
    """

    model_config = ConfigDict(frozen=True)

    window_start: datetime = Field(description="First request sent (UTC).")
    window_end: datetime = Field(description="Last response received (UTC).")
    scrapes: int = Field(description="Successful scrapes of the service's targets in it.")
    failed_scrapes: int = 0
    gpus: int = Field(0, description="GPUs seen (DCGM series).")
    gpu_util_mean: float | None = Field(None, description="DCGM_FI_DEV_GPU_UTIL, percent.")
    gpu_util_max: float | None = None
    gpu_memory_used_max_mib: float | None = Field(None, description="DCGM_FI_DEV_FB_USED.")
    gpu_power_mean_w: float | None = Field(None, description="DCGM_FI_DEV_POWER_USAGE.")
    kv_cache_usage_max: float | None = Field(
        None, description="Peak vllm:kv_cache_usage_perc (1 = full)."
    )
    requests_running_mean: float | None = Field(None, description="vllm:num_requests_running.")
    requests_waiting_mean: float | None = Field(None, description="vllm:num_requests_waiting.")
    server_prompt_tokens: float | None = Field(None, description="vllm:prompt_tokens_total.")
    server_generation_tokens: float | None = Field(
        None, description="vllm:generation_tokens_total."
    )
    client_prompt_tokens: int | None = Field(None, description="Sum of the records' prompts.")
    client_output_tokens: int | None = Field(None, description="Sum of the records' outputs.")
    node_cpu_util_mean: float | None = Field(None, description="Busy fraction of node CPUs.")
    node_memory_used_max_bytes: float | None = Field(
        None, description="MemTotal - MemAvailable, the peak over the nodes."
    )


class RunSummary(BaseModel):
    """One run (or one sweep stage). Rates are per second; latencies in milliseconds."""

    model_config = ConfigDict(frozen=True)

    run_index: int
    label: str
    #: When the run's clock started (wall clock; record times count from it).
    started_at: datetime | None = None
    loop: LoopKind
    requested_rate: float | None = None
    concurrency: int | None = None
    burstiness: float | None = None
    workers: int
    state: BenchState
    stop_reason: str = Field(description="requests | duration | max_seconds | stopped")

    requests_sent: int = Field(description="measured requests sent (warmup excluded)")
    requests_ok: int
    requests_failed: int
    failures: dict[ErrorType, int] = Field(default_factory=dict)
    warmup_excluded: int = Field(description="warmup requests, excluded from all statistics")
    warmup_failed: int = 0

    first_send_s: float | None = None
    last_send_s: float | None = None
    last_response_s: float | None = None
    duration_s: float | None = None
    achieved_rate: float | None = None
    request_throughput: float | None = None
    output_token_throughput: float | None = None
    total_token_throughput: float | None = None
    goodput: float | None = None
    goodput_requests: int | None = None
    slo: SloConfig = SloConfig()

    ttft_ms: Distribution
    tpot_ms: Distribution
    itl_ms: Distribution
    e2el_ms: Distribution
    schedule_delay_ms: Distribution
    output_tokens: Distribution
    prompt_tokens: Distribution
    tokens_per_chunk: Distribution
    output_tokens_source: dict[TokenSource, int] = Field(default_factory=dict)

    in_flight_cap_hits: int = 0
    max_in_flight: int = 0
    cpu_s: float = Field(0.0, description="load-generator CPU (all worker processes)")
    cpu_ms_per_request: float | None = None
    preemptions: int = Field(
        0, description="involuntary context switches of the workers: high = contended CPU"
    )
    worker_pids: list[int] = Field(default_factory=list)
    #: Per endpoint, when the load was spread over several (a service's replicas).
    endpoints: list[EndpointSummary] = Field(default_factory=list)
    operations: list[OperationSummary] = Field(
        default_factory=list,
        description="Per operation (search, upsert) of the measured requests; empty for a run "
        "of LLM generations only, whose one operation is the run itself.",
    )
    bytes_sent: int = Field(0, description="Request bytes sent by measured requests.")
    bytes_received: int = Field(0, description="Response bytes received by measured requests.")
    index_ready_s: float | None = Field(
        default=None,
        description="Vector ingest: seconds from the last upsert's response until the server "
        "reported its index built (null: nothing to wait for, not reported, or not built "
        "within 10 minutes).",
    )
    #: The server's side of the run (monitor samples), when the target is a service.
    server: ServerAggregates | None = None


class BenchSummary(BaseModel):
    """The whole benchmark; ``runs`` has one entry, or one per sweep stage."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    state: BenchState
    target: str
    backend: str
    model: str | None
    config: BenchConfig
    started_at: datetime
    finished_at: datetime
    runs: list[RunSummary]

    @field_serializer("config")
    def _config_without_key(self, config: BenchConfig, info: SerializationInfo) -> Any:
        """A summary says how a run was made, never with which key: its config is dumped
        without the wire context, so the API key stays masked even in ``bench.completed``
        (which every consumer receives and the events stream keeps on disk)."""
        return config.model_dump(mode=info.mode, by_alias=info.by_alias)


class WindowStats(BaseModel):
    """Counters since the run started plus rates and medians over the last window."""

    model_config = ConfigDict(frozen=True)

    run_index: int
    label: str
    elapsed_s: float
    window_s: float
    sent: int
    completed: int
    errors: int
    in_flight: int
    cap_hits: int
    window_completed: int
    window_errors: int
    request_rate: float  # completions per second in the window
    output_token_rate: float
    #: Window percentiles come from a DDSketch: within 1 % (relative) of the exact value.
    #: The final statistics are exact, from every record on disk.
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None
    e2el_p50_ms: float | None = None
    #: Time per output token after the first (decode speed), successful requests with N >= 2.
    tpot_p50_ms: float | None = None
    tpot_p99_ms: float | None = None
    #: Send time minus scheduled time, over every request sent in the window (failures
    #: included): near zero unless the generator or the in-flight cap holds sends back.
    schedule_delay_p50_ms: float | None = None
    schedule_delay_p99_ms: float | None = None
