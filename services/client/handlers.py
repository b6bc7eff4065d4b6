"""FastStream subscribers of the client service: one handler per command subject."""

from __future__ import annotations

from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsMessage, NatsRouter, PullSub

from services.client.runs import BenchmarkRuns
from shared import subjects
from shared.bus import decode_or_deadletter
from shared.messages import BenchCancel, BenchRequested
from shared.settings import Settings

CONSUMER = "client"


def build_router(settings: Settings, runs: BenchmarkRuns) -> NatsRouter:
    router = NatsRouter()
    commands = JStream(subjects.COMMANDS_STREAM, declare=False)

    def consumer(durable: str) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=durable,
            ack_wait=settings.command_ack_wait,
            max_deliver=settings.command_max_deliver,
        )

    @router.subscriber(
        subjects.BENCH_REQUESTED,
        stream=commands,
        durable="client-bench-requested",
        config=consumer("client-bench-requested"),
        pull_sub=PullSub(batch_size=4, timeout=1.0),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="client/bench.requested",
        description="Start a benchmark run; idempotent by benchmark id.",
    )
    async def on_bench_requested(msg: NatsMessage) -> None:
        cmd = await decode_or_deadletter(
            runs.broker,
            msg.body,
            BenchRequested,
            subject=subjects.BENCH_REQUESTED,
            consumer=CONSUMER,
        )
        if cmd is None:
            runs.metrics.deadletters.labels(subjects.BENCH_REQUESTED).inc()
            return
        await runs.request(cmd)

    @router.subscriber(
        subjects.BENCH_CANCEL,
        stream=commands,
        durable="client-bench-cancel",
        config=consumer("client-bench-cancel"),
        pull_sub=PullSub(batch_size=4, timeout=1.0),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="client/bench.cancel",
        description="Stop a running benchmark; partial results are kept and marked cancelled.",
    )
    async def on_bench_cancel(msg: NatsMessage) -> None:
        cmd = await decode_or_deadletter(
            runs.broker, msg.body, BenchCancel, subject=subjects.BENCH_CANCEL, consumer=CONSUMER
        )
        if cmd is None:
            runs.metrics.deadletters.labels(subjects.BENCH_CANCEL).inc()
            return
        await runs.cancel(cmd)

    return router
