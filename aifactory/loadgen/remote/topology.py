"""The stream and KV bucket remote workers use, declared by the coordinator before a run.

Kept apart from the services' shared topology: records of a big run are bulky and
short-lived, so they get their own stream (limits sized for them, purged per benchmark at
the end) instead of evicting events from ``AIF_EVENTS``. Work orders go to a KV bucket with
a one-day TTL, because they carry the target's API key; the coordinator also purges its
keys when the run ends.
"""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from aifactory.loadgen.remote import protocol
from aifactory.shared.subjects import stream_subjects

log = logging.getLogger(__name__)

DAY = 24 * 3600.0
#: Room for records not yet read: the coordinator purges what it has read as it goes.
WORK_STREAM_BYTES = 1024**3
#: A batch re-published within this window (lost PubAck, retry) is dropped by the stream.
DUPLICATE_WINDOW_S = 600.0


def work_stream_config() -> StreamConfig:
    return StreamConfig(
        name=protocol.BENCH_WORK_STREAM,
        subjects=stream_subjects(protocol.BENCH_WORK_STREAM, protocol.CHANNELS),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        max_age=DAY,
        max_bytes=WORK_STREAM_BYTES,
        # Refuse new records rather than drop unread ones: a worker's publish then fails
        # loudly, and the run fails with that reason instead of silently losing records.
        discard=DiscardPolicy.NEW,
    )


async def ensure_work_topology(js: JetStreamContext) -> KeyValue:
    """Create (or update) the work stream and return the work-order bucket."""
    config = work_stream_config()
    try:
        info = await js.stream_info(protocol.BENCH_WORK_STREAM)
    except NotFoundError:
        await js.add_stream(config)
        log.info("created stream %s", config.name)
    else:
        current = info.config
        if sorted(current.subjects or []) != sorted(config.subjects or []) or (
            current.duplicate_window != config.duplicate_window
        ):
            await js.update_stream(config)
    try:
        return await js.key_value(protocol.BENCH_WORK_BUCKET)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(
                bucket=protocol.BENCH_WORK_BUCKET,
                history=1,
                ttl=DAY,
                max_bytes=64 * 1024**2,
                storage=StorageType.FILE,
            )
        )


async def purge_read(js: JetStreamContext, benchmark_id: str, up_to_seq: int) -> None:
    """Drop a benchmark's stream messages before stream sequence ``up_to_seq`` (all read)."""
    await js.purge_stream(
        protocol.BENCH_WORK_STREAM, subject=protocol.bench_work_filter(benchmark_id), seq=up_to_seq
    )


async def purge_benchmark(js: JetStreamContext, benchmark_id: str) -> None:
    """Remove a benchmark's records, lifecycle messages and work orders (API key included)."""
    await js.purge_stream(
        protocol.BENCH_WORK_STREAM, subject=protocol.bench_work_filter(benchmark_id)
    )
    await js.purge_stream(
        f"KV_{protocol.BENCH_WORK_BUCKET}",
        subject=f"$KV.{protocol.BENCH_WORK_BUCKET}.{benchmark_id}.>",
    )
