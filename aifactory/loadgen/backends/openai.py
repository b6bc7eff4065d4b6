"""OpenAI-compatible ``/v1/completions`` and ``/v1/chat/completions`` (vLLM, SGLang, TGI...).

Streaming asks for ``stream_options.include_usage`` so the server's own token count ends the
stream; reasoning deltas (``reasoning_content``/``reasoning``) count as generated tokens.
"""

from __future__ import annotations

from typing import Any

import orjson

from aifactory.loadgen.backends.base import (
    GenerationBackend,
    LineParser,
    ResponseState,
    SseParser,
    decode_json,
    raise_on_error_object,
    usage_int,
)
from aifactory.loadgen.datasets.base import Prompt
from aifactory.loadgen.errors import InvalidResponseError


def _take_usage(state: ResponseState, obj: dict[str, Any]) -> None:
    usage = obj.get("usage")
    if isinstance(usage, dict):
        state.usage_output = usage_int(usage.get("completion_tokens"))
        state.usage_prompt = usage_int(usage.get("prompt_tokens"))


def _first_choice(obj: dict[str, Any]) -> dict[str, Any] | None:
    choices = obj.get("choices")
    if not choices:
        return None
    if not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise InvalidResponseError(f"'choices' is not a list of objects: {choices!r:.120}")
    return choices[0]


class _OpenAIBase(GenerationBackend):
    models_path = "/v1/models"
    strips_v1 = True

    def _common(self, max_tokens: int) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens}
        if self.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        if self.ignore_eos:
            body["ignore_eos"] = True
        return body

    @staticmethod
    def model_names(listing: dict[str, Any]) -> list[str]:
        data = listing.get("data")
        if not isinstance(data, list):
            raise InvalidResponseError("model list has no 'data' array")
        return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]


class _CompletionsSse(SseParser):
    __slots__ = ()

    def event(self, obj: dict[str, Any], now_ns: int) -> None:
        raise_on_error_object(obj)
        choice = _first_choice(obj)
        if choice is not None:
            text = choice.get("text")
            if text:
                self.state.token(text, now_ns)
        if obj.get("usage"):
            _take_usage(self.state, obj)


class OpenAICompletions(_OpenAIBase, name="openai_completions"):
    path = "/v1/completions"

    def body(self, prompt: Prompt, max_tokens: int) -> bytes:
        body = self._common(max_tokens)
        body["prompt"] = prompt.text
        if self.extra_body:
            body.update(self.extra_body)
        return orjson.dumps(body)

    def parser(self) -> LineParser:
        return _CompletionsSse()

    def parse_body(self, body: bytes, now_ns: int) -> ResponseState:
        obj = decode_json(body)
        raise_on_error_object(obj)
        state = ResponseState()
        choice = _first_choice(obj)
        if choice is None or not isinstance(choice.get("text"), str):
            raise InvalidResponseError("completion has no choices[0].text")
        if choice["text"]:
            state.token(choice["text"], now_ns)
        _take_usage(state, obj)
        state.done = True
        return state


class _ChatSse(SseParser):
    __slots__ = ()

    def event(self, obj: dict[str, Any], now_ns: int) -> None:
        raise_on_error_object(obj)
        choice = _first_choice(obj)
        if choice is not None:
            delta = choice.get("delta")
            if isinstance(delta, dict):
                text = (
                    delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning")
                )
                if text:
                    self.state.token(text, now_ns)
        if obj.get("usage"):
            _take_usage(self.state, obj)


class OpenAIChat(_OpenAIBase, name="openai_chat"):
    path = "/v1/chat/completions"

    def body(self, prompt: Prompt, max_tokens: int) -> bytes:
        body = self._common(max_tokens)
        body["messages"] = [{"role": "user", "content": prompt.text}]
        if self.extra_body:
            body.update(self.extra_body)
        return orjson.dumps(body)

    def parser(self) -> LineParser:
        return _ChatSse()

    def parse_body(self, body: bytes, now_ns: int) -> ResponseState:
        obj = decode_json(body)
        raise_on_error_object(obj)
        state = ResponseState()
        choice = _first_choice(obj)
        message = choice.get("message") if choice is not None else None
        if not isinstance(message, dict):
            raise InvalidResponseError("chat completion has no choices[0].message")
        text = message.get("content") or message.get("reasoning_content") or ""
        if not isinstance(text, str):
            raise InvalidResponseError("choices[0].message.content is not a string")
        if text:
            state.token(text, now_ns)
        _take_usage(state, obj)
        state.done = True
        return state
