"""Ollama wire formats (``/api/generate``, ``/api/chat``): NDJSON, one object per token.

Ollama streams by default, stamps every object with ``created_at`` and ends with a
``done: true`` object carrying token counts and durations in nanoseconds; benchmark tools read
``eval_count`` / ``eval_duration`` from it, so those must match what was actually streamed.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from aifactory.simulator.render_openai import Timing, Usage
from aifactory.simulator.tokens import Vocabulary


def created_at(now: float | None = None) -> str:
    """RFC 3339 UTC timestamp with microseconds, as Ollama prints it."""
    t = time.time() if now is None else now
    whole = int(t)
    micros = int((t - whole) * 1_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(whole))}.{micros:06d}Z"


class OllamaRenderer:
    content_type = b"application/x-ndjson"
    json_type = b"application/json; charset=utf-8"
    _chat = False

    __slots__ = ("_key", "_model", "_model_json", "_vocab")

    def __init__(self, vocab: Vocabulary, model_json: bytes, key: int) -> None:
        self._vocab = vocab
        self._model_json = model_json
        self._model = orjson.loads(model_json)
        self._key = key

    def stream_start(self) -> bytes:
        return b""

    def stream_tokens(self, start: int, end: int, n: int, finish: str) -> bytes:
        head = b'{"model":%s,"created_at":"%s",' % (self._model_json, created_at().encode())
        token_json = self._vocab.token_json
        key = self._key
        if self._chat:
            return b"".join(
                head + b'"message":{"role":"assistant","content":'
                b"%s" % token_json(key, i) + b'},"done":false}\n'
                for i in range(start, end)
            )
        return b"".join(
            head + b'"response":%s,"done":false}\n' % token_json(key, i) for i in range(start, end)
        )

    def _final(self, text: str, finish: str, usage: Usage, timing: Timing) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self._model, "created_at": created_at()}
        if self._chat:
            body["message"] = {"role": "assistant", "content": text}
        else:
            body["response"] = text
        body.update(
            done=True,
            done_reason=finish,
            total_duration=timing.total_ns,
            load_duration=0,
            prompt_eval_count=usage.prompt_tokens,
            prompt_eval_duration=timing.prompt_eval_ns,
            eval_count=usage.completion_tokens,
            eval_duration=timing.eval_ns,
        )
        return body

    def stream_end(self, usage: Usage | None, timing: Timing, finish: str) -> bytes:
        assert usage is not None, "Ollama always reports counts in its final object"
        return orjson.dumps(self._final("", finish, usage, timing)) + b"\n"

    def whole(self, n: int, finish: str, usage: Usage, timing: Timing) -> bytes:
        return orjson.dumps(self._final(self._vocab.text(self._key, 0, n), finish, usage, timing))

    def load_only(self) -> bytes:
        """Ollama answers an empty prompt by loading the model and reporting ``load``."""
        body: dict[str, Any] = {"model": self._model, "created_at": created_at()}
        if self._chat:
            body["message"] = {"role": "assistant", "content": ""}
        else:
            body["response"] = ""
        body.update(done=True, done_reason="load")
        return orjson.dumps(body)


class OllamaGenerateRenderer(OllamaRenderer):
    __slots__ = ()
    _chat = False


class OllamaChatRenderer(OllamaRenderer):
    __slots__ = ()
    _chat = True
