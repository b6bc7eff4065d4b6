"""``BenchConfig``: the workload contract — everything that defines a benchmark run.

The same model is the CLI's target, the ``workload`` of a ``bench.requested`` command and the
``config`` echoed in every summary, so a result file says exactly how it was produced.
Unknown keys are errors (a typo in a workload must not silently fall back to a default).
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

from pydantic import ConfigDict, Field, JsonValue, model_validator

from aifactory.shared.strict import StrictModel, WireSecret
from aifactory.shared.vectors import VectorMode, VectorWorkload


class ProfileKind(StrEnum):
    """How requests are issued over time (closed loop, open loop, or a sweep of both)."""

    SYNCHRONOUS = "synchronous"  # one request at a time
    CONCURRENCY = "concurrency"  # closed loop: N requests always in flight
    CONSTANT = "constant"  # open loop: evenly spaced sends at ``rate``
    POISSON = "poisson"  # open loop: gamma inter-arrivals (burstiness 1 = Poisson)
    SWEEP = "sweep"  # synchronous, then max throughput, then N rates in between


class RateType(StrEnum):
    """The open-loop arrival process used by the sweep's rate stages."""

    CONSTANT = "constant"
    POISSON = "poisson"


class DatasetFormat(StrEnum):
    SYNTHETIC = "synthetic"
    JSONL = "jsonl"
    SHAREGPT = "sharegpt"


class TokenDistribution(StrictModel):
    """A token-length distribution: normal(mean, std) rounded and clipped to [min, max]."""

    mean: int = Field(ge=1)
    std: float = Field(default=0.0, ge=0)
    min: int | None = Field(default=None, ge=1)
    max: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        lo = self.min if self.min is not None else 1
        hi = self.max if self.max is not None else self.mean * 10 + 1
        if not lo <= self.mean <= hi:
            raise ValueError(f"need min <= mean <= max, got min={lo} mean={self.mean} max={hi}")
        return self

    @property
    def low(self) -> int:
        return self.min if self.min is not None else 1

    @property
    def high(self) -> int:
        return self.max if self.max is not None else max(self.mean * 10, self.mean + 1)


class DatasetConfig(StrictModel):
    """Where prompts come from. File formats: see ``datasets/files.py``."""

    format: DatasetFormat = DatasetFormat.SYNTHETIC
    path: Path | None = None
    input_tokens: TokenDistribution = TokenDistribution(mean=128)
    #: Output lengths for synthetic prompts, and for file entries that do not give one.
    output_tokens: TokenDistribution = TokenDistribution(mean=64)

    @model_validator(mode="after")
    def _path_matches_format(self) -> Self:
        if self.format is DatasetFormat.SYNTHETIC and self.path is not None:
            raise ValueError("a dataset path needs format 'jsonl' or 'sharegpt'")
        if self.format is not DatasetFormat.SYNTHETIC and self.path is None:
            raise ValueError(f"dataset format {self.format.value!r} needs a path")
        return self


class SloConfig(StrictModel):
    """Service-level objectives; a request meets them if it meets every one set.

    Goodput counts successful requests meeting all the objectives; with none set it is not
    computed (``null`` in the summary). Latencies are in milliseconds (``e2el_ms`` is the
    whole response for non-streamed requests, vector operations included); ``recall`` is
    the least recall@k a search must reach (requests without a recall meet it), because
    for a vector database a fast answer that misses the true neighbours is a wrong one.
    """

    ttft_ms: float | None = Field(default=None, gt=0)
    tpot_ms: float | None = Field(default=None, gt=0)
    e2el_ms: float | None = Field(default=None, gt=0)
    recall: float | None = Field(default=None, gt=0, le=1)

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.ttft_ms, self.tpot_ms, self.e2el_ms, self.recall))


def default_workers() -> int:
    """One worker process per core: the load generator must not be the bottleneck."""
    return max(1, os.cpu_count() or 1)


_URL_PATTERN = r"^https?://[^\s/]+(/[^\s]*)?$"


