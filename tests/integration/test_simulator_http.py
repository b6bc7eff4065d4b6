"""The simulator as a real process on 127.0.0.1, driven by real HTTP clients.

Every simulator here is a subprocess started with ``python -m aifactory.simulator`` and
stopped with SIGTERM (exit status 0 is asserted), exactly as the local executor runs it.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator

import aiohttp
import openai
import pytest

from aifactory.simulator.harness import (
    SimulatorProcess,
    fetch_metrics,
    metric_sample,
    raw_exchange,
    sse_payloads,
    timed_stream,
    timing_problems,
)
from aifactory.simulator.tokens import count_tokens
from tests.conftest import need_tool

CHAT = {"model": "simulator", "messages": [{"role": "user", "content": "Hello there, simulator!"}]}
PROMPT_TOKENS = count_tokens("Hello there, simulator!")


@pytest.fixture(scope="module")
def fast() -> Iterator[str]:
    with SimulatorProcess("--ttft-ms", "2", "--itl-ms", "1", "--seed", "1") as sim:
        yield sim.url


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def usage(p: int, c: int) -> dict[str, int]:
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def sample(text: str, name: str, **labels: str) -> float:
    """One sample of the simulator's metrics (``model_name="simulator"`` implied)."""
    return metric_sample(text, name, **{"model_name": "simulator", "engine": "0", **labels})


# -- OpenAI shapes ---------------------------------------------------------------------------
async def test_streaming_chat_shape_usage_and_done(fast: str) -> None:
    body = {**CHAT, "stream": True, "max_tokens": 6, "stream_options": {"include_usage": True}}
    url = f"{fast}/v1/chat/completions"
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers["Transfer-Encoding"] == "chunked"
        events = sse_payloads(await resp.text())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) == 1 + 6 + 1  # role, one per token, usage
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    tokens = [c["choices"][0]["delta"]["content"] for c in chunks[1:7]]
    assert all(tokens)
    assert chunks[6]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == usage(PROMPT_TOKENS, 6)
    assert count_tokens("".join(tokens)) == 6


