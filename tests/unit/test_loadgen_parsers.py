"""Backends: request bodies, and incremental response parsing cut at any byte boundary."""

from __future__ import annotations

import orjson
import pytest

from aifactory.loadgen.backends import make_backend
from aifactory.loadgen.datasets.base import Prompt
from aifactory.loadgen.errors import (
    InvalidResponseError,
    ServerStreamError,
    StreamCutError,
)

PROMPT = Prompt(index=3, text="hello there", prompt_tokens=2, output_tokens=7)


def _sse(objs: list[dict[str, object]], done: bool = True) -> bytes:
    out = b"".join(b"data: " + orjson.dumps(o) + b"\r\n\r\n" for o in objs)
    return out + (b"data: [DONE]\n\n" if done else b"")


COMPLETION_STREAM = _sse(
    [
        {"choices": [{"index": 0, "text": "Hel"}], "usage": None},
        {"choices": [{"index": 0, "text": ""}]},  # an empty chunk is not a token
        {"choices": [{"index": 0, "text": "lo"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
    ]
)


def test_completions_body_asks_for_usage_and_length() -> None:
    backend = make_backend("openai_completions", "m", stream=True, extra_body={"t": 1})
    body = orjson.loads(backend.body(PROMPT, 7))
    assert body == {
        "model": "m",
        "max_tokens": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
        "prompt": "hello there",
        "t": 1,
    }
    chat = make_backend("openai_chat", "m", stream=False, ignore_eos=False)
    body = orjson.loads(chat.body(PROMPT, 7))
    assert body["messages"] == [{"role": "user", "content": "hello there"}]
    assert "stream" not in body and "ignore_eos" not in body
    ollama = make_backend("ollama_generate", "m", stream=True)
    assert orjson.loads(ollama.body(PROMPT, 7))["options"] == {"num_predict": 7}


@pytest.mark.parametrize("step", [1, 2, 7, 1000])
def test_sse_split_anywhere_gives_same_result(step: int) -> None:
    backend = make_backend("openai_completions", "m", stream=True)
    parser = backend.parser()
    data = COMPLETION_STREAM
    for i in range(0, len(data), step):
        parser.feed(data[i : i + step], 1000 + i)
    state = parser.finish(99_999)
    assert state.texts == ["Hel", "lo"]
    assert len(state.chunk_ns) == 2
    assert state.usage_output == 2
    assert state.usage_prompt == 5
    assert state.done


def test_chat_role_chunk_is_not_a_token_reasoning_is() -> None:
    backend = make_backend("openai_chat", "m", stream=True)
    parser = backend.parser()
    parser.feed(
        _sse(
            [
                {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
                {"choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}}]},
                {"choices": [{"index": 0, "delta": {"content": "Hi"}}]},
            ]
        ),
        5,
    )
    state = parser.finish(6)
    assert state.texts == ["hmm", "Hi"]
    assert state.usage_output is None


def test_missing_done_is_a_cut() -> None:
    parser = make_backend("openai_completions", "m", stream=True).parser()
    parser.feed(_sse([{"choices": [{"text": "a"}]}], done=False), 1)
    with pytest.raises(StreamCutError, match="terminal marker"):
        parser.finish(2)


def test_error_object_and_garbage() -> None:
    parser = make_backend("openai_chat", "m", stream=True).parser()
    with pytest.raises(ServerStreamError, match="overloaded"):
        parser.feed(_sse([{"error": {"message": "overloaded"}}]), 1)
    parser = make_backend("openai_chat", "m", stream=True).parser()
    with pytest.raises(InvalidResponseError, match="not JSON"):
        parser.feed(b"data: {nope\n\n", 1)
    parser = make_backend("openai_completions", "m", stream=True).parser()
    with pytest.raises(InvalidResponseError, match="choices"):
        parser.feed(_sse([{"choices": "x"}]), 1)


def test_ollama_ndjson_stream_and_body() -> None:
    backend = make_backend("ollama_generate", "m", stream=True)
    lines = [
        {"response": "a", "done": False},
        {"response": "b", "done": False},
        {"response": "", "done": True, "eval_count": 2, "prompt_eval_count": 9},
    ]
    data = b"".join(orjson.dumps(x) + b"\n" for x in lines)
    parser = backend.parser()
    parser.feed(data[:10], 1)
    parser.feed(data[10:], 2)
    state = parser.finish(3)
    assert state.texts == ["a", "b"]
    assert state.chunk_ns == [2, 2]
    assert (state.usage_output, state.usage_prompt) == (2, 9)
    cut = backend.parser()
    cut.feed(data[: data.index(b"\n") + 1], 1)
    with pytest.raises(StreamCutError):
        cut.finish(2)
    full = backend.parse_body(orjson.dumps(lines[2] | {"response": "abc"}), 7)
    assert full.texts == ["abc"] and full.usage_output == 2


def test_non_streamed_openai_bodies() -> None:
    comp = make_backend("openai_completions", "m", stream=False)
    state = comp.parse_body(
        orjson.dumps({"choices": [{"text": "xy"}], "usage": {"completion_tokens": 2}}), 4
    )
    assert state.texts == ["xy"] and state.usage_output == 2 and state.done
    with pytest.raises(InvalidResponseError, match="choices"):
        comp.parse_body(b"{}", 4)
    chat = make_backend("openai_chat", "m", stream=False)
    state = chat.parse_body(orjson.dumps({"choices": [{"message": {"content": "ok"}}]}), 4)
    assert state.texts == ["ok"] and state.usage_output is None
    with pytest.raises(InvalidResponseError, match="message"):
        chat.parse_body(orjson.dumps({"choices": [{"text": "ok"}]}), 4)


def test_model_listings() -> None:
    openai = make_backend("openai_chat", "m", stream=True)
    assert openai.model_names({"data": [{"id": "a"}, {"id": "b"}]}) == ["a", "b"]
    with pytest.raises(InvalidResponseError):
        openai.model_names({"models": []})
    ollama = make_backend("ollama_generate", "m", stream=True)
    assert ollama.model_names({"models": [{"name": "llama3"}]}) == ["llama3"]
