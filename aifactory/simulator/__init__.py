"""Inference simulator: OpenAI- and Ollama-compatible endpoints with vLLM metrics.

Latencies are set, not measured: TTFT, inter-token latency, queueing (``max_running``) and
faults come from :class:`SimulatorConfig`, so the benchmark engine's measurements can be
checked against known truth, and CI can run whole experiments without a GPU.
"""

from aifactory.simulator.config import SimulatorConfig, SimulatorConfigError
from aifactory.simulator.server import Simulator, run, serve
from aifactory.simulator.tokens import count_tokens

__all__ = [
    "Simulator",
    "SimulatorConfig",
    "SimulatorConfigError",
    "count_tokens",
    "run",
    "serve",
]
