"""Where a backend's paths are appended: the target URL without a trailing ``/v1``."""

from __future__ import annotations

from aifactory.shared.workload import BackendKind


def base_url_for(target: str, backend: BackendKind) -> str:
    """``http://h:8000/v1/`` and ``http://h:8000`` both give ``http://h:8000`` for OpenAI."""
    base = target.rstrip("/")
    if backend is not BackendKind.OLLAMA_GENERATE and base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base
