"""Fixtures of the integration tests."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def jobs_dir() -> Iterator[Path]:
    """A job folder outside pytest's 0700 tmp tree: SLURM jobs run as root on the local
    cluster, and the shared-node tests' second user must be able to reach what it may."""
    path = Path(f"/tmp/aifactory-test-jobs-{os.getpid()}-{time.monotonic_ns()}")
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's chromium under Playwright, once for the session (see ``webkit.py``)."""
    from tests.integration.webkit import chromium

    with chromium() as found:
        yield found


@pytest.fixture(scope="session")
def web_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``aifactory up`` for the web page's tests, with the simulator recipe beside the test
    recipes; every service still running is stopped at the end."""
    import httpx

    from tests.integration.server_stack import aifactory_up
    from tests.integration.webkit import add_recipes, stop_services, wait_until

    env = {"AIFACTORY_HEALTH_INTERVAL": "0.3"}
    with aifactory_up(tmp_path_factory.mktemp("web"), env_extra=env) as stack:

        def healthy() -> bool:
            try:
                return httpx.get(f"{stack.ingress}/health", timeout=1).is_success
            except httpx.HTTPError:
                return False

        wait_until(healthy, 90, "the stack's ingress")
        add_recipes(stack)
        yield stack
        stop_services(stack)


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Screenshots of every page, kept in the test output."""
    from tests.integration.webkit import Shots

    return Shots(tmp_path_factory.mktemp("screenshots"))
