"""One record per request: the unit every statistic is computed from.

A plain slotted dataclass (not a pydantic model) because one is built per request on the hot
path; ``RECORD_ADAPTER`` validates them when they are read back from JSONL or a pipe, and
orjson serialises them natively. Times are relative to the run's start (seconds), latencies
in milliseconds. A failed request has ``error`` set and no latencies: failures never reach
the latency statistics. Every field is a plain scalar (or a list of floats), whatever the
request kind: LLM generations fill the token fields, vector operations ``recall``,
``results`` and ``rows``; fields a kind does not use stay ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import TypeAdapter

from aifactory.shared.results import ErrorType, Operation, TokenSource


@dataclass(slots=True)
class RequestRecord:
    """What happened to one request (one JSONL line in ``records.jsonl``)."""

    run_index: int  # sub-run (sweep stage) index; 0 for a single run
    worker_id: int
    request_index: int  # per worker, in send order
    prompt_index: int  # which dataset entry (a prompt, a query, an upsert batch)
    warmup: bool
    scheduled_s: float  # planned send time, seconds since the run's start
    t0_s: float  # actual send time (after a concurrency slot was acquired)
    end_s: float  # response fully received (or failure noticed)
    ttft_ms: float | None = None  # first chunk carrying a generated token - t0 (streaming)
    e2e_ms: float | None = None  # last token chunk - t0 (non-streaming: response - t0)
    tpot_ms: float | None = None  # (e2e - ttft) / (N - 1), N >= 2
    itl_ms: list[float] = field(default_factory=list)  # gaps between token chunks
    chunks: int = 0  # number of chunks that carried generated text
    output_tokens: int | None = None
    output_tokens_source: TokenSource | None = None
    prompt_tokens: int | None = None
    prompt_tokens_source: TokenSource | None = None
    error: ErrorType | None = None
    error_message: str | None = None
    http_status: int | None = None
    endpoint: int = 0  # which of the config's targets it went to (round-robin)
    operation: Operation = Operation.GENERATE  # what the request did
    bytes_sent: int | None = None  # request bytes written (headers and body)
    bytes_received: int | None = None  # response bytes read (headers and body), when complete
    recall: float | None = None  # search: |returned ids ∩ true top-k| / k (None: no truth)
    results: int | None = None  # search: hits returned
    rows: int | None = None  # upsert: rows in the batch written

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def schedule_delay_ms(self) -> float:
        return (self.t0_s - self.scheduled_s) * 1000.0

    @property
    def tokens_per_chunk(self) -> float | None:
        if self.output_tokens is None or self.chunks == 0:
            return None
        return self.output_tokens / self.chunks


RECORD_ADAPTER: TypeAdapter[RequestRecord] = TypeAdapter(RequestRecord)
RECORDS_ADAPTER: TypeAdapter[list[RequestRecord]] = TypeAdapter(list[RequestRecord])


def dump_records(records: list[RequestRecord]) -> bytes:
    """Serialise a batch (for pipes and buses): a JSON array of record objects."""
    return orjson.dumps(records)


def load_records(data: bytes | str) -> list[RequestRecord]:
    """Parse and validate a batch produced by :func:`dump_records`."""
    return RECORDS_ADAPTER.validate_json(data)


def record_from_dict(obj: dict[str, Any]) -> RequestRecord:
    return RECORD_ADAPTER.validate_python(obj)
