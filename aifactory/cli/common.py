"""Helpers shared by CLI commands: settings, errors as clean messages, async entry."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer
from rich.console import Console

from aifactory.shared.localstack import local_settings
from aifactory.shared.settings import Settings, load_settings

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)


def settings() -> Settings:
    """The user's settings, completed from their running stack (URLs, credentials)."""
    return local_settings(load_settings())


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)
