"""Workload files: JSONL prompts and ShareGPT JSON, read locally (never downloaded).

JSONL: one object per line, ``{"prompt": "...", "output_tokens": 128}`` (``output_tokens``
optional: the configured output distribution fills it in; ``id`` optional and ignored).
ShareGPT: a JSON array of ``{"conversations": [{"from": "human", "value": "..."},
{"from": "gpt", "value": "..."}, ...]}``; the first human turn is the prompt and the length
of the reply after it (estimated) is the output length. Entries without a human turn are
skipped and counted; anything malformed is a :class:`DatasetError` naming line and field.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aifactory.loadgen.datasets.base import Prompt
from aifactory.loadgen.datasets.synthetic import sample_length
from aifactory.loadgen.datasets.tokens import EstimateTokenCounter
from aifactory.loadgen.errors import DatasetError
from aifactory.shared.workload import TokenDistribution


class JsonlEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(min_length=1)
    output_tokens: int | None = Field(default=None, ge=1)
    id: str | int | None = None


class ShareGptTurn(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, strict=True)

    from_: str = Field(alias="from")
    value: str


class ShareGptEntry(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    conversations: list[ShareGptTurn]


def _first_error(err: ValidationError) -> tuple[str, str]:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "<entry>"
    return field, first["msg"]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DatasetError(str(path), None, None, "file not found") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(str(path), None, None, f"not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise DatasetError(str(path), None, None, f"cannot read: {exc.strerror}") from exc


def load_jsonl(path: Path) -> list[tuple[str, int | None]]:
    """``(prompt, output_tokens or None)`` per non-blank line."""
    out: list[tuple[str, int | None]] = []
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(str(path), lineno, None, f"invalid JSON: {exc.msg}") from exc
        if not isinstance(obj, dict):
            raise DatasetError(str(path), lineno, None, "expected a JSON object per line")
        try:
            entry = JsonlEntry.model_validate(obj)
        except ValidationError as exc:
            field, msg = _first_error(exc)
            if field not in JsonlEntry.model_fields:
                msg = f"{msg} (valid fields: {', '.join(JsonlEntry.model_fields)})"
            raise DatasetError(str(path), lineno, field, msg) from exc
        out.append((entry.prompt, entry.output_tokens))
    if not out:
        raise DatasetError(str(path), None, None, "no prompts in file")
    return out


def _iter_array_with_lines(text: str, path: Path) -> Iterator[tuple[int, Any]]:
    """Decode a top-level JSON array element by element, yielding each one's line number."""
    decoder = json.JSONDecoder()
    pos = len(text) - len(text.lstrip())
    if not text.startswith("[", pos):
        raise DatasetError(str(path), text.count("\n", 0, pos) + 1, None, "expected a JSON array")
    pos += 1
    first = True
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            raise DatasetError(str(path), text.count("\n") + 1, None, "unterminated JSON array")
        if text[pos] == "]":
            return
        if not first:
            if text[pos] != ",":
                line = text.count("\n", 0, pos) + 1
                raise DatasetError(str(path), line, None, "expected ',' between entries")
            pos += 1
            while pos < len(text) and text[pos].isspace():
                pos += 1
        line = text.count("\n", 0, pos) + 1
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise DatasetError(str(path), exc.lineno, None, f"invalid JSON: {exc.msg}") from exc
        first = False
        yield line, obj


def load_sharegpt(path: Path) -> tuple[list[tuple[str, int | None]], int]:
    """``(prompt, reply length estimate or None)`` per usable entry, and the skipped count."""
    counter = EstimateTokenCounter()
    out: list[tuple[str, int | None]] = []
    skipped = 0
    for line, obj in _iter_array_with_lines(_read_text(path), path):
        try:
            entry = ShareGptEntry.model_validate(obj)
        except ValidationError as exc:
            field, msg = _first_error(exc)
            raise DatasetError(str(path), line, field.replace("from_", "from"), msg) from exc
        turns = entry.conversations
        human = next((i for i, t in enumerate(turns) if t.from_ in ("human", "user")), None)
        if human is None or not turns[human].value.strip():
            skipped += 1
            continue
        reply = turns[human + 1].value if human + 1 < len(turns) else ""
        out.append((turns[human].value, counter.count(reply) or None))
    if not out:
        raise DatasetError(str(path), None, None, "no usable conversations in file")
    return out, skipped


class FilePrompts:
    """Cycles through file entries; worker ``k`` of ``n`` takes entries k, k+n, k+2n, ..."""

    def __init__(
        self,
        entries: list[tuple[str, int | None]],
        output_tokens: TokenDistribution,
        *,
        seed: int,
        worker_id: int = 0,
        n_workers: int = 1,
    ) -> None:
        self._entries = entries
        self._output = output_tokens
        self._rng = random.Random(f"file:{seed}:{worker_id}")
        self._position = worker_id % len(entries)
        self._stride = n_workers
        self._counter = EstimateTokenCounter()
        self._prompt_tokens: dict[int, int] = {}

    def next(self) -> Prompt:
        index = self._position
        self._position = (self._position + self._stride) % len(self._entries)
        text, out_tokens = self._entries[index]
        n_in = self._prompt_tokens.get(index)
        if n_in is None:
            n_in = self._prompt_tokens[index] = self._counter.count(text)
        if out_tokens is None:
            out_tokens = sample_length(self._rng, self._output)
        return Prompt(index=index, text=text, prompt_tokens=n_in, output_tokens=out_tokens)
