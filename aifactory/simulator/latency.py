"""The latency model and fault injection: pure arithmetic, unit-testable without a server.

TTFT is counted from the moment a request gets a running slot (queue time comes on top, as in
a real engine). Token ``i`` is due at ``slot_start + offsets[i]``; offsets are absolute, so a
late wake-up for one token never delays the next one.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from aifactory.simulator.config import SimulatorConfig


class Fault(enum.Enum):
    """What the simulator does to one request (decided when the request arrives)."""

    NONE = "none"
    ERROR = "http_500"
    CUT = "cut"


@dataclass(frozen=True, slots=True)
class OutputPlan:
    """How many tokens to generate and why generation stops."""

    tokens: int
    finish_reason: str  # "length" when the request's limit stopped it, else "stop"


class LatencyModel:
    """Turns the configuration into per-request token schedules."""

    __slots__ = ("_default", "_fixed", "_itl", "_jitter", "_prompt", "_rng", "_ttft")

    def __init__(self, config: SimulatorConfig) -> None:
        self._ttft = config.ttft_ms / 1000.0
        self._prompt = config.prompt_token_ms / 1000.0
        self._itl = config.itl_ms / 1000.0
        self._jitter = config.itl_jitter_ms / 1000.0
        self._fixed = config.output_tokens
        self._default = config.default_output_tokens
        # Separate stream from the fault injector so enabling jitter keeps error draws unchanged.
        self._rng = random.Random(f"jitter:{config.seed}")

    def ttft(self, prompt_tokens: int) -> float:
        """Seconds from getting a slot to the first token."""
        return self._ttft + self._prompt * prompt_tokens

    def plan(self, max_tokens: int | None, ignore_eos: bool) -> OutputPlan:
        """Answer length: fixed by ``--output-tokens``, else min(max_tokens, natural length).

        ``ignore_eos`` (a vLLM extension used by benchmarks) means "generate exactly
        max_tokens", as a real engine would.
        """
        if self._fixed is not None:
            hit_limit = max_tokens is not None and self._fixed >= max_tokens
            return OutputPlan(self._fixed, "length" if hit_limit else "stop")
        if max_tokens is None:
            return OutputPlan(self._default, "stop")
        if ignore_eos or max_tokens <= self._default:
            return OutputPlan(max_tokens, "length")
        return OutputPlan(self._default, "stop")

    def offsets(self, prompt_tokens: int, n: int) -> list[float]:
        """Due time of each of ``n`` tokens, in seconds after the slot was granted.

        Jitter is drawn independently per token (not accumulated) and never moves token 0, so
        configured TTFT and mean ITL stay exact; offsets are kept non-decreasing so tokens are
        never emitted out of order.
        """
        first = self.ttft(prompt_tokens)
        itl = self._itl
        jitter = self._jitter
        if not jitter:
            return [first + i * itl for i in range(n)]
        uniform = self._rng.uniform
        out = [first]
        prev = first
        for i in range(1, n):
            due = first + i * itl + uniform(-jitter, jitter)
            prev = due if due > prev else prev
            out.append(prev)
        return out


class FaultInjector:
    """Seeded per-request fault draws: a sequential client sees the same faults every run."""

    __slots__ = ("_cut", "_error", "_rng")

    def __init__(self, config: SimulatorConfig) -> None:
        self._error = config.error_rate
        self._cut = config.cut_rate
        self._rng = random.Random(f"faults:{config.seed}")

    def draw(self) -> Fault:
        if not self._error and not self._cut:
            return Fault.NONE
        u = self._rng.random()
        if u < self._error:
            return Fault.ERROR
        if u < self._error + self._cut:
            return Fault.CUT
        return Fault.NONE


def cut_point(n: int) -> int:
    """Index of the token at whose due time a cut stream is closed (half the tokens sent)."""
    return n // 2
