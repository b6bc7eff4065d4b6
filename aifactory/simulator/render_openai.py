"""OpenAI wire formats (chat.completion(.chunk), text_completion) from pre-built byte templates.

Streaming chunks are concatenations of constant bytes and pre-encoded words: no JSON encoder
runs per token, which is most of what lets one core stream thousands of requests per second.
The shapes follow vLLM's OpenAI server: a first chat chunk carrying the role, one chunk per
token, ``finish_reason`` on the last token's chunk, an optional ``choices: []`` usage chunk
(``stream_options.include_usage``, with ``"usage": null`` on the other chunks, as OpenAI
does) and ``data: [DONE]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from aifactory.simulator.tokens import Vocabulary

DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def as_json(self) -> bytes:
        return b'{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}' % (
            self.prompt_tokens,
            self.completion_tokens,
            self.prompt_tokens + self.completion_tokens,
        )


@dataclass(frozen=True, slots=True)
class Timing:
    """Durations (ns) reported by Ollama's final object; OpenAI renderers ignore them."""

    total_ns: int
    prompt_eval_ns: int
    eval_ns: int


class _StreamRenderer:
    """Byte templates shared by both OpenAI streaming shapes; subclasses name the object."""

    content_type = b"text/event-stream; charset=utf-8"
    json_type = b"application/json"
    #: ``object`` of a streamed chunk, and what opens ``choices[0]`` before the token text.
    chunk_object: bytes = b""
    choice_open: bytes = b""
    #: What wraps each token's JSON string inside ``choices[0]`` (chat nests it in a delta).
    token_open: bytes = b""
    token_close: bytes = b""

    __slots__ = ("_created", "_finish_tail", "_head", "_key", "_model", "_rid", "_tail", "_vocab")

    def __init__(
        self,
        vocab: Vocabulary,
        model_json: bytes,
        rid: str,
        created: int,
        key: int,
        include_usage: bool,
    ) -> None:
        self._vocab = vocab
        self._model = model_json
        self._rid = rid
        self._created = created
        self._key = key
        self._head = self._chunk_prefix() + b'"choices":[{"index":0,' + self.choice_open
        usage_null = b',"usage":null' if include_usage else b""
        self._tail = b',"logprobs":null,"finish_reason":null}]' + usage_null + b"}\n\n"
        self._finish_tail = b',"logprobs":null,"finish_reason":"%%s"}]%s}\n\n' % usage_null

    def stream_tokens(self, start: int, end: int, n: int, finish: str) -> bytes:
        head = self._head + self.token_open
        close = self.token_close
        token_json = self._vocab.token_json
        key = self._key
        last = n - 1
        parts = []
        for i in range(start, end):
            tail = self._tail if i != last else self._finish_tail % finish.encode()
            parts.append(head + token_json(key, i) + close + tail)
        return b"".join(parts)

    def stream_end(self, usage: Usage | None, timing: Timing, finish: str) -> bytes:
        if usage is None:
            return DONE
        return self._chunk_prefix() + b'"choices":[],"usage":' + usage.as_json() + b"}\n\n" + DONE

    def _chunk_prefix(self) -> bytes:
        return b'data: {"id":"%s","object":"%s","created":%d,"model":%s,' % (
            self._rid.encode(),
            self.chunk_object,
            self._created,
            self._model,
        )


class ChatRenderer(_StreamRenderer):
    """``/v1/chat/completions`` bodies for one request."""

    chunk_object = b"chat.completion.chunk"
    choice_open = b'"delta":'
    token_open = b'{"content":'
    token_close = b"}"
    __slots__ = ()

    def stream_start(self) -> bytes:
        return self._head + b'{"role":"assistant","content":""}' + self._tail

    def whole(self, n: int, finish: str, usage: Usage, timing: Timing) -> bytes:
        return orjson.dumps(
            {
                "id": self._rid,
                "object": "chat.completion",
                "created": self._created,
                "model": orjson.loads(self._model),
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": self._vocab.text(self._key, 0, n),
                        },
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
                "usage": usage.as_dict(),
            }
        )


class CompletionRenderer(_StreamRenderer):
    """``/v1/completions`` bodies for one request."""

    chunk_object = b"text_completion"
    choice_open = b'"text":'
    __slots__ = ()

    def stream_start(self) -> bytes:
        return b""

    def whole(self, n: int, finish: str, usage: Usage, timing: Timing) -> bytes:
        return orjson.dumps(
            {
                "id": self._rid,
                "object": "text_completion",
                "created": self._created,
                "model": orjson.loads(self._model),
                "choices": [
                    {
                        "index": 0,
                        "text": self._vocab.text(self._key, 0, n),
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
                "usage": usage.as_dict(),
            }
        )
