"""Bytes of a job file in, records out: lines as they really are.

- A line is the bytes up to and including ``\\n``; the record's text drops the newline.
- Invalid UTF-8 becomes U+FFFD in the text; ``sizes`` keep counting the file's bytes, so
  offsets stay exact whatever the text looks like.
- A line longer than ``max_line`` bytes is cut into pieces of at most that many bytes (at a
  UTF-8 character boundary where there is one), every piece but the last marked ``SPLIT``.
- Bytes after the last newline are held back (:func:`cut_records` returns how many bytes it
  consumed) unless the caller flushes them, as a ``PARTIAL`` record.

The fast path is C all the way (one ``decode`` and ``split`` per read, ``max`` for the length
check): a 100-byte line costs well under a microsecond.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import accumulate


class Cut(StrEnum):
    """Why a record does not end its line."""

    SPLIT = "split"  # longer than the limit: the line goes on in the next record
    PARTIAL = "partial"  # no newline (yet): published after the timeout, or at the end


@dataclass(slots=True)
class Records:
    """Consecutive records of one file: their text, their size in the file, their cuts."""

    texts: list[str] = field(default_factory=list)
    #: Bytes of the file each record covers (its newline included).
    sizes: list[int] = field(default_factory=list)
    #: Records that do not end their line, by index.
    cuts: dict[int, Cut] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def extend(self, other: Records) -> None:
        base = len(self.texts)
        self.texts.extend(other.texts)
        self.sizes.extend(other.sizes)
        self.cuts.update({base + i: c for i, c in other.cuts.items()})

    def slice(self, start: int, stop: int) -> Records:
        return Records(
            self.texts[start:stop],
            self.sizes[start:stop],
            {i - start: c for i, c in self.cuts.items() if start <= i < stop},
        )

    def batches(self, max_bytes: int, max_records: int) -> list[tuple[int, int]]:
        """``[start, stop)`` index ranges in order, each of at most ``max_records`` records
        and ``max_bytes`` bytes (a single larger record still makes a batch of its own)."""
        ranges: list[tuple[int, int]] = []
        ends = list(accumulate(self.sizes))
        start, base = 0, 0
        while start < len(ends):
            hi = min(len(ends), start + max_records)
            stop = max(start + 1, bisect_right(ends, base + max_bytes, start, hi))
            ranges.append((start, stop))
            base, start = ends[stop - 1], stop
        return ranges


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def utf8_cut(raw: bytes, limit: int) -> int:
    """Where to cut ``raw`` at most ``limit`` bytes in: before a character's lead byte when
    one is within 3 bytes (UTF-8 characters are at most 4), else at ``limit``."""
    for back in range(4):
        at = limit - back
        if at <= 0:
            break
        if raw[at] & 0xC0 != 0x80:  # not a continuation byte: a character starts here
            return at
    return limit


def _pieces(raw: bytes, limit: int, out: Records, *, ends_line: bool) -> None:
    """Append ``raw`` (one line's bytes, newline excluded) cut into pieces of ``limit``."""
    while len(raw) > limit:
        at = utf8_cut(raw, limit)
        out.cuts[len(out.texts)] = Cut.SPLIT
        out.texts.append(_decode(raw[:at]))
        out.sizes.append(at)
        raw = raw[at:]
    out.texts.append(_decode(raw))
    out.sizes.append(len(raw) + (1 if ends_line else 0))


def cut_records(buf: bytes, max_line: int, *, flush_tail: bool) -> tuple[Records, int]:
    """The records in ``buf`` and how many of its bytes they cover.

    Complete lines always become records; the tail without a newline does too when it is
    longer than ``max_line`` (its full pieces, ``SPLIT``) or when ``flush_tail`` is set (the
    rest, ``PARTIAL``). What is not covered stays for the next call.
    """
    out = Records()
    last_newline = buf.rfind(b"\n")
    if last_newline >= 0:
        body = buf[:last_newline]
        parts = body.split(b"\n")
        if max(map(len, parts)) <= max_line:
            # One decode for all lines: a newline byte never belongs to a UTF-8 sequence, so
            # the decoder replaces exactly what a per-line decode would.
            out.texts = _decode(body).split("\n")
            out.sizes = [len(p) + 1 for p in parts]
        else:
            for part in parts:
                _pieces(part, max_line, out, ends_line=True)
    consumed = last_newline + 1
    tail = buf[consumed:]
    while len(tail) > max_line:
        at = utf8_cut(tail, max_line)
        out.cuts[len(out.texts)] = Cut.SPLIT
        out.texts.append(_decode(tail[:at]))
        out.sizes.append(at)
        consumed += at
        tail = tail[at:]
    if flush_tail and tail:
        out.cuts[len(out.texts)] = Cut.PARTIAL
        out.texts.append(_decode(tail))
        out.sizes.append(len(tail))
        consumed += len(tail)
    return out, consumed


REPLACEMENT = "\ufffd"


def irregular_sizes(records: Records) -> list[tuple[int, int]]:
    """``(index, size)`` of records whose file size is not their text's UTF-8 length (+1
    when the newline ends it): where invalid bytes became U+FFFD. Checked only when the
    batch holds a U+FFFD at all, which valid output almost never does."""
    if REPLACEMENT not in "".join(records.texts):
        return []
    odd = []
    for i, (text, size) in enumerate(zip(records.texts, records.sizes, strict=True)):
        natural = len(text.encode("utf-8", "surrogatepass")) + (0 if i in records.cuts else 1)
        if natural != size:
            odd.append((i, size))
    return odd


def record_sizes(texts: list[str], cuts: set[int], irregular: list[tuple[int, int]]) -> list[int]:
    """Every record's size in the file, from what a batch carries."""
    sizes = [
        len(t.encode("utf-8", "surrogatepass")) + (0 if i in cuts else 1)
        for i, t in enumerate(texts)
    ]
    for i, size in irregular:
        sizes[i] = size
    return sizes
