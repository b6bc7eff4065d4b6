"""HTTP APIs the load generator speaks (see ``base.Backend``).

Each API is one module of this package that registers its class by name; a site's own
backend registers from anywhere (an ``aifactory.backends`` entry point, or any imported file).
LLM generation APIs subclass :class:`GenerationBackend`; vector databases subclass
:class:`~aifactory.loadgen.backends.vector.VectorBackend`.
"""

from __future__ import annotations

from typing import Any

from aifactory.loadgen.backends.base import (
    BACKENDS,
    Backend,
    GenerationBackend,
    LineParser,
    RequestKind,
    ResponseState,
)
from aifactory.loadgen.errors import ConfigError

__all__ = [
    "BACKENDS",
    "Backend",
    "GenerationBackend",
    "LineParser",
    "RequestKind",
    "ResponseState",
    "backend_class",
    "backend_names",
    "make_backend",
]


def backend_class(name: str) -> type[Backend]:
    """The registered backend ``name``; ``ExtensionError`` lists the known ones."""
    return BACKENDS.get(name)


def backend_names() -> list[str]:
    return BACKENDS.names()


def make_backend(
    name: str,
    model: str,
    *,
    stream: bool,
    ignore_eos: bool = True,
    extra_body: dict[str, Any] | None = None,
) -> GenerationBackend:
    """An LLM generation backend (``ConfigError`` for a backend of another kind)."""
    cls = BACKENDS.get(name)
    if not issubclass(cls, GenerationBackend):
        raise ConfigError(f"backend {name!r} is a {cls.kind.value} backend, not an LLM one")
    return cls(model, stream=stream, ignore_eos=ignore_eos, extra_body=extra_body or {})
