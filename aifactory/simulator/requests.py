"""Request bodies of the OpenAI and Ollama APIs, validated strictly and reduced to what matters.

The simulator only needs a handful of fields (prompt size, output limit, streaming flags), but
it must reject malformed bodies the way a real server does: a 400 naming the offending field,
so that a broken benchmark client fails loudly instead of measuring garbage. Unknown fields are
accepted (clients send temperature, top_p, ...), wrong types are not (strict mode).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from aifactory.simulator.tokens import count_tokens, prompt_key

_M = TypeVar("_M", bound=BaseModel)
_UNION_TAGS = frozenset({"str", "int", "float", "bool", "none", "dict", "list"})


class ApiKind(enum.Enum):
    CHAT = "chat"
    COMPLETION = "completion"
    OLLAMA_GENERATE = "ollama_generate"
    OLLAMA_CHAT = "ollama_chat"


class RequestError(Exception):
    """A request the simulator refuses; rendered as an API-specific error body."""

    def __init__(
        self, status: int, message: str, param: str | None = None, kind: str = "BadRequestError"
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.kind = kind


@dataclass(slots=True)
class GenRequest:
    """The normalized request every API shares."""

    api: ApiKind
    stream: bool
    include_usage: bool
    prompt_tokens: int
    max_tokens: int | None
    ignore_eos: bool
    key: int
    load_only: bool = False


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _StreamOptions(_Open):
    include_usage: StrictBool | None = False


class _ContentPart(_Open):
    type: StrictStr
    text: StrictStr | None = None


class _ChatMessage(_Open):
    role: StrictStr
    content: StrictStr | list[_ContentPart] | None = None


class _OpenAIBase(_Open):
    model: StrictStr | None = None
    stream: StrictBool | None = False
    stream_options: _StreamOptions | None = None
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    ignore_eos: StrictBool | None = False
    n: StrictInt | None = Field(default=1, ge=1, le=1)


class _ChatBody(_OpenAIBase):
    messages: list[_ChatMessage] = Field(min_length=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)


class _CompletionBody(_OpenAIBase):
    prompt: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]


class _OllamaOptions(_Open):
    num_predict: StrictInt | None = None


class _OllamaBase(_Open):
    model: StrictStr
    stream: StrictBool | None = True
    options: _OllamaOptions | None = None


class _OllamaGenerateBody(_OllamaBase):
    prompt: StrictStr | None = ""
    system: StrictStr | None = None


class _OllamaMessage(_Open):
    role: StrictStr
    content: StrictStr | None = ""


class _OllamaChatBody(_OllamaBase):
    messages: list[_OllamaMessage] | None = None


def _validate(cls: type[_M], body: bytes) -> _M:
    try:
        return cls.model_validate_json(body)
    except ValidationError as exc:
        raise _to_request_error(exc) from exc


def _to_request_error(exc: ValidationError) -> RequestError:
    """Collapse pydantic errors (one per union member) into one message per field."""
    by_param: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False):
        parts: list[str] = []
        for part in err["loc"]:
            if isinstance(part, str) and ("[" in part or part in _UNION_TAGS):
                break
            parts.append(str(part))
        param = ".".join(parts)
        msg = err["msg"]
        if err["type"] == "json_invalid":
            msg = f"request body is not valid JSON ({msg})"
        elif err["type"] == "model_type" and not param:
            msg = "request body must be a JSON object"
        by_param.setdefault(param, [])
        if msg not in by_param[param]:
            by_param[param].append(msg)
    first = next(iter(by_param))
    text = "; ".join(f"{p}: {_join(m)}" if p else _join(m) for p, m in by_param.items())
    return RequestError(400, text, first or None)


def _join(messages: list[str]) -> str:
    """'Input should be a valid string' + '... valid array' -> '... valid string or array'."""
    prefix = "Input should be a valid "
    if len(messages) > 1 and all(m.startswith(prefix) for m in messages):
        return prefix + " or ".join(m[len(prefix) :] for m in messages)
    return " or ".join(messages)


def _check_model(requested: str | None, served: str) -> None:
    if requested is not None and requested != served:
        raise RequestError(
            404, f"The model `{requested}` does not exist.", "model", kind="NotFoundError"
        )


def parse_chat(body: bytes, served: str) -> GenRequest:
    req = _validate(_ChatBody, body)
    _check_model(req.model, served)
    texts: list[str] = []
    for message in req.messages:
        content = message.content
        if isinstance(content, str):
            texts.append(content)
        elif content is not None:
            texts.extend(part.text for part in content if part.text)
    prompt = "\n".join(texts)
    return GenRequest(
        api=ApiKind.CHAT,
        stream=bool(req.stream),
        include_usage=bool(req.stream_options and req.stream_options.include_usage),
        prompt_tokens=count_tokens(prompt),
        max_tokens=req.max_completion_tokens or req.max_tokens,
        ignore_eos=bool(req.ignore_eos),
        key=prompt_key(prompt),
    )


def parse_completion(body: bytes, served: str) -> GenRequest:
    req = _validate(_CompletionBody, body)
    _check_model(req.model, served)
    prompt: str | list[int]
    raw = req.prompt
    if isinstance(raw, str) or (raw and isinstance(raw[0], int)):
        prompt = raw  # a string, or one pre-tokenized prompt
    else:
        # Any other list is a batch of prompts; the simulator serves one choice per request.
        if len(raw) != 1:
            raise RequestError(400, "prompt: exactly one prompt per request is supported", "prompt")
        prompt = raw[0]  # type: ignore[assignment]
    if isinstance(prompt, list):
        tokens, key = len(prompt), prompt_key(",".join(map(str, prompt)))
    else:
        tokens, key = count_tokens(prompt), prompt_key(prompt)
    return GenRequest(
        api=ApiKind.COMPLETION,
        stream=bool(req.stream),
        include_usage=bool(req.stream_options and req.stream_options.include_usage),
        prompt_tokens=tokens,
        max_tokens=req.max_tokens,
        ignore_eos=bool(req.ignore_eos),
        key=key,
    )


def _num_predict(options: _OllamaOptions | None) -> int | None:
    # Ollama: -1 means "until done", -2 "fill the context"; both mean "no explicit limit".
    if options is None or options.num_predict is None or options.num_predict <= 0:
        return None
    return options.num_predict


def parse_ollama_generate(body: bytes, served: str) -> GenRequest:
    req = _validate(_OllamaGenerateBody, body)
    _check_ollama_model(req.model, served)
    prompt = "\n".join(t for t in (req.system, req.prompt) if t)
    return GenRequest(
        api=ApiKind.OLLAMA_GENERATE,
        stream=req.stream is not False,
        include_usage=True,
        prompt_tokens=count_tokens(prompt),
        max_tokens=_num_predict(req.options),
        ignore_eos=False,
        key=prompt_key(prompt),
        load_only=not req.prompt,
    )


def parse_ollama_chat(body: bytes, served: str) -> GenRequest:
    req = _validate(_OllamaChatBody, body)
    _check_ollama_model(req.model, served)
    prompt = "\n".join(m.content for m in req.messages or [] if m.content)
    return GenRequest(
        api=ApiKind.OLLAMA_CHAT,
        stream=req.stream is not False,
        include_usage=True,
        prompt_tokens=count_tokens(prompt),
        max_tokens=_num_predict(req.options),
        ignore_eos=False,
        key=prompt_key(prompt),
        load_only=not req.messages,
    )


def _check_ollama_model(requested: str, served: str) -> None:
    # Ollama resolves "name" to "name:latest"; accept both spellings of the served model.
    if requested not in (served, f"{served}:latest") and f"{requested}:latest" != served:
        raise RequestError(404, f"model '{requested}' not found", "model", kind="NotFoundError")
