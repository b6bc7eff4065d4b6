"""Ollama ``/api/generate``: NDJSON stream, ``done: true`` with ``eval_count`` at the end."""

from __future__ import annotations

from typing import Any

import orjson

from aifactory.loadgen.backends.base import (
    GenerationBackend,
    LineParser,
    ResponseState,
    decode_json,
    raise_on_error_object,
    usage_int,
)
from aifactory.loadgen.datasets.base import Prompt
from aifactory.loadgen.errors import InvalidResponseError


def _handle(state: ResponseState, obj: dict[str, Any], now_ns: int) -> None:
    raise_on_error_object(obj)
    text = obj.get("response") or obj.get("thinking")
    if text:
        if not isinstance(text, str):
            raise InvalidResponseError("'response' is not a string")
        state.token(text, now_ns)
    if obj.get("done") is True:
        state.done = True
        state.usage_output = usage_int(obj.get("eval_count"))
        state.usage_prompt = usage_int(obj.get("prompt_eval_count"))


class _NdjsonParser(LineParser):
    __slots__ = ()

    def line(self, line: bytes, now_ns: int) -> None:
        if line.strip():
            _handle(self.state, decode_json(line), now_ns)


class OllamaGenerate(GenerationBackend, name="ollama_generate"):
    path = "/api/generate"
    models_path = "/api/tags"

    def body(self, prompt: Prompt, max_tokens: int) -> bytes:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": prompt.text,
            "stream": self.stream,
            "options": {"num_predict": max_tokens},
        }
        if self.extra_body:
            body.update(self.extra_body)
        return orjson.dumps(body)

    def parser(self) -> LineParser:
        return _NdjsonParser()

    def parse_body(self, body: bytes, now_ns: int) -> ResponseState:
        state = ResponseState()
        _handle(state, decode_json(body), now_ns)
        if not state.done:
            raise InvalidResponseError("non-streamed Ollama response without 'done': true")
        return state

    @staticmethod
    def model_names(listing: dict[str, Any]) -> list[str]:
        models = listing.get("models")
        if not isinstance(models, list):
            raise InvalidResponseError("model list has no 'models' array")
        return [m["name"] for m in models if isinstance(m, dict) and isinstance(m.get("name"), str)]
