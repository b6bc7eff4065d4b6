"""Pick the executor the settings name, so services never branch on the executor kind."""

from __future__ import annotations

from aifactory.shared.executors.base import EXECUTORS, Executor
from aifactory.shared.settings import Settings


def make_executor(settings: Settings) -> Executor:
    """The registered executor named by ``settings.executor``, built from the settings."""
    return EXECUTORS.get(settings.executor).from_settings(settings)


def executor_names() -> list[str]:
    return EXECUTORS.names()
