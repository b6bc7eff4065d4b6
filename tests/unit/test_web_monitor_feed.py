"""The service page's live charts: scrapes become chart points, one per round of scrapes,
with stable series, stale targets left out and bounded memory."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from aifactory.monitor.figures import MEM_AVAILABLE, MEM_TOTAL
from aifactory.services.server.ingress.web import monitor_feed
from aifactory.services.server.ingress.web.monitor_feed import Board, history_points
from aifactory.shared.messages import MonitorSamples, ScrapeTarget, SeriesGroup
from aifactory.shared.messages.monitor import TargetRole

T0 = 1_700_000_000.0
CREATED = T0 - 100


def target(role: TargetRole, n: int = 0, node: str = "n1") -> ScrapeTarget:
    port = {"service": 8000, "node": 9100, "gpu": 9400}[role.value]
    return ScrapeTarget(
        key=f"s-{role.value}-{n}",
        url=f"http://{node}:{port}/metrics",
        service_id="s",
        recipe="inference/simulator",
        job_id="1",
        node=node,
        role=role,
    )


def samples(t: float, who: ScrapeTarget, *groups: SeriesGroup) -> MonitorSamples:
    return MonitorSamples(
        time=datetime.fromtimestamp(T0 + t, UTC),
        service_id="s",
        target=who,
        up=True,
        duration_s=0.01,
        size_bytes=100,
        groups=list(groups),
    )


def server(t: float, running: float, tokens: float) -> MonitorSamples:
    values = {
        "vllm:num_requests_running": running,
        "vllm:num_requests_waiting": 2.0,
        "vllm:kv_cache_usage_perc": 0.25,
        "vllm:generation_tokens_total": tokens,
        "vllm:prompt_tokens_total": 3 * tokens,
    }
    return samples(t, target(TargetRole.SERVICE), SeriesGroup(labels={}, values=values))


def gpu(t: float, index: str, util: float) -> MonitorSamples:
    labels = {"gpu": index, "Hostname": "n1"}
    values = {"DCGM_FI_DEV_GPU_UTIL": util, "DCGM_FI_DEV_FB_USED": 1000.0}
    return samples(t, target(TargetRole.GPU), SeriesGroup(labels=labels, values=values))


def node(t: float, idle: float, user: float) -> MonitorSamples:
    return samples(
        t,
        target(TargetRole.NODE),
        SeriesGroup(labels={"mode": "idle"}, values={"node_cpu_seconds_total": idle}),
        SeriesGroup(labels={"mode": "user"}, values={"node_cpu_seconds_total": user}),
        SeriesGroup(labels={}, values={MEM_TOTAL: 8 * 2**30, MEM_AVAILABLE: 2**31}),
    )


def test_each_round_of_scrapes_is_one_point_of_every_chart() -> None:
    board = Board(CREATED)
    rounds = [
        [server(0, 4, 1000), gpu(0.1, "0", 50), node(0.2, 100, 10)],
        [server(5, 6, 1500), gpu(5.1, "0", 70), node(5.2, 102, 18)],
    ]
    replayed = history_points(board, [m for r in rounds for m in r])
    assert len(replayed) == 1  # the last round may not be complete yet
    first, second = orjson.loads(replayed[0]), orjson.loads(board.point() or "{}")
    assert first["elapsed_s"] == 100.2  # the charts' zero is the service's creation
    assert first["values"]["requests"] == [4.0, 2.0]
    assert first["series"]["requests"] == ["running", "waiting"]
    assert first["values"]["kv_cache"] == [25.0] and first["units"]["kv_cache"] == "%"
    assert first["values"]["gpu_util"] == [50.0] and first["series"]["gpu_util"] == ["n1 GPU 0"]
    assert "tokens" not in first["values"]  # a rate needs two scrapes
    assert "node_cpu" not in first["values"]
    assert first["values"]["node_memory"] == [6.0]
    assert second["elapsed_s"] == 105.2
    assert second["values"]["tokens"] == [100.0, 300.0]  # 500 tokens in 5 s; prompt 3x
    assert second["values"]["node_cpu"] == [80.0]  # 8 of 10 CPU seconds busy
    assert second["values"]["gpu_util"] == [70.0]
    assert board.point() is None  # nothing new since


def test_a_gpu_seen_later_is_added_and_the_order_of_the_others_kept() -> None:
    board = Board(CREATED)
    board.add(gpu(0, "1", 10))
    first = orjson.loads(board.point() or "{}")
    assert first["series"]["gpu_util"] == ["n1 GPU 1"]
    board.add(gpu(1, "0", 20))
    board.add(gpu(1, "1", 30))
    second = orjson.loads(board.point() or "{}")
    assert second["series"]["gpu_util"] == ["n1 GPU 1", "n1 GPU 0"]
    assert second["values"]["gpu_util"] == [30.0, 20.0]


def test_a_target_that_stopped_answering_is_left_out_not_repeated() -> None:
    board = Board(CREATED)
    board.add(gpu(0, "0", 10))
    board.add(server(0, 1, 0))
    board.point()
    board.add(server(monitor_feed.STALE_S + 1, 3, 10))  # the GPU exporter went quiet
    point = orjson.loads(board.point() or "{}")
    assert point["values"]["requests"] == [3.0, 2.0]
    assert "gpu_util" not in point["values"]


def test_rows_kept_are_bounded_by_time() -> None:
    board = Board(CREATED)
    for t in range(0, 600, 5):
        board.add(server(t, 1, t))
    assert {r.time for r in board.rows} >= {T0 + 595, T0 + 595 - monitor_feed.LIVE_S}
    assert min(r.time for r in board.rows) >= T0 + 595 - monitor_feed.LIVE_S
    point = orjson.loads(board.point() or "{}")
    assert point["values"]["tokens"] == [1.0, 3.0]


def test_a_failed_scrape_alone_draws_nothing() -> None:
    board = Board(CREATED)
    down = server(0, 1, 1).model_copy(update={"up": False, "error": "refused", "groups": []})
    board.add(down)
    assert board.point() is None