async def test_streaming_completions_shape(fast: str) -> None:
    body = {"model": "simulator", "prompt": "Once upon a time", "max_tokens": 5, "stream": True}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fast}/v1/completions", json=body) as resp:
            assert resp.status == 200
            events = sse_payloads(await resp.text())
        body["stream_options"] = {"include_usage": True}
        async with session.post(f"{fast}/v1/completions", json=body) as resp:
            with_usage = sse_payloads(await resp.text())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) == 5
    assert all(c["object"] == "text_completion" and c["id"].startswith("cmpl-") for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 4 + ["length"]
    last = json.loads(with_usage[-2])
    assert last["choices"] == [] and last["usage"] == usage(4, 5)
    # Same seed, same prompt: the same text both times.
    assert [json.loads(e)["choices"][0]["text"] for e in with_usage[:5]] == [
        c["choices"][0]["text"] for c in chunks
    ]


async def test_non_streaming_chat_and_completion(fast: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fast}/v1/chat/completions", json={**CHAT, "max_tokens": 9}) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "application/json"
            chat = await r.json()
        body = {"model": "simulator", "prompt": [1, 2, 3], "max_completion_tokens": 3}
        async with session.post(f"{fast}/v1/completions", json={**body, "max_tokens": 4}) as r:
            completion = await r.json()
    assert chat["object"] == "chat.completion"
    message = chat["choices"][0]["message"]
    assert message["role"] == "assistant" and count_tokens(message["content"]) == 9
    assert chat["usage"] == usage(PROMPT_TOKENS, 9)
    assert completion["object"] == "text_completion"
    assert count_tokens(completion["choices"][0]["text"]) == 4
    assert completion["usage"]["prompt_tokens"] == 3


async def test_models_health_and_unknown_paths(fast: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{fast}/v1/models") as r:
            models = await r.json()
        async with session.get(f"{fast}/api/tags") as r:
            tags = await r.json()
        async with session.get(f"{fast}/no/such/path") as r:
            assert r.status == 404 and "error" in await r.json()
        async with session.get(f"{fast}/v1/chat/completions") as r:
            assert r.status == 405
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["simulator"]
    assert [m["name"] for m in tags["models"]] == ["simulator"]


MSG = b'"messages": [{"role": "u", "content": "x"}]'
BAD_REQUESTS = [
    ("/v1/chat/completions", b"{not json", None),
    ("/v1/chat/completions", b'{"messages": "hi"}', "messages"),
    ("/v1/chat/completions", b'{"messages": [{"role": "u", "content": 1}]}', "messages.0.content"),
    ("/v1/chat/completions", b'{%s, "max_tokens": "8"}' % MSG, "max_tokens"),
    ("/v1/chat/completions", b'{%s, "stream": 1}' % MSG, "stream"),
    ("/v1/completions", b'{"prompt": {"a": 1}}', "prompt"),
    ("/v1/completions", b'{"prompt": "x", "stream_options": {"include_usage": "y"}}',
     "stream_options.include_usage"),
    ("/api/generate", b'{"model": "simulator", "options": {"num_predict": "x"}}',
     "options.num_predict"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "payload", "field"), BAD_REQUESTS)
async def test_bad_requests_are_400_naming_the_field(
    fast: str, path: str, payload: bytes, field: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fast}{path}", data=payload, headers=headers) as r,
    ):
        assert r.status == 400
        error = (await r.json())["error"]
    if path.startswith("/api/"):  # Ollama's shape: {"error": "message"}
        assert isinstance(error, str) and f"{field}:" in error
        return
    assert error["code"] == 400 and error["type"] == "BadRequestError"
    assert error["param"] == field
    assert f"{field}:" in error["message"] if field else "JSON" in error["message"]


# -- Ollama ----------------------------------------------------------------------------------
async def test_ollama_generate_and_chat_ndjson(fast: str) -> None:
    question = "Why is the sky blue?"
    gen = {"model": "simulator", "prompt": question, "options": {"num_predict": 4}}
    chat = {"model": "simulator", "messages": CHAT["messages"], "options": {"num_predict": 3}}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fast}/api/generate", json=gen) as r:
            assert r.headers["Content-Type"] == "application/x-ndjson"
            lines = (await r.read()).decode().splitlines()
        async with session.post(f"{fast}/api/chat", json=chat) as r:
            chat_lines = (await r.read()).decode().splitlines()
        async with session.post(f"{fast}/api/chat", json={**chat, "stream": False}) as r:
            whole = await r.json()
    objs = [json.loads(line) for line in lines]
    assert [o["done"] for o in objs] == [False] * 4 + [True]
    final = objs[-1]
    assert final["eval_count"] == 4 and final["prompt_eval_count"] == count_tokens(question)
    assert final["done_reason"] == "length"
    assert final["total_duration"] >= final["eval_duration"] > 0
    assert count_tokens("".join(o["response"] for o in objs)) == 4
    chat_objs = [json.loads(line) for line in chat_lines]
    assert len(chat_objs) == 4 and chat_objs[-1]["done"] is True
    assert all(o["message"]["role"] == "assistant" for o in chat_objs)
    assert whole["done"] is True and whole["eval_count"] == 3
    assert count_tokens(whole["message"]["content"]) == 3


