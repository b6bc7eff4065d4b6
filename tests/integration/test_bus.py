"""The bus helpers against a real nats-server: de-duplication, KV revisions, dead letters."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy

from aifactory.shared import subjects
from aifactory.shared.bus import decode_or_deadletter, ensure_topology, make_broker, publish
from aifactory.shared.messages import DeployRequested
from aifactory.shared.registry import KVRegistry, RecordExists, ServiceRecord
from aifactory.shared.settings import Settings

pytestmark = pytest.mark.nats


async def _stream_count(js, stream: str, subject: str) -> int:  # type: ignore[no-untyped-def]
    info = await js.stream_info(stream, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


async def test_topology_is_idempotent_and_commands_are_deduplicated(nats_server) -> None:  # type: ignore[no-untyped-def]
    broker = make_broker(Settings(nats_url=nats_server.url), name="test")
    await broker.connect()
    try:
        js = broker.connection.jetstream()
        await ensure_topology(js)
        await ensure_topology(js)  # second declaration: no error, same streams
        msg = DeployRequested(service_id="svc1", recipe="inference/simulator")
        await publish(broker, subjects.DEPLOY_REQUESTED, msg)
        await publish(broker, subjects.DEPLOY_REQUESTED, msg)  # re-sent: dropped
        other = DeployRequested(service_id="svc2", recipe="inference/simulator")
        await publish(broker, subjects.DEPLOY_REQUESTED, other)
        assert (
            await _stream_count(js, subjects.COMMANDS_STREAM, subjects.DEPLOY_REQUESTED.subject())
            == 2
        )
    finally:
        await broker.stop()


async def test_registry_compare_and_set_never_loses_a_write(nats_server) -> None:  # type: ignore[no-untyped-def]
    nc = await nats.connect(nats_server.url)
    try:
        topo = await ensure_topology(nc.jetstream())
        registry = KVRegistry(topo.services, ServiceRecord)
        record = ServiceRecord(
            service_id="s",
            recipe="inference/simulator",
            request_id="r",
            job_name="aif-s",
            executor="local",
            workdir="/tmp/x",
        )
        await registry.create("s", record)
        with pytest.raises(RecordExists):
            await registry.create("s", record)

        def add_node(name: str):  # type: ignore[no-untyped-def]
            def change(r: ServiceRecord) -> ServiceRecord:
                r.nodes.append(name)
                return r

            return change

        # 20 concurrent read-modify-writes: every one must survive.
        await asyncio.gather(*(registry.update("s", add_node(f"n{i}")) for i in range(20)))
        found = await registry.get("s")
        assert found is not None
        assert sorted(found[0].nodes) == sorted(f"n{i}" for i in range(20))
    finally:
        await nc.close()


async def test_malformed_message_is_dead_lettered_with_field_reason(nats_server) -> None:  # type: ignore[no-untyped-def]
    broker = make_broker(Settings(nats_url=nats_server.url), name="test")
    await broker.connect()
    try:
        js = broker.connection.jetstream()
        await ensure_topology(js)
        body = json.dumps({"service_id": "bad id!", "recipe": "inference/simulator"}).encode()
        decoded = await decode_or_deadletter(
            broker, body, DeployRequested, subject=subjects.DEPLOY_REQUESTED.subject(), consumer="t"
        )
        assert decoded is None
        sub = await js.subscribe(
            subjects.DEADLETTER.subject(subject=subjects.DEPLOY_REQUESTED.subject()),
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        letter = json.loads((await sub.next_msg(timeout=5)).data)
        assert letter["original_subject"] == subjects.DEPLOY_REQUESTED.subject()
        assert "service_id" in letter["reason"]
        assert "bad id!" in letter["payload"]
    finally:
        await broker.stop()
