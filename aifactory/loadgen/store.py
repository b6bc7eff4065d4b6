"""Records on disk as they arrive: one Apache Parquet file per run, written in row groups.

A benchmark keeps no record in memory past the current batch, so its memory does not grow
with its length (an hour at 3,700 req/s used to need ~18 GB). The columns are the fields of
:class:`RequestRecord`; latencies and times are float64 with byte-stream-split encoding
(it lets zstd compress them), small integers and enums are dictionary/delta encoded, and
the inter-token latencies are their own list column in whole microseconds (``itl_us``, the
resolution records keep them at), so they can be pooled without touching anything else.
Measured on streamed 16-token requests: ~45 bytes per request (records.jsonl: ~470).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Iterable, Iterator, Sequence
from enum import StrEnum
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from aifactory.loadgen.metrics.records import RECORD_ADAPTER, RequestRecord

RECORDS_PARQUET = "records.parquet"
#: Records per row group: bounded memory while writing, big enough to compress well.
ROW_GROUP = 16_384
ITL = "itl_ms"
ITL_COLUMN = "itl_us"


def _arrow_type(annotation: object) -> pa.DataType:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if isinstance(annotation, types.UnionType) and args else annotation
    if base is bool:
        return pa.bool_()
    if base is int:
        return pa.int64()
    if base is float:
        return pa.float64()
    if base is str or (isinstance(base, type) and issubclass(base, StrEnum)):
        return pa.dictionary(pa.int8(), pa.string())
    raise TypeError(f"no column type for record field type {annotation!r}")


def _schema() -> pa.Schema:
    hints = typing.get_type_hints(RequestRecord)
    fields = []
    for f in dataclasses.fields(RequestRecord):
        if f.name == ITL:
            fields.append(pa.field(ITL_COLUMN, pa.list_(pa.int32())))
        else:
            fields.append(pa.field(f.name, _arrow_type(hints[f.name])))
    return pa.schema(fields)


SCHEMA = _schema()
NAMES = [f.name for f in dataclasses.fields(RequestRecord)]
FLOATS = [f.name for f in SCHEMA if pa.types.is_floating(f.type)]


def to_table(records: Sequence[RequestRecord]) -> pa.Table:
    columns: dict[str, list[object]] = {
        name: [getattr(rec, name) for rec in records] for name in NAMES if name != ITL
    }
    columns[ITL_COLUMN] = [[round(ms * 1000) for ms in rec.itl_ms] for rec in records]
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def _parquet_writer(path: Path) -> pq.ParquetWriter:
    return pq.ParquetWriter(
        path,
        SCHEMA,
        compression="zstd",
        use_dictionary=[f.name for f in SCHEMA if pa.types.is_dictionary(f.type)],
        use_byte_stream_split=FLOATS,
    )


class RecordWriter:
    """Appends records towards one Parquet file, in complete segment files on the way.

    Every :meth:`flush` (a full row group, or on request) writes a complete, readable file
    ``<name>.seg-<n>.parquet`` and fsyncs it: what a crash leaves behind is readable
    (:func:`recover`), and a caller may drop its own copy of flushed records (the remote
    coordinator purges the stream only up to what is on disk). :meth:`close` joins the
    segments into the final file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._pending: list[RequestRecord] = []
        self.segments: list[Path] = []
        self.count = 0

    def add(self, records: Iterable[RequestRecord]) -> None:
        self._pending.extend(records)
        if len(self._pending) >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        segment = self.path.with_name(f"{self.path.stem}.seg-{len(self.segments):06d}.parquet")
        partial = segment.with_suffix(".partial")  # a kill mid-write leaves no torn segment
        writer = _parquet_writer(partial)
        writer.write_table(to_table(self._pending), row_group_size=ROW_GROUP)
        writer.close()
        with partial.open("rb") as fh:
            os.fsync(fh.fileno())
        partial.rename(segment)
        self.segments.append(segment)
        self.count += len(self._pending)
        self._pending = []

    def close(self) -> None:
        self.flush()
        concatenate(self.segments, self.path)
        for segment in self.segments:
            segment.unlink(missing_ok=True)


def write_records(records: Iterable[RequestRecord], path: Path) -> Path:
    """All of ``records`` into ``path`` at once (tests, conversions, small runs)."""
    writer = RecordWriter(path)
    writer.add(records)
    writer.close()
    return path


def recover(path: Path) -> int:
    """Join what a crashed writer of ``path`` left (its segments) into ``path``."""
    segments = sorted(path.parent.glob(f"{path.stem}.seg-*.parquet"))
    total = concatenate(segments, path)
    for segment in segments:
        segment.unlink()
    for partial in path.parent.glob(f"{path.stem}.seg-*.partial"):
        partial.unlink()  # the segment being written when the writer died: never complete
    return total


def concatenate(parts: Sequence[Path], out: Path) -> int:
    """Copy every row group of ``parts``, in order, into one file (bounded memory)."""
    total = 0
    writer = _parquet_writer(out)
    try:
        for part in parts:
            source = pq.ParquetFile(part)
            for i in range(source.num_row_groups):
                group = source.read_row_group(i)
                writer.write_table(group, row_group_size=ROW_GROUP)
                total += group.num_rows
    finally:
        writer.close()
    return total


def read_table(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """The records of a file as an Arrow table (``.to_pandas()``, ``polars.from_arrow``)."""
    return pq.read_table(path, columns=list(columns) if columns else None)


def iter_batches(
    path: Path, columns: Sequence[str], batch_size: int = ROW_GROUP
) -> Iterator[pa.RecordBatch]:
    """Column batches of a file, one row group's worth at a time."""
    yield from pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=list(columns))


def iter_records(path: Path) -> Iterator[RequestRecord]:
    """Every record as a :class:`RequestRecord` (for small files: one object per row)."""
    for batch in iter_batches(path, SCHEMA.names):
        rows = batch.to_pylist()
        for row in rows:
            row[ITL] = [us / 1000 for us in row.pop(ITL_COLUMN)]
            yield RECORD_ADAPTER.validate_python(row)
