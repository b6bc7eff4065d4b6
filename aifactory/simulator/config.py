"""Simulator configuration: one validated pydantic model shared by the CLI and the tests.

Every knob of the latency model lives here so that a benchmark result can always be traced
back to the exact "true" latencies the simulator was told to produce.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class SimulatorConfigError(ValueError):
    """Raised when simulator options are invalid; the message names the option to fix."""


class SimulatorConfig(BaseModel):
    """Everything the simulator needs: where to listen, what to call itself, how slow to be."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8000, ge=0, le=65535, description="0 picks a free port")
    model: str = Field(default="simulator", min_length=1, description="served model name")
    ttft_ms: float = Field(default=20.0, ge=0, le=3_600_000)
    prompt_token_ms: float = Field(default=0.0, ge=0, le=60_000)
    itl_ms: float = Field(default=5.0, ge=0, le=3_600_000)
    itl_jitter_ms: float = Field(default=0.0, ge=0, le=3_600_000)
    output_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    default_output_tokens: int = Field(
        default=128,
        ge=1,
        le=1_000_000,
        description="natural answer length when neither --output-tokens nor ignore_eos apply",
    )
    max_running: int = Field(default=256, ge=1, le=1_000_000)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    cut_rate: float = Field(default=0.0, ge=0, le=1)
    seed: int = 0
    #: Serve dcgm-exporter's series for this many emulated GPUs (``gpus.py``), 0 for none.
    emulate_gpus: int = Field(default=0, ge=0, le=64)
    gpu_memory_mib: int = Field(default=81559, ge=1024, le=10_000_000)
    log_level: LogLevel = "info"
    #: Bearer token required on ``/v1/*`` (vLLM's ``--api-key``); the CLI takes it from
    #: ``VLLM_API_KEY`` only, never from its command line.
    api_key: SecretStr | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _rates_fit(self) -> SimulatorConfig:
        # One uniform draw decides a request's fate, so the two fractions must share [0, 1].
        if self.error_rate + self.cut_rate > 1.0:
            raise ValueError(
                f"error_rate + cut_rate must be <= 1 (got {self.error_rate} + {self.cut_rate})"
            )
        return self

    @classmethod
    def from_options(cls, **options: Any) -> SimulatorConfig:
        """Build from CLI-style keyword options, turning pydantic errors into one clear message."""
        try:
            return cls(**options)
        except ValidationError as exc:
            raise SimulatorConfigError(describe_errors(exc)) from exc


def describe_errors(exc: ValidationError) -> str:
    """Render validation errors as '--option: problem (got value)' lines, one per error."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"])
        option = f"--{loc.replace('_', '-')}" if loc else "options"
        got = err.get("input")
        shown = "" if loc == "" or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"invalid simulator option {option}: {err['msg']}{shown}")
    return "\n".join(lines)