class Workload(StrictModel):
    """One benchmark but its target: API, load profile, stop condition, data, SLOs, workers.

    This is the ``workload`` of a ``bench.requested`` command and of an API request; the
    target (a URL or a service id) travels beside it and is resolved by the client service.

    Stop: after ``duration_s`` of measured load or ``requests`` measured requests, whichever
    comes first; warmup comes on top and is excluded from the statistics. ``max_seconds`` is
    a hard bound on the whole run whatever else is set.
    """

    #: The one cross-field rule a JSON schema states plainly (clients and contract testers
    #: read it); the others are in ``_consistent`` and answer 422 naming the field.
    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["duration_s"]}, {"required": ["requests"]}]}
    )

    #: The API the target speaks: a registered load-generator backend (``openai_completions``,
    #: ``openai_chat``, ``ollama_generate``, ``chroma``, ``qdrant``, or a plugin's); checked
    #: where the load starts.
    backend: str = Field(default="openai_completions", pattern=r"^[a-z][a-z0-9_+-]{0,31}$")
    #: Model name sent in requests; ``None`` asks the target (first model it lists).
    model: str | None = None
    #: Bearer token for the target; travels on the bus, masked in every file and answer.
    api_key: WireSecret | None = None
    stream: bool = True
    #: vLLM/SGLang ``ignore_eos`` so outputs reach the requested length (OpenAI backends).
    ignore_eos: bool = True
    #: Extra JSON fields merged into every request body (temperature, top_p...).
    extra_body: dict[str, JsonValue] = Field(default_factory=dict)

    profile: ProfileKind = ProfileKind.SYNCHRONOUS
    rate: float | None = Field(default=None, gt=0, le=1_000_000)
    concurrency: int | None = Field(default=None, ge=1, le=100_000)
    burstiness: float = Field(default=1.0, gt=0, le=1000)
    sweep_rates: int = Field(default=5, ge=1, le=100)
    sweep_rate_type: RateType = RateType.CONSTANT

    duration_s: float | None = Field(default=None, gt=0, le=7 * 86400)
    requests: int | None = Field(default=None, ge=1, le=100_000_000)
    warmup_requests: int = Field(default=0, ge=0, le=10_000_000)
    warmup_s: float = Field(default=0.0, ge=0, le=86400)
    max_seconds: float = Field(default=6 * 3600.0, gt=0, le=7 * 86400)
    request_timeout_s: float = Field(default=300.0, gt=0, le=86400)
    #: Open-loop safety valve: sends wait for a slot beyond this many in flight (counted).
    max_in_flight: int = Field(default=2048, ge=1, le=1_000_000)

    workers: int = Field(default_factory=default_workers, ge=1, le=1024)
    seed: int = 0
    dataset: DatasetConfig = DatasetConfig()
    #: Vector-database operations and data (vector backends only; their default when unset).
    vector: VectorWorkload | None = None
    slo: SloConfig = SloConfig()
    #: Period of ``on_window`` callbacks (live metrics), seconds.
    window_s: float = Field(default=1.0, gt=0, le=3600)
    #: ``None``: ``workers`` local processes. N: the workers run as ONE batch job on N nodes
    #: (``workers`` per node) through the configured executor and report over NATS, so the
    #: load generator can outgrow one machine (see ``aifactory/loadgen/remote``).
    worker_nodes: int | None = Field(default=None, ge=1, le=1024)
    #: SLURM partition of the workers' job (default: the loadgen recipe's, then the site's).
    worker_partition: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.profile in (ProfileKind.CONSTANT, ProfileKind.POISSON) and self.rate is None:
            raise ValueError(f"profile {self.profile.value!r} needs 'rate' (requests/s)")
        if self.profile is ProfileKind.CONCURRENCY and self.concurrency is None:
            raise ValueError("profile 'concurrency' needs 'concurrency'")
        if self.warmup_requests and self.warmup_s:
            raise ValueError("give warmup by count ('warmup_requests') or time, not both")
        ingest = self.vector is not None and self.vector.mode is VectorMode.INGEST
        if self.duration_s is None and self.requests is None and not ingest:
            raise ValueError("give 'duration_s' or 'requests' (or both): a run must stop")
        if self.worker_partition is not None and self.worker_nodes is None:
            raise ValueError("'worker_partition' needs 'worker_nodes' (workers run locally)")
        return self

    def at(self, target: str, *more: str) -> BenchConfig:
        """This workload aimed at ``target`` and, spreading requests, ``more`` replicas
        (validated again: the URLs are checked there)."""
        return BenchConfig.model_validate({**dict(self), "target": target, "endpoints": list(more)})


class BenchConfig(Workload):
    """A workload with its target URL resolved: what the load generator runs."""

    target: str = Field(pattern=_URL_PATTERN, max_length=2000)
    #: Further base URLs of the same service (its other replicas). Requests go round-robin
    #: over ``target`` and these, one per request; the summary has each one's statistics.
    endpoints: list[Annotated[str, Field(pattern=_URL_PATTERN, max_length=2000)]] = Field(
        default_factory=list, max_length=4096
    )

    @property
    def base_url(self) -> str:
        return self.target.rstrip("/")

    @property
    def targets(self) -> list[str]:
        """Every base URL the load goes to, in round-robin order."""
        return [self.target, *self.endpoints]

    @property
    def workload(self) -> Workload:
        own = {"target", "endpoints"}
        return Workload.model_validate({k: v for k, v in dict(self).items() if k not in own})
