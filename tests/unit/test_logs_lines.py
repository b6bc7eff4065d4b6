"""Cutting bytes into records, positions after a batch, and the logs stream's subjects."""

from __future__ import annotations

import pytest

from aifactory.logs.lines import (
    Cut,
    Records,
    cut_records,
    irregular_sizes,
    record_sizes,
    utf8_cut,
)
from aifactory.logs.state import Position, batch_id
from aifactory.shared import subjects
from aifactory.shared.messages import FileId, LogLines, LogStream


def test_complete_lines_and_a_held_tail() -> None:
    records, consumed = cut_records(b"a\nbb\nccc", 100, flush_tail=False)
    assert records.texts == ["a", "bb"] and records.sizes == [2, 3] and records.cuts == {}
    assert consumed == 5  # "ccc" waits for its newline


def test_the_tail_is_flushed_as_partial_on_request() -> None:
    records, consumed = cut_records(b"a\nccc", 100, flush_tail=True)
    assert records.texts == ["a", "ccc"] and records.cuts == {1: Cut.PARTIAL}
    assert consumed == 5 and records.size == 5


def test_nothing_to_cut() -> None:
    records, consumed = cut_records(b"", 100, flush_tail=True)
    assert len(records) == 0 and consumed == 0


def test_empty_lines_are_records() -> None:
    records, _ = cut_records(b"\n\nx\n", 100, flush_tail=False)
    assert records.texts == ["", "", "x"] and records.sizes == [1, 1, 2]


def test_giant_lines_split_into_flagged_pieces() -> None:
    records, consumed = cut_records(b"x" * 250 + b"\n" + b"y" * 120, 100, flush_tail=False)
    assert [len(t) for t in records.texts] == [100, 100, 50, 100]
    assert records.cuts == {0: Cut.SPLIT, 1: Cut.SPLIT, 3: Cut.SPLIT}
    assert records.sizes == [100, 100, 51, 100] and consumed == 351  # 20 "y" held back


def test_a_line_of_exactly_the_limit_is_not_split() -> None:
    records, _ = cut_records(b"z" * 100 + b"\n", 100, flush_tail=False)
    assert records.texts == ["z" * 100] and records.cuts == {}


@pytest.mark.parametrize("char", ["é", "€", "😀"])
def test_splits_fall_on_character_boundaries(char: str) -> None:
    text = ("a" + char * 200).encode()
    records, _ = cut_records(text + b"\n", 64, flush_tail=False)
    assert "\ufffd" not in "".join(records.texts)
    assert "".join(records.texts) == text.decode()
    assert all(size <= 64 for size in records.sizes[:-1])


def test_utf8_cut_falls_back_to_the_limit_in_garbage() -> None:
    assert utf8_cut(b"\x80" * 10, 5) == 5  # only continuation bytes: no boundary to find
    assert utf8_cut("aé".encode() + b"b", 2) == 1  # before é's lead byte


def test_invalid_utf8_keeps_exact_sizes() -> None:
    raw = b"ok\n\xff\xfe\xfd\nvalid \xe2\x82\xac\n"
    records, consumed = cut_records(raw, 100, flush_tail=False)
    assert records.texts == ["ok", "\ufffd\ufffd\ufffd", "valid €"]
    assert records.sizes == [3, 4, 10] and consumed == len(raw)
    odd = irregular_sizes(records)
    assert odd == [(1, 4)]
    assert record_sizes(records.texts, set(records.cuts), odd) == records.sizes


def test_no_replacement_character_no_size_work() -> None:
    records, _ = cut_records("é\n€\n".encode(), 100, flush_tail=False)
    assert irregular_sizes(records) == []


def test_batches_respect_bytes_and_records() -> None:
    records = Records(["x"] * 10, [30] * 10, {})
    assert records.batches(100, 1000) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert records.batches(10_000, 4) == [(0, 4), (4, 8), (8, 10)]
    assert Records(["x"], [500], {}).batches(100, 10) == [(0, 1)]  # too big alone: alone


def test_slice_renumbers_cuts() -> None:
    records = Records(["a", "b", "c"], [1, 1, 2], {1: Cut.SPLIT})
    part = records.slice(1, 3)
    assert part.texts == ["b", "c"] and part.cuts == {0: Cut.SPLIT}


def _batch(**kw: object) -> LogLines:
    base: dict[str, object] = {
        "service_id": "s",
        "stream": LogStream.OUT,
        "path": "/x",
        "file": FileId(device=1, inode=2),
        "offset": 100,
        "size": 12,
        "first_line": 5,
        "first_index": 7,
        "lines": ["a", "b", "c"],
    }
    return LogLines.model_validate(base | kw)


def test_position_after_a_batch() -> None:
    after = Position().after(_batch())
    assert (after.offset, after.line, after.index, after.continues) == (112, 8, 10, False)
    cut = Position().after(_batch(split=[1], partial=[2]))
    assert (cut.line, cut.index, cut.continues) == (6, 10, True)


def test_batch_ids_differ_by_file_generation_and_offset() -> None:
    f = FileId(device=1, inode=2)
    ids = {
        batch_id("s", LogStream.OUT, f, 0),
        batch_id("s", LogStream.OUT, f, 10),
        batch_id("s", LogStream.ERR, f, 0),
        batch_id("s", LogStream.OUT, f.model_copy(update={"generation": 1}), 0),
    }
    assert len(ids) == 4 and all(len(i) == 32 for i in ids)
    assert batch_id("s", LogStream.OUT, f, 0) == batch_id("s", LogStream.OUT, f, 0)


def test_the_logs_stream_stores_one_non_overlapping_filter() -> None:
    assert subjects.stream_subjects(subjects.LOGS_STREAM) == ["logs.*.*"]
    assert subjects.LOG_ALERT.subject(service_id="abc") == "logs.abc.alert"
    with pytest.raises(ValueError, match="stream"):
        subjects.LOGS.subject(service_id="abc", stream="eof")


@pytest.mark.parametrize(
    ("wide", "narrow", "covers"),
    [
        ("logs.*.*", "logs.*.eof", True),
        ("logs.*.eof", "logs.*.*", False),
        ("a.>", "a.b.c", True),
        ("a.>", "a", False),
        ("a.*", "a.>", False),
        ("a.b", "a.b", True),
        ("a.b", "a.c", False),
        ("a.*", "a.b.c", False),
    ],
)
def test_subject_covers(wide: str, narrow: str, covers: bool) -> None:
    assert subjects.subject_covers(wide, narrow) is covers


def test_decoding_all_lines_at_once_replaces_exactly_as_line_by_line() -> None:
    import random

    rng = random.Random(5)
    alphabet = [0x0A, 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0xFF, 0x41]
    for _ in range(300):
        raw = bytes(rng.choice(alphabet) for _ in range(300))
        records, consumed = cut_records(raw, 10_000, flush_tail=True)
        expected = [p.decode("utf-8", "replace") for p in raw.split(b"\n")]
        if raw.endswith(b"\n"):
            expected.pop()  # no record after the last newline
        assert records.texts == expected
        assert records.size == consumed == len(raw)
