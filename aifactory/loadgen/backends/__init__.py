"""HTTP inference APIs the load generator speaks (see ``base.Backend``)."""

from __future__ import annotations

from typing import Any

from aifactory.loadgen.backends.base import Backend, LineParser, ResponseState
from aifactory.loadgen.backends.ollama import OllamaGenerate
from aifactory.loadgen.backends.openai import OpenAIChat, OpenAICompletions
from aifactory.shared.workload import BackendKind

__all__ = [
    "Backend",
    "LineParser",
    "OllamaGenerate",
    "OpenAIChat",
    "OpenAICompletions",
    "ResponseState",
    "backend_class",
    "make_backend",
]

_CLASSES: dict[BackendKind, type[Backend]] = {
    BackendKind.OPENAI_COMPLETIONS: OpenAICompletions,
    BackendKind.OPENAI_CHAT: OpenAIChat,
    BackendKind.OLLAMA_GENERATE: OllamaGenerate,
}


def backend_class(kind: BackendKind) -> type[Backend]:
    return _CLASSES[kind]


def make_backend(
    kind: BackendKind,
    model: str,
    *,
    stream: bool,
    ignore_eos: bool = True,
    extra_body: dict[str, Any] | None = None,
) -> Backend:
    return _CLASSES[kind](model, stream=stream, ignore_eos=ignore_eos, extra_body=extra_body or {})
