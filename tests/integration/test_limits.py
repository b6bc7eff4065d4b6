"""Every JetStream stream and KV bucket a running stack declares is bounded in age and size,
so a long-lived stack cannot fill the disk; the dead-letter stream included."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest

from aifactory.loadgen.remote.topology import ensure_work_topology
from aifactory.shared.credentials import load_credentials
from tests.integration.server_stack import aifactory_up

pytestmark = pytest.mark.nats


async def _stream_limits(url: str, user: str, password: str) -> dict[str, tuple[float, int]]:
    nc = await nats.connect(url, user=user, password=password)
    try:
        js = nc.jetstream()
        await ensure_work_topology(js)  # what the first remote benchmark adds
        return {
            info.config.name or "?": (info.config.max_age or 0.0, info.config.max_bytes or -1)
            for info in await js.streams_info()
        }
    finally:
        await nc.close()


def test_every_stream_and_bucket_has_an_age_and_a_size_limit(tmp_path: Path) -> None:
    with aifactory_up(tmp_path) as stack:
        credentials = load_credentials(Path(stack.env["AIFACTORY_STATE_DIR"]))
        assert credentials is not None
        limits = asyncio.run(
            _stream_limits(
                stack.env["AIFACTORY_NATS_URL"],
                credentials.nats_user,
                credentials.nats_password.get_secret_value(),
            )
        )
    expected = {"AIF_COMMANDS", "AIF_EVENTS", "AIF_DEADLETTER", "KV_aif_services"}
    assert expected <= set(limits), limits
    unbounded = {name: lim for name, lim in limits.items() if lim[0] <= 0 or lim[1] <= 0}
    assert not unbounded, f"streams without max age or max bytes: {unbounded}"
