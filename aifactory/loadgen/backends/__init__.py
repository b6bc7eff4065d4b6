"""HTTP inference APIs the load generator speaks (see ``base.Backend``).

Each API is one module of this package that registers its class by name; a site's own
backend registers from anywhere (an ``aifactory.backends`` entry point, or any imported file).
"""

from __future__ import annotations

from typing import Any

from aifactory.loadgen.backends.base import BACKENDS, Backend, LineParser, ResponseState

__all__ = [
    "BACKENDS",
    "Backend",
    "LineParser",
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
) -> Backend:
    return BACKENDS.get(name)(
        model, stream=stream, ignore_eos=ignore_eos, extra_body=extra_body or {}
    )
