"""Unit tests of the simulator's pure parts: latency arithmetic, faults, tokens, config, parsing."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import orjson
import pytest
import typer
from typer.testing import CliRunner

from aifactory.cli.simulate import register
from aifactory.simulator.config import SimulatorConfig, SimulatorConfigError
from aifactory.simulator.engine import SlotScheduler
from aifactory.simulator.latency import Fault, FaultInjector, LatencyModel, cut_point
from aifactory.simulator.metrics import FastHistogram, SimulatorMetrics
from aifactory.simulator.render_openai import ChatRenderer, CompletionRenderer, Timing, Usage
from aifactory.simulator.requests import (
    ApiKind,
    RequestError,
    parse_chat,
    parse_completion,
    parse_ollama_chat,
    parse_ollama_generate,
)
from aifactory.simulator.tokens import Vocabulary, count_tokens


def cfg(**kw: object) -> SimulatorConfig:
    return SimulatorConfig.from_options(**kw)


# -- latency model ---------------------------------------------------------------------------
def test_ttft_is_fixed_overhead_plus_per_prompt_token_cost() -> None:
    model = LatencyModel(cfg(ttft_ms=20, prompt_token_ms=0.5))
    assert model.ttft(0) == pytest.approx(0.020)
    assert model.ttft(10) == pytest.approx(0.025)
    assert model.ttft(1000) == pytest.approx(0.520)


def test_offsets_are_absolute_ttft_plus_i_times_itl() -> None:
    model = LatencyModel(cfg(ttft_ms=50, itl_ms=5, prompt_token_ms=1))
    offsets = model.offsets(prompt_tokens=3, n=64)
    assert len(offsets) == 64
    assert offsets[0] == pytest.approx(0.053)
    for i, off in enumerate(offsets):
        assert off == pytest.approx(0.053 + i * 0.005, abs=1e-12)
    # TPOT over the whole answer is exactly the configured ITL.
    assert (offsets[-1] - offsets[0]) / 63 == pytest.approx(0.005, abs=1e-12)


def test_itl_zero_puts_every_token_at_the_same_instant() -> None:
    offsets = LatencyModel(cfg(ttft_ms=1, itl_ms=0)).offsets(0, 16)
    assert set(offsets) == {0.001}


def test_jitter_is_bounded_monotonic_mean_preserving_and_seeded() -> None:
    conf = cfg(ttft_ms=10, itl_ms=5, itl_jitter_ms=2, seed=3)
    offsets = LatencyModel(conf).offsets(0, 2000)
    assert offsets[0] == pytest.approx(0.010)  # token 0 (TTFT) never jitters
    assert all(b >= a for a, b in itertools.pairwise(offsets))
    for i, off in enumerate(offsets):
        assert abs(off - (0.010 + i * 0.005)) <= 0.002 + 1e-12
    deviations = [off - (0.010 + i * 0.005) for i, off in enumerate(offsets)]
    assert abs(sum(deviations) / len(deviations)) < 0.0001  # zero-mean: no drift
    assert max(deviations) > 0.0015 and min(deviations) < -0.0015  # jitter really applied
    assert LatencyModel(conf).offsets(0, 2000) == offsets  # same seed, same schedule
    other = LatencyModel(cfg(ttft_ms=10, itl_ms=5, itl_jitter_ms=2, seed=4)).offsets(0, 2000)
    assert other != offsets


@pytest.mark.parametrize(
    ("options", "max_tokens", "ignore_eos", "expected"),
    [
        ({}, None, False, (128, "stop")),
        ({}, 16, False, (16, "length")),
        ({}, 500, False, (128, "stop")),
        ({}, 500, True, (500, "length")),
        ({"default_output_tokens": 40}, None, False, (40, "stop")),
        ({"output_tokens": 7}, None, False, (7, "stop")),
        ({"output_tokens": 7}, 100, False, (7, "stop")),
        ({"output_tokens": 7}, 7, False, (7, "length")),
        ({"output_tokens": 7}, 3, True, (7, "length")),
    ],
)
def test_output_length_plan(
    options: dict[str, int],
    max_tokens: int | None,
    ignore_eos: bool,
    expected: tuple[int, str],
) -> None:
    plan = LatencyModel(cfg(**options)).plan(max_tokens, ignore_eos)
    assert (plan.tokens, plan.finish_reason) == expected


# -- faults ----------------------------------------------------------------------------------
def test_faults_follow_rates_and_are_reproducible() -> None:
    conf = cfg(error_rate=0.2, cut_rate=0.1, seed=11)
    injector = FaultInjector(conf)
    sequence = [injector.draw() for _ in range(20_000)]
    counts = Counter(sequence)
    assert counts[Fault.ERROR] / 20_000 == pytest.approx(0.2, abs=0.015)
    assert counts[Fault.CUT] / 20_000 == pytest.approx(0.1, abs=0.015)
    again = FaultInjector(conf)
    assert [again.draw() for _ in range(20_000)] == sequence
    different = FaultInjector(cfg(error_rate=0.2, cut_rate=0.1, seed=12))
    assert [different.draw() for _ in range(200)] != sequence[:200]


def test_fault_extremes() -> None:
    none = FaultInjector(cfg())
    assert {none.draw() for _ in range(100)} == {Fault.NONE}
    always = FaultInjector(cfg(error_rate=1.0))
    assert {always.draw() for _ in range(100)} == {Fault.ERROR}
    cut = FaultInjector(cfg(cut_rate=1.0))
    assert {cut.draw() for _ in range(100)} == {Fault.CUT}


def test_cut_point_is_half_the_tokens() -> None:
    assert [cut_point(n) for n in (1, 2, 3, 16, 17)] == [0, 1, 1, 8, 8]


# -- tokens ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("   \n\t", 0),
        ("hello", 1),
        ("Hello, world!", 4),
        ("don't stop", 4),
        ("a  b\nc", 3),
        ("größe 42", 2),
    ],
)
def test_count_tokens(text: str, tokens: int) -> None:
    assert count_tokens(text) == tokens


def test_vocabulary_is_seeded_and_consistent_with_the_token_count() -> None:
    vocab = Vocabulary(seed=5)
    assert vocab.words == Vocabulary(seed=5).words
    assert vocab.words != Vocabulary(seed=6).words
    assert len(set(vocab.words)) == vocab.size
    for n in (1, 2, 17, 300, 1500):
        text = vocab.text(key=12345, start=0, end=n)
        assert count_tokens(text) == n
    for i in range(5):
        assert json.loads(vocab.token_json(99, i)) == vocab.token_text(99, i)
    assert vocab.text(7, 0, 10) == vocab.text(7, 0, 4) + vocab.text(7, 4, 10)


# -- configuration ---------------------------------------------------------------------------
def test_config_defaults_match_the_cli_contract() -> None:
    conf = SimulatorConfig()
    assert (conf.host, conf.port, conf.model) == ("127.0.0.1", 8000, "simulator")
    assert (conf.ttft_ms, conf.prompt_token_ms, conf.itl_ms, conf.itl_jitter_ms) == (20, 0, 5, 0)
    assert conf.output_tokens is None and conf.max_running == 256
    assert (conf.error_rate, conf.cut_rate) == (0, 0)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"error_rate": 1.5}, "--error-rate"),
        ({"cut_rate": -0.1}, "--cut-rate"),
        ({"error_rate": 0.7, "cut_rate": 0.5}, "error_rate + cut_rate must be <= 1"),
        ({"port": 70000}, "--port"),
        ({"ttft_ms": -1}, "--ttft-ms"),
        ({"max_running": 0}, "--max-running"),
        ({"output_tokens": 0}, "--output-tokens"),
        ({"model": ""}, "--model"),
        ({"log_level": "loud"}, "--log-level"),
        ({"bogus": 1}, "--bogus"),
    ],
)
def test_config_rejects_bad_values_naming_the_option(
    options: dict[str, object], fragment: str
) -> None:
    with pytest.raises(SimulatorConfigError) as info:
        SimulatorConfig.from_options(**options)
    assert fragment in str(info.value)


def test_cli_registers_simulate_and_reports_bad_options() -> None:
    app = typer.Typer()
    register(app)

    @app.command("other")
    def other() -> None:  # a second command so "simulate" must be named explicitly
        """Placeholder."""

    runner = CliRunner()
    helped = runner.invoke(app, ["simulate", "--help"])
    assert helped.exit_code == 0
    for option in (
        "--host", "--port", "--model", "--ttft-ms", "--prompt-token-ms", "--itl-ms",
        "--itl-jitter-ms", "--output-tokens", "--max-running", "--error-rate", "--cut-rate",
        "--seed", "--log-level",
    ):  # fmt: skip
        assert option in helped.output, option
    bad = runner.invoke(app, ["simulate", "--error-rate", "2"])
    assert bad.exit_code == 2
    assert "--error-rate" in bad.output and "less than or equal to 1" in bad.output


# -- scheduler and metrics -------------------------------------------------------------------
class _User:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def on_slot(self) -> None:
        self.log.append(self.name)


def test_scheduler_grants_up_to_max_running_then_fifo() -> None:
    log: list[str] = []
    sched = SlotScheduler(2)
    users = [_User(n, log) for n in "abcde"]
    granted = [sched.submit(u) for u in users]
    assert granted == [True, True, False, False, False]
    assert (sched.running, sched.waiting) == (2, 3)
    assert sched.withdraw(users[3]) is True  # "d" disconnected while waiting
    assert sched.withdraw(users[3]) is False
    sched.release()
    sched.release()
    assert log == ["a", "b", "c", "e"]
    assert (sched.running, sched.waiting) == (2, 0)
    sched.release()
    sched.release()
    assert sched.running == 0


def test_fast_histogram_uses_prometheus_le_semantics() -> None:
    hist = FastHistogram((0.1, 0.5))
    for v in (0.05, 0.1, 0.2, 0.5, 3.0):
        hist.observe(v)
    hist.observe_many(0.0, 3)
    hist.observe_many(0.0, 0)
    assert hist.cumulative() == [("0.1", 5.0), ("0.5", 7.0), ("+Inf", 8.0)]
    assert hist.count == 8
    assert hist.total == pytest.approx(3.85)


def test_metrics_exposition_uses_vllm_names() -> None:
    metrics = SimulatorMetrics("m", running=lambda: 3, waiting=lambda: 2, capacity=4)
    metrics.ttft.observe(0.02)
    metrics.prompt_tokens += 5
    text = metrics.render().decode()
    for line in (
        "# TYPE vllm:num_requests_running gauge",
        'vllm:num_requests_running{engine="0",model_name="m"} 3.0',
        'vllm:num_requests_waiting{engine="0",model_name="m"} 2.0',
        'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.75',
        "# TYPE vllm:time_to_first_token_seconds histogram",
        'vllm:time_to_first_token_seconds_bucket{engine="0",le="0.02",model_name="m"} 1.0',
        "# TYPE vllm:inter_token_latency_seconds histogram",
        "# TYPE vllm:e2e_request_latency_seconds histogram",
        "# TYPE vllm:prompt_tokens_total counter",
        'vllm:prompt_tokens_total{engine="0",model_name="m"} 5.0',
        "# TYPE vllm:generation_tokens_total counter",
        "# TYPE vllm:request_success_total counter",
    ):
        assert line in text.splitlines(), line


# -- request parsing -------------------------------------------------------------------------
def test_parse_chat_normalizes_the_fields_that_matter() -> None:
    body = orjson.dumps(
        {
            "model": "sim",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi there"}]},
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": 50,
            "max_completion_tokens": 20,
            "temperature": 0.3,
        }
    )
    req = parse_chat(body, "sim")
    assert req.api is ApiKind.CHAT
    assert (req.stream, req.include_usage, req.max_tokens) == (True, True, 20)
    assert req.prompt_tokens == count_tokens("Be brief.\nHi there") == 5
    assert parse_chat(body, "sim").key == req.key  # same prompt, same answer


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        (b"{nope", None, "not valid JSON"),
        (b"[1, 2]", None, "JSON object"),
        (b"{}", "messages", "Field required"),
        (b'{"messages": []}', "messages", "at least 1"),
        (b'{"messages": [{"role": "user", "content": 5}]}', "messages.0.content", "string or"),
        (b'{"messages": [{"content": "x"}]}', "messages.0.role", "Field required"),
        (b'{"messages": [{"role": "u", "content": "x"}], "max_tokens": "9"}', "max_tokens", ""),
        (b'{"messages": [{"role": "u", "content": "x"}], "max_tokens": 0}', "max_tokens", ""),
        (b'{"messages": [{"role": "u", "content": "x"}], "stream": "yes"}', "stream", "boolean"),
        (b'{"messages": [{"role": "u", "content": "x"}], "n": 2}', "n", ""),
    ],
)
def test_parse_chat_rejects_bad_bodies_naming_the_field(
    body: bytes, param: str | None, fragment: str
) -> None:
    with pytest.raises(RequestError) as info:
        parse_chat(body, "simulator")
    assert info.value.status == 400
    assert info.value.param == param
    assert fragment in info.value.message
    if param:
        assert info.value.message.startswith(param)


def test_unknown_model_is_a_404() -> None:
    with pytest.raises(RequestError) as info:
        parse_chat(b'{"model": "gpt-9", "messages": [{"role": "u", "content": "x"}]}', "sim")
    assert (info.value.status, info.value.param) == (404, "model")
    with pytest.raises(RequestError):
        parse_ollama_generate(b'{"model": "llama3", "prompt": "x"}', "sim")
    assert parse_ollama_generate(b'{"model": "sim:latest", "prompt": "x"}', "sim").stream


def test_parse_completion_prompt_forms() -> None:
    assert parse_completion(b'{"prompt": "one two three"}', "s").prompt_tokens == 3
    assert parse_completion(b'{"prompt": ["one two"]}', "s").prompt_tokens == 2
    assert parse_completion(b'{"prompt": [5, 6, 7, 8]}', "s").prompt_tokens == 4
    assert parse_completion(b'{"prompt": [[5, 6]]}', "s").prompt_tokens == 2
    with pytest.raises(RequestError) as info:
        parse_completion(b'{"prompt": ["a", "b"]}', "s")
    assert info.value.param == "prompt"
    with pytest.raises(RequestError) as info:
        parse_completion(b'{"prompt": 5}', "s")
    assert info.value.param == "prompt"


def test_parse_ollama_options_and_defaults() -> None:
    gen = parse_ollama_generate(
        b'{"model": "s", "prompt": "a b", "options": {"num_predict": 9}}', "s"
    )
    assert (gen.stream, gen.max_tokens, gen.prompt_tokens) == (True, 9, 2)
    assert (
        parse_ollama_generate(
            b'{"model": "s", "prompt": "a", "options": {"num_predict": -1}}', "s"
        ).max_tokens
        is None
    )
    chat = parse_ollama_chat(
        b'{"model": "s", "messages": [{"role": "user", "content": "x y"}], "stream": false}', "s"
    )
    assert (chat.stream, chat.prompt_tokens, chat.load_only) == (False, 2, False)
    with pytest.raises(RequestError) as info:
        parse_ollama_chat(b'{"model": "s", "options": {"num_predict": "x"}}', "s")
    assert info.value.param == "options.num_predict"


# -- rendering -------------------------------------------------------------------------------
def _events(raw: bytes) -> list[bytes]:
    assert raw.endswith(b"\n\n")
    return [e for e in raw.split(b"\n\n") if e]


def test_chat_chunks_have_openai_shape() -> None:
    vocab = Vocabulary(0)
    r = ChatRenderer(vocab, b'"sim"', "chatcmpl-1", 1700000000, key=3, include_usage=True)
    raw = r.stream_start() + r.stream_tokens(0, 3, 3, "length")
    raw += r.stream_end(Usage(4, 3), Timing(0, 0, 0), "length")
    events = _events(raw)
    assert events[-1] == b"data: [DONE]"
    chunks = [json.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert (chunk["id"], chunk["model"], chunk["created"]) == ("chatcmpl-1", "sim", 1700000000)
    content = [c["choices"][0]["delta"]["content"] for c in chunks[1:4]]
    assert "".join(content) == vocab.text(3, 0, 3)
    assert [c["choices"][0]["finish_reason"] for c in chunks[1:4]] == [None, None, "length"]
    assert all(c["usage"] is None for c in chunks[:4])
    assert chunks[4]["choices"] == []
    assert chunks[4]["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}


def test_completion_chunks_have_openai_shape_without_usage() -> None:
    r = CompletionRenderer(Vocabulary(0), b'"sim"', "cmpl-1", 1, key=0, include_usage=False)
    events = _events(
        r.stream_start()
        + r.stream_tokens(0, 2, 2, "stop")
        + r.stream_end(None, Timing(0, 0, 0), "stop")
    )
    assert events[-1] == b"data: [DONE]"
    chunks = [json.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
    assert len(chunks) == 2
    assert all(c["object"] == "text_completion" and "usage" not in c for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, "stop"]
