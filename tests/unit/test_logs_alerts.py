"""The alert table: each pattern on real-looking lines, and what must not alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aifactory.cli.logs import parse_since
from aifactory.logs.alerts import PATTERNS, AlertScanner, RateLimit
from aifactory.shared.registry import AlertNote, ServiceRecord


def scan(lines: list[str], scanner: AlertScanner | None = None) -> list[tuple[str, int, str]]:
    scanner = scanner or AlertScanner()
    found = scanner.scan(lines, set(), lambda i: (i + 1, i * 100))
    return [(f.pattern.name, f.line, f.summary) for f in found]


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", "cuda_oom"),
        ("RuntimeError: CUDA error: out of memory", "cuda_oom"),
        (
            "torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970",
            "nccl_error",
        ),
        (
            "vm:123:456 [0] NCCL WARN Net : Connect to 10.0.0.2<1234> failed : Timed out",
            "nccl_error",
        ),
        ("ncclUnhandledCudaError: Call to CUDA function failed.", "nccl_error"),
        ("[Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1)", "nccl_error"),
        (
            "slurmstepd: error: *** JOB 12 ON n1 CANCELLED AT 2025-01-01T00:00:00 DUE TO TIME LIMIT"
            " ***",
            "slurmstepd_error",
        ),
        ("slurmstepd-node7: error: execve(): vllm: No such file or directory", "slurmstepd_error"),
        ("slurmstepd: error: Detected 1 oom_kill event in StepId=12.batch.", "oom_kill"),
        ("Out of memory: Killed process 4242 (python) total-vm:123kB", "oom_kill"),
        (
            "FATAL:   While making image from oci registry: error fetching image to cache",
            "apptainer_pull",
        ),
        (
            "FATAL:   Unable to handle docker://vllm/vllm-openai:latest uri: failed to get digest",
            "apptainer_pull",
        ),
        ("ERROR  : Failed to pull image from library://", "apptainer_pull"),
    ],
)
def test_each_pattern_finds_its_line(line: str, pattern: str) -> None:
    assert scan(["before", line]) == [(pattern, 2, line)]


@pytest.mark.parametrize(
    "line",
    [
        "slurmstepd: error: *** JOB 12 ON node1 CANCELLED AT 2025-01-01T00:00:00 ***",
        "INFO: the KV cache uses 80% of GPU memory",
        "NCCL INFO Bootstrap : Using eth0:10.0.0.1<0>",
        "NCCL WARN Call to connect returned Connection refused, retrying",
        "ERROR 01-01 12:00:00 engine.py:12] request 7 aborted by the client",
        "FATAL error handling request",
        "the word Traceback alone",
    ],
)
def test_ordinary_lines_do_not_alert(line: str) -> None:
    assert scan([line]) == []


def test_the_table_is_one_place_with_distinct_names() -> None:
    names = [p.name for p in PATTERNS]
    assert len(names) == len(set(names)) >= 6
    assert all(p.needles and p.about for p in PATTERNS)


TRACEBACK = [
    "INFO starting",
    "Traceback (most recent call last):",
    '  File "serve.py", line 3, in <module>',
    "    main()",
    "ValueError: max_model_len is larger than the model's context",
    "INFO after",
]


def test_a_traceback_reports_its_exception_at_its_first_line() -> None:
    assert scan(TRACEBACK) == [
        ("python_traceback", 2, "ValueError: max_model_len is larger than the model's context")
    ]


def test_a_traceback_spanning_batches_and_a_restart() -> None:
    first = AlertScanner()
    assert first.scan(TRACEBACK[:3], set(), lambda i: (i + 1, 0)) == []
    assert first.block is not None and first.block.line == 2
    resumed = AlertScanner(block=first.block.model_copy(deep=True))  # from the checkpoint
    found = resumed.scan(TRACEBACK[3:], set(), lambda i: (i + 4, 0))
    assert [(f.pattern.name, f.line, len(f.context)) for f in found] == [("python_traceback", 2, 4)]


def test_a_prefixed_traceback_ends_at_the_prefixed_exception() -> None:
    lines = [
        "0: Traceback (most recent call last):",
        '0:   File "a.py", line 1, in f',
        "0: KeyError: 'x'",
    ]
    assert scan(lines) == [("python_traceback", 1, "KeyError: 'x'")]


def test_an_oom_traceback_is_also_a_cuda_oom() -> None:
    lines = [
        "Traceback (most recent call last):",
        "  File x",
        "torch.OutOfMemoryError: CUDA out of memory",
    ]
    assert [name for name, _, _ in scan(lines)] == ["python_traceback", "cuda_oom"]


def test_the_rest_of_a_cut_line_is_not_matched_again() -> None:
    found = AlertScanner().scan(
        ["xxxx CUDA out of memory", " and CUDA out of memory again"], {0}, lambda i: (1, 0)
    )
    assert len(found) == 1
    found = AlertScanner().scan(
        ["CUDA out of memory"], set(), lambda i: (1, 0), first_continues=True
    )
    assert found == []


def test_a_burst_is_rate_limited_and_the_rest_counted() -> None:
    now = [0.0]
    scanner = AlertScanner(limit=RateLimit(burst=2, window=60, clock=lambda: now[0]))
    found = scanner.scan(["CUDA out of memory"] * 5, set(), lambda i: (i + 1, 0))
    assert [f.line for f in found] == [1, 2]
    now[0] = 61.0
    (later,) = scanner.scan(["CUDA out of memory"], set(), lambda i: (9, 0))
    assert later.suppressed == 3


def _record(**kw: object) -> ServiceRecord:
    base = {"service_id": "s", "recipe": "a/b", "request_id": "r", "job_name": "j"}
    return ServiceRecord.model_validate(base | {"executor": "local", "workdir": "/w"} | kw)


def test_an_alert_joins_the_reason_once_and_survives_a_poll() -> None:
    record = _record(reason="Resources")
    note = AlertNote(pattern="cuda_oom", summary="CUDA out of memory", stream="err", line=9)
    assert record.add_alert(note) is True
    assert record.reason == "Resources; cuda_oom (err line 9): CUDA out of memory"
    assert record.add_alert(note) is False  # redelivered: nothing changes
    assert record.own_reason() == "Resources"
    assert record.reason_with(None) == "cuda_oom (err line 9): CUDA out of memory"
    newer = AlertNote(pattern="oom_kill", summary="killed", stream="err", line=12)
    record.add_alert(newer)
    assert record.reason == "Resources; oom_kill (err line 12): killed"


def test_since_parses_durations_and_times() -> None:
    now = datetime(2025, 1, 2, 12, tzinfo=UTC)
    assert parse_since("90s", now) == now - timedelta(seconds=90)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("2025-01-02T10:00:00+00:00", now) == now - timedelta(hours=2)
    assert parse_since("2025-01-02T10:00:00", now).tzinfo is not None
    with pytest.raises(ValueError, match="duration"):
        parse_since("yesterday", now)