# -- HTTP/1.1 behaviour ----------------------------------------------------------------------
async def test_keep_alive_and_pipelining(fast: str) -> None:
    body = json.dumps({**CHAT, "max_tokens": 2, "stream": True}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    last = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    data = await asyncio.to_thread(raw_exchange, port_of(fast), request + request + last)
    responses = data.split(b"HTTP/1.1 200 OK")
    assert len(responses) == 4 and responses[3].endswith(b"connection: close\r\n\r\n")
    for stream in responses[1:3]:  # in order, each complete: [DONE], then the zero chunk
        assert stream.count(b"data: [DONE]") == 1 and stream.endswith(b"\r\n0\r\n\r\n")


async def test_malformed_http_is_400_and_huge_bodies_413(fast: str) -> None:
    garbage = await asyncio.to_thread(raw_exchange, port_of(fast), b"NOT HTTP AT ALL\r\n\r\n")
    assert garbage.startswith(b"HTTP/1.1 400 ") and b"connection: close" in garbage
    huge = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n"
    refused = await asyncio.to_thread(raw_exchange, port_of(fast), huge)
    assert refused.startswith(b"HTTP/1.1 413 ")


async def test_sigterm_mid_stream_exits_cleanly() -> None:
    sim = SimulatorProcess("--ttft-ms", "1", "--itl-ms", "50")
    sim.start()
    try:
        async with aiohttp.ClientSession() as session:
            body = {**CHAT, "stream": True, "max_tokens": 100}
            async with session.post(f"{sim.url}/v1/chat/completions", json=body) as resp:
                await resp.content.readline()
                t0 = time.monotonic()
                sim.signal(signal.SIGTERM)
                with pytest.raises(aiohttp.ClientPayloadError):
                    await resp.read()  # the stream is cut, not left hanging
    finally:
        sim.stop()  # a second SIGTERM during shutdown must not spoil the exit status
    assert time.monotonic() - t0 < 2


async def test_openai_package_streams_with_usage(fast: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{fast}/v1", api_key="unused", max_retries=0)
    try:
        stream = await client.chat.completions.create(
            model="simulator",
            messages=[{"role": "user", "content": "Hello there, simulator!"}],
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces: list[str] = []
        usage = None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                usage = chunk.usage
        plain = await client.completions.create(model="simulator", prompt="a b c", max_tokens=3)
    finally:
        await client.close()
    assert usage is not None
    assert usage.completion_tokens == len(pieces) == count_tokens("".join(pieces)) == 12
    assert usage.prompt_tokens == PROMPT_TOKENS
    assert plain.usage is not None and plain.usage.completion_tokens == 3


# -- metrics ---------------------------------------------------------------------------------
async def test_metrics_count_exactly_and_pass_promtool(fast: str) -> None:
    before = await fetch_metrics(fast)
    async with aiohttp.ClientSession() as session:
        for n in (3, 5):
            async with session.post(f"{fast}/v1/chat/completions", json={**CHAT, "max_tokens": n}):
                pass
        async with session.get(f"{fast}/metrics") as r:
            assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            after = await r.text()
    for name, delta in (
        ("vllm:generation_tokens_total", 8),
        ("vllm:prompt_tokens_total", 2 * PROMPT_TOKENS),
        ("vllm:time_to_first_token_seconds_count", 2),
        ("vllm:e2e_request_latency_seconds_count", 2),
        ("vllm:inter_token_latency_seconds_count", 2 + 4),
    ):
        assert sample(after, name) - sample(before, name) == delta, name
    success = "vllm:request_success_total"
    assert (
        sample(after, success, finished_reason="length")
        - sample(before, success, finished_reason="length")
        == 2
    )
    for gauge in ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc"):
        assert f"# TYPE vllm:{gauge} gauge" in after.splitlines()  # types: see unit tests
    promtool = need_tool("promtool")
    check = subprocess.run(
        [promtool, "check", "metrics"], input=after.encode(), capture_output=True, timeout=30
    )
    # Exit 1 = unparsable exposition. Exit 3 = lint findings only: vLLM's own names contain ':'
    # (reserved by convention for recording rules), which promtool flags on a real vLLM too;
    # that finding is accepted for vllm:* names and nothing else is.
    report = (check.stdout + check.stderr).decode()
    assert check.returncode in (0, 3), report
    findings = [line for line in report.splitlines() if line.strip()]
    allowed = re.compile(r"vllm:\w+ metric names should not contain ':'")
    assert all(allowed.fullmatch(line) for line in findings), report
    assert check.returncode == 0 or findings


# -- queueing ----------------------------------------------------------------------------------
async def test_max_running_queues_the_excess_fifo() -> None:
    with SimulatorProcess("--ttft-ms", "200", "--itl-ms", "0", "--output-tokens", "1",
                   "--max-running", "2") as sim:  # fmt: skip
        url = sim.url

        async def one(session: aiohttp.ClientSession, delay: float) -> float:
            await asyncio.sleep(delay)  # fixes the arrival order
            t0 = time.monotonic()
            async with session.post(
                f"{url}/v1/chat/completions", json={**CHAT, "stream": True}
            ) as r:
                async for line in r.content:
                    if b'"content":"' in line and b'"content":""' not in line:
                        return time.monotonic() - t0
            raise AssertionError("no token received")

        connector = aiohttp.TCPConnector(limit=10)
        async with aiohttp.ClientSession(connector=connector) as session:
            tasks = [asyncio.create_task(one(session, i * 0.01)) for i in range(4)]
            await asyncio.sleep(0.12)
            during = await fetch_metrics(url)
            ttfts = await asyncio.gather(*tasks)
        after = await fetch_metrics(url)
    assert sample(during, "vllm:num_requests_running") == 2
    assert sample(during, "vllm:num_requests_waiting") == 2
    assert sample(during, "vllm:kv_cache_usage_perc") == 1.0
    assert sample(after, "vllm:num_requests_waiting") == 0
    assert all(0.19 < t < 0.23 for t in ttfts[:2]), ttfts
    # Later requests wait for a slot (~200 ms, minus their 10-30 ms later arrival), then 200 ms.
    assert all(0.36 < t < 0.43 for t in ttfts[2:]), ttfts


async def test_disconnect_aborts_and_frees_the_slot() -> None:
    with SimulatorProcess("--ttft-ms", "1", "--itl-ms", "20", "--max-running", "1") as sim:
        url = f"{sim.url}/v1/chat/completions"
        async with aiohttp.ClientSession() as session:
            resp = await session.post(url, json={**CHAT, "stream": True, "max_tokens": 50})
            await resp.content.readline()
            resp.close()  # drop the connection mid-stream
            await asyncio.sleep(0.05)
            t0 = time.monotonic()
            async with session.post(url, json={**CHAT, "max_tokens": 2}) as r:
                assert r.status == 200
            waited = time.monotonic() - t0
        text = await fetch_metrics(sim.url)
    assert waited < 0.2  # not the ~1 s the aborted stream would have held the only slot
    assert sample(text, "vllm:request_success_total", finished_reason="abort") == 1
    assert sample(text, "vllm:num_requests_running") == 0


# -- faults ----------------------------------------------------------------------------------
async def test_error_and_cut_injection_counts() -> None:
    n = 120
    with SimulatorProcess("--ttft-ms", "0", "--itl-ms", "0", "--output-tokens", "10",
                   "--error-rate", "0.25", "--cut-rate", "0.25", "--seed", "5") as sim:  # fmt: skip
        url = sim.url
        ok = errors = cuts = 0
        async with aiohttp.ClientSession() as session:
            for _ in range(n):
                body = {**CHAT, "stream": True}
                try:
                    async with session.post(f"{url}/v1/chat/completions", json=body) as r:
                        if r.status == 500:
                            assert (await r.json())["error"]["code"] == 500
                            errors += 1
                            continue
                        assert r.status == 200 and "[DONE]" in await r.text()
                        ok += 1
                except aiohttp.ClientPayloadError:
                    cuts += 1
        metrics = await fetch_metrics(url)
    assert ok + errors + cuts == n
    assert sample(metrics, "simulator_injected_faults_total", kind="http_500") == errors
    assert sample(metrics, "simulator_injected_faults_total", kind="cut") == cuts
    assert sample(metrics, "vllm:request_success_total", finished_reason="stop") == ok
    assert 0.12 * n < errors < 0.38 * n and 0.12 * n < cuts < 0.38 * n


# -- timing ------------------------------------------------------------------------------------
async def test_measured_ttft_and_itl_match_the_configuration() -> None:
    # A busy shared box can delay the client by several ms; a wrong server fails every attempt.
    # (TTFT judged on the best of 5 streams, mean ITL per stream, TPOT on the median stream.)
    attempts: list[list[str]] = []
    with SimulatorProcess("--ttft-ms", "50", "--itl-ms", "5", "--output-tokens", "64") as sim:
        for _ in range(3):
            runs = [await timed_stream(sim.port, CHAT) for _ in range(5)]
            problems = timing_problems(runs, ttft_ms=50, itl_ms=5, tokens=64)
            if not problems:
                break
            attempts.append(problems)
        text = await fetch_metrics(sim.url)
    assert len(attempts) < 3, "timing off in 3 attempts:\n" + "\n".join(map(str, attempts))
    # The server's own self-check agrees: its median token write was < 0.5 ms late.
    count = sample(text, "simulator_emission_lateness_seconds_count")
    assert 0.9 * 320 <= count <= 320 * (len(attempts) + 1)  # one per write; late ones coalesce
    on_time = sample(text, "simulator_emission_lateness_seconds_bucket", le="0.0005")
    assert on_time / count >= 0.5, (on_time, count)
