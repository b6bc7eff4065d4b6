"""Shared fixtures of the recipe tests: the shipped set, a minimal recipe, error helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aifactory.shared.recipes import RecipeError, deep_merge

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "recipes"

SHIPPED = {
    "inference/vllm-single-node",
    "inference/vllm-replicas",
    "inference/vllm-multinode",
    "inference/ollama",
    "inference/simulator",
    "vector-db/qdrant",
    "vector-db/chroma",
    "client/loadgen",
}

MINIMAL: dict[str, Any] = {
    "name": "t",
    "category": "inference",
    "runtime": "native",
    "command": ["server", "--port", "{port}"],
    "ports": {"http": 9000},
}


def errors_of(exc: pytest.ExceptionInfo[RecipeError]) -> dict[str, str]:
    return {e.path: e.reason for e in exc.value.errors}


def minimal(**changes: Any) -> dict[str, Any]:
    return deep_merge(MINIMAL, changes)
