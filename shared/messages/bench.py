"""Benchmark commands and events (client service)."""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from aifactory.shared.messages.base import ID_PATTERN, Message, Model
from aifactory.shared.results import BenchSummary, WindowStats
from aifactory.shared.states import BenchState
from aifactory.shared.workload import Workload

BENCHMARK_ID = Field(pattern=ID_PATTERN, description="The benchmark this is about.")


class BenchTarget(Model):
    """What to load: a deployed service (resolved through the registry) or any URL."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"oneOf": [{"required": ["service_id"]}, {"required": ["url"]}]},
    )

    service_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="A deployed service: its endpoints are looked up when the run starts.",
    )
    url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s]+$",
        max_length=2000,
        description="Any OpenAI/Ollama-compatible base URL.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> BenchTarget:
        if (self.service_id is None) == (self.url is None):
            raise ValueError("give exactly one of service_id or url")
        return self


class BenchRequested(Message):
    """Run a benchmark; idempotent by ``benchmark_id``."""

    benchmark_id: str = Field(
        pattern=ID_PATTERN,
        description="Chosen by the requester; a repeat with a known id is ignored.",
    )
    target: BenchTarget = Field(description="What to load.")
    workload: Workload = Field(description="Profile, stop condition, dataset, SLOs, workers.")


class BenchCancel(Message):
    """Stop a benchmark; the records so far are kept and reported."""

    benchmark_id: str = BENCHMARK_ID


class BenchStarted(Message):
    """The target is resolved and checked; load begins."""

    benchmark_id: str = BENCHMARK_ID
    target_url: str = Field(description="The URL the load goes to (resolved from a service).")


class BenchMetrics(Message):
    """A window of live figures (not the final statistics: those are in the summary)."""

    benchmark_id: str = BENCHMARK_ID
    window: WindowStats = Field(description="Counters, rates and medians of the last window.")


class BenchCompleted(Message):
    """The run ended by itself or was cancelled; its results are written."""

    benchmark_id: str = BENCHMARK_ID
    state: BenchState = Field(
        description="completed, cancelled, or interrupted (its process died; records kept)."
    )
    summary: BenchSummary | None = Field(
        default=None, description="Every statistic; none when cancelled before any load."
    )
    reason: str | None = Field(default=None, description="Why it stopped early, if it did.")
    results_dir: str = Field(description="Folder with summary.json, records, the report.")


class BenchFailed(Message):
    """The benchmark could not run, or broke off; the reason says why."""

    benchmark_id: str = BENCHMARK_ID
    reason: str = Field(description="Field path and cause (a bad workload), or the error.")
