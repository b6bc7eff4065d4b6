"""Failures: counted by type, never in latencies; bad targets and files fail before the run."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from aifactory.loadgen import (
    BenchConfig,
    DatasetError,
    PreflightError,
    RequestRecord,
    WorkerProgress,
    WorkerSpec,
    run_benchmark,
    run_worker,
)
from aifactory.loadgen.datasets import EstimateTokenCounter
from aifactory.loadgen.scheduler import plan_for_profile
from aifactory.shared.results import ErrorType, TokenSource
from tests.integration.test_loadgen_simfixture import running


def _config(url: str, **kw: Any) -> BenchConfig:
    base: dict[str, Any] = {"target": url, "workers": 1, "request_timeout_s": 10}
    base.update(kw)
    return BenchConfig.model_validate(base)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _assert_failures_apart(result_records: list[RequestRecord]) -> None:
    for r in result_records:
        if r.error is not None:
            assert r.ttft_ms is None and r.e2e_ms is None and r.itl_ms == [] and r.tpot_ms is None


async def test_http_5xx_and_stream_cuts_are_counted_by_type() -> None:
    args = ("--ttft-ms", "2", "--itl-ms", "1", "--output-tokens", "16")
    with running(*args, "--error-rate", "0.15", "--cut-rate", "0.15", "--seed", "3") as sim:
        result = await run_benchmark(
            _config(sim.url, profile="concurrency", concurrency=4, requests=200)
        )
    run = result.summary.runs[0]
    assert run.requests_sent == 200
    assert set(run.failures) == {ErrorType.HTTP_5XX, ErrorType.STREAM_CUT}
    assert 10 <= run.failures[ErrorType.HTTP_5XX] <= 55
    assert 10 <= run.failures[ErrorType.STREAM_CUT] <= 55
    assert run.requests_ok + sum(run.failures.values()) == 200
    assert run.ttft_ms.count == run.e2el_ms.count == run.requests_ok
    assert run.output_tokens.max == 16.0  # a cut stream never counts as a (short) success
    _assert_failures_apart(result.records)
    assert all(r.http_status == 500 for r in result.records if r.error is ErrorType.HTTP_5XX)


async def test_timeouts_are_counted() -> None:
    with running("--ttft-ms", "1500", "--itl-ms", "1", "--output-tokens", "4") as sim:
        started = time.monotonic()
        result = await run_benchmark(_config(sim.url, requests=3, request_timeout_s=0.3))
    run = result.summary.runs[0]
    assert run.failures == {ErrorType.TIMEOUT: 3}
    assert run.ttft_ms.count == 0
    assert time.monotonic() - started < 1.5 + 3 * 0.3 + 3  # probe waits once, requests do not


async def test_refused_connections_mid_run() -> None:
    with running("--ttft-ms", "2", "--itl-ms", "1", "--output-tokens", "8") as sim:

        async def kill_soon() -> None:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(sim.stop)

        killer = asyncio.create_task(kill_soon())
        cfg = _config(sim.url, profile="constant", rate=40, duration_s=2.5)
        result = await run_benchmark(cfg)
        await killer
    run = result.summary.runs[0]
    assert run.requests_ok > 10
    assert run.failures.get(ErrorType.CONNECTION_REFUSED, 0) > 10
    assert run.ttft_ms.count == run.requests_ok
    _assert_failures_apart(result.records)


async def test_worker_entry_records_refused_connections_without_preflight() -> None:
    cfg = _config(f"http://127.0.0.1:{_closed_port()}", model="m", requests=3)
    batches: list[list[RequestRecord]] = []

    class Sink:
        async def emit(self, records: list[RequestRecord], progress: WorkerProgress) -> None:
            batches.append(records)

    spec = WorkerSpec(config=cfg, plan=plan_for_profile(cfg), worker_id=0, n_workers=1)
    report = await run_worker(spec, Sink(), asyncio.Event(), start_ns=time.perf_counter_ns())
    records = [r for b in batches for r in b]
    assert report.sent == 3 and len(records) == 3
    assert {r.error for r in records} == {ErrorType.CONNECTION_REFUSED}


async def test_unreachable_target_fails_before_the_run() -> None:
    port = _closed_port()
    started = time.monotonic()
    with pytest.raises(
        PreflightError,
        match=rf"cannot reach http://127.0.0.1:{port}/v1/models: .*connection refused",
    ):
        await run_benchmark(_config(f"http://127.0.0.1:{port}", requests=5))
    assert time.monotonic() - started < 5


@dataclass
class HandServer:
    url: str
    modes: dict[str, str]


@pytest.fixture
async def hand_server() -> AsyncIterator[HandServer]:
    """A tiny real server whose answer depends on the prompt (see ``complete``)."""

    async def models(request: web.Request) -> web.Response:
        if modes["models"] == "garbage":
            return web.Response(text="hello, I am not an API")
        return web.json_response({"data": [{"id": "hand"}]})

    async def complete(request: web.Request) -> web.StreamResponse:
        modes["authorization"] = request.headers.get("Authorization", "")
        prompt = (await request.json())["prompt"]
        if prompt == "http400":
            return web.json_response({"error": "bad prompt"}, status=400)
        if modes["completions"] == "plain":
            return web.Response(text="oops")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def event(obj: Any) -> None:
            await resp.write(b"data: " + json.dumps(obj).encode() + b"\n\n")

        for word in ("one", " two", " three"):
            await event({"choices": [{"index": 0, "text": word}]})
            await asyncio.sleep(0.002)
        if prompt == "garbage":
            await resp.write(b"data: {not json\n\n")
        elif prompt == "error":
            await event({"error": {"message": "boom"}})
        elif prompt != "nousage":
            await event({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 3}})
        await resp.write(b"data: [DONE]\n\n")
        return resp

    modes = {"models": "ok", "completions": "sse"}
    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", complete)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield HandServer(f"http://127.0.0.1:{port}", modes)
    finally:
        await runner.cleanup()


async def test_invalid_stream_error_object_4xx_and_no_usage(
    hand_server: HandServer, tmp_path: Path
) -> None:
    prompts = ["ok", "garbage", "error", "http400", "nousage"]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "output_tokens": 3}) + "\n" for p in prompts))
    cfg = _config(
        hand_server.url, requests=5, api_key="sk-x", dataset={"format": "jsonl", "path": str(path)}
    )
    result = await run_benchmark(cfg)
    by_prompt = {prompts[r.prompt_index]: r for r in result.records}
    assert by_prompt["ok"].ok and by_prompt["ok"].output_tokens_source is TokenSource.USAGE
    assert by_prompt["garbage"].error is ErrorType.INVALID_RESPONSE
    assert by_prompt["error"].error is ErrorType.STREAM_ERROR
    assert "boom" in (by_prompt["error"].error_message or "")
    assert by_prompt["http400"].error is ErrorType.HTTP_4XX
    assert by_prompt["http400"].http_status == 400
    nousage = by_prompt["nousage"]
    assert nousage.ok and nousage.output_tokens_source is TokenSource.ESTIMATE
    assert nousage.output_tokens == EstimateTokenCounter().count("one two three") == 3
    run = result.summary.runs[0]
    assert run.output_tokens_source == {TokenSource.USAGE: 1, TokenSource.ESTIMATE: 1}
    assert hand_server.modes["authorization"] == "Bearer sk-x"
    assert run.ttft_ms.count == 2


async def test_malformed_targets_fail_before_the_run(hand_server: HandServer) -> None:
    url = hand_server.url
    hand_server.modes["models"] = "garbage"
    with pytest.raises(PreflightError, match="malformed model list"):
        await run_benchmark(_config(url, requests=1))
    hand_server.modes.update(models="ok", completions="plain")
    with pytest.raises(PreflightError, match=r"/v1/completions gave a .* response.*--backend"):
        await run_benchmark(_config(url, requests=1))
    with pytest.raises(PreflightError, match=r"chat/completions answered HTTP 404.*--backend"):
        await run_benchmark(_config(url, requests=1, backend="openai_chat", model="x"))


async def test_bad_workload_file_fails_before_any_request(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    path.write_text('{"prompt": "a"}\n{"prompt": "b", "output_tokens": "many"}\n')
    cfg = _config(
        f"http://127.0.0.1:{_closed_port()}",
        requests=1,
        dataset={"format": "jsonl", "path": str(path)},
    )
    with pytest.raises(DatasetError, match=r"w.jsonl:2: field 'output_tokens'"):
        await run_benchmark(cfg)
