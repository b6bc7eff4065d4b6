"""Vector datasets: seeded random vectors, ``.npy``, ``.fvecs``/``.ivecs``, JSONL.

Formats (read locally, never downloaded):

- ``.fvecs`` (the TEXMEX / ANN-benchmarks format): per vector a little-endian int32 ``d``
  and ``d`` float32s. ``.ivecs`` is the same with int32s: ground truth, one row of
  neighbour ids per query. Beside ``x_base.fvecs``, ``x_query.fvecs`` and
  ``x_groundtruth.ivecs`` are used when present (SIFT1M, GIST1M ship like this).
- ``.npy``: a 2-D float array (``numpy.save``); ground truth as a 2-D int array.
- JSONL: one ``{"vector": [...], "metadata": {...}}`` per line (``metadata`` optional,
  flat, with string, number or boolean values).

Queries are never part of the indexed set: a queries file, or else the last ``queries``
rows held out. Anything malformed is a :class:`DatasetError` naming the file, line, field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import platformdirs

from aifactory.loadgen.backends.vector import Metadata
from aifactory.loadgen.errors import DatasetError
from aifactory.shared.vectors import (
    VectorDataset,
    VectorDistribution,
    VectorFilter,
    VectorFormat,
)

CATEGORY_KEY = "category"


def user_cache_dir() -> Path:
    """Where computed ground truth of synthetic data (and of read-only folders) is kept."""
    return Path(platformdirs.user_cache_dir("aifactory")) / "vectors"


@dataclass(frozen=True, eq=False)
class VectorData:
    """The indexed rows, the held-out queries and what is known about their neighbours."""

    base: np.ndarray  # (rows, dimension) float32, C-contiguous
    queries: np.ndarray  # (queries, dimension) float32
    truth: np.ndarray | None  # (queries, >= 1) int row ids from a file, best first
    metadata: list[Metadata] | None  # per base row (JSONL); None: the category rule
    categories: int
    #: Identifies the data for the ground-truth cache (file identities or the parameters).
    identity: str
    #: Where the computed ground truth is cached: beside the dataset.
    cache_dir: Path

    @property
    def rows(self) -> int:
        return int(self.base.shape[0])

    @property
    def dimension(self) -> int:
        return int(self.base.shape[1])

    def metadata_rows(self, start: int, stop: int) -> list[Metadata]:
        if self.metadata is not None:
            return self.metadata[start:stop]
        return [{CATEGORY_KEY: i % self.categories} for i in range(start, stop)]

    def matching(self, flt: VectorFilter) -> np.ndarray:
        """Which base rows a filter lets through (a boolean mask)."""
        if self.metadata is None:
            if flt.key != CATEGORY_KEY or not isinstance(flt.value, int):
                return np.zeros(self.rows, dtype=bool)
            return np.arange(self.rows) % self.categories == flt.value
        return np.array([_equal(m.get(flt.key), flt.value) for m in self.metadata], dtype=bool)


def _equal(found: object, wanted: int | str) -> bool:
    """Metadata equality as the databases see it: 1 is not "1", True is not 1."""
    return found == wanted and isinstance(found, bool) == isinstance(wanted, bool)


def _identity(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def _vecs(path: Path, dtype: type[np.generic], what: str) -> np.ndarray:
    """Read an ``.fvecs``/``.ivecs`` file (int32 length, then that many 4-byte values)."""
    raw = _read_bytes(path)
    if len(raw) < 4 or len(raw) % 4:
        raise DatasetError(str(path), None, None, f"not an {what} file (size {len(raw)} bytes)")
    words = np.frombuffer(raw, dtype="<i4")
    d = int(words[0])
    if d <= 0 or words.size % (d + 1):
        raise DatasetError(str(path), None, None, f"not an {what} file (first length {d})")
    table = words.reshape(-1, d + 1)
    bad = np.nonzero(table[:, 0] != d)[0]
    if bad.size:
        raise DatasetError(
            str(path), None, None, f"vector {int(bad[0])} has length {table[bad[0], 0]}, not {d}"
        )
    return np.ascontiguousarray(table[:, 1:].view("<f4" if dtype is np.float32 else "<i4"))


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise DatasetError(str(path), None, None, "file not found") from exc
    except OSError as exc:
        raise DatasetError(str(path), None, None, f"cannot read: {exc.strerror}") from exc


def _npy(path: Path, kind: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise DatasetError(str(path), None, None, "file not found") from exc
    except (OSError, ValueError) as exc:
        raise DatasetError(str(path), None, None, f"not a .npy array: {exc}") from exc
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise DatasetError(str(path), None, None, f"expected a 2-D array, got shape {array.shape}")
    wanted = "f" if kind == "vectors" else "i"
    if array.dtype.kind not in (wanted, "u" if wanted == "i" else "f"):
        raise DatasetError(str(path), None, None, f"{kind} must be numbers, got {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32 if kind == "vectors" else np.int64)


def _jsonl(path: Path) -> tuple[np.ndarray, list[Metadata]]:
    vectors: list[list[float]] = []
    metadata: list[Metadata] = []
    text = _read_bytes(path)
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise DatasetError(str(path), lineno, None, f"invalid JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise DatasetError(str(path), lineno, None, "expected a JSON object per line")
        unknown = set(obj) - {"vector", "metadata"}
        if unknown:
            raise DatasetError(
                str(path), lineno, sorted(unknown)[0], "unknown field (valid: vector, metadata)"
            )
        vector = obj.get("vector")
        if (
            not isinstance(vector, list)
            or not vector
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in vector)
        ):
            raise DatasetError(str(path), lineno, "vector", "must be a non-empty list of numbers")
        if vectors and len(vector) != len(vectors[0]):
            raise DatasetError(
                str(path), lineno, "vector", f"length {len(vector)}, not {len(vectors[0])}"
            )
        meta = obj.get("metadata") or {}
        if not isinstance(meta, dict) or not all(
            isinstance(v, int | float | str | bool) for v in meta.values()
        ):
            raise DatasetError(
                str(path), lineno, "metadata", "must be an object of string, number or bool values"
            )
        vectors.append(vector)
        metadata.append(meta)
    if not vectors:
        raise DatasetError(str(path), None, None, "no vectors in file")
    return np.asarray(vectors, dtype=np.float32), metadata


def _read(path: Path, fmt: VectorFormat) -> tuple[np.ndarray, list[Metadata] | None]:
    if fmt is VectorFormat.FVECS:
        return _vecs(path, np.float32, ".fvecs"), None
    if fmt is VectorFormat.NPY:
        return _npy(path, "vectors"), None
    return _jsonl(path)


def _truth_file(path: Path) -> np.ndarray:
    if path.suffix == ".ivecs":
        return _vecs(path, np.int32, ".ivecs").astype(np.int64)
    return _npy(path, "ground truth")


def _sibling(path: Path, suffix: str) -> Path | None:
    """``x_base.fvecs`` → ``x_query.fvecs`` / ``x_groundtruth.ivecs``, when they exist."""
    if not path.name.endswith("_base.fvecs"):
        return None
    candidate = path.with_name(path.name[: -len("_base.fvecs")] + suffix)
    return candidate if candidate.is_file() else None


def _synthetic(cfg: VectorDataset) -> VectorData:
    rng = np.random.default_rng(cfg.seed)
    shape = (cfg.count + cfg.queries, cfg.dimension)
    if cfg.distribution is VectorDistribution.NORMAL:
        vectors = rng.standard_normal(shape, dtype=np.float32)
    else:
        vectors = rng.random(shape, dtype=np.float32)
    key = f"synthetic:{cfg.distribution.value}:{cfg.count}:{cfg.queries}:{cfg.dimension}"
    return VectorData(
        base=vectors[: cfg.count],
        queries=vectors[cfg.count :],
        truth=None,
        metadata=None,
        categories=cfg.categories,
        identity=f"{key}:{cfg.seed}",
        cache_dir=user_cache_dir(),
    )


def load_vectors(cfg: VectorDataset) -> VectorData:
    """Read (or generate) the dataset ``cfg`` describes; :class:`DatasetError` when unusable."""
    if cfg.format is VectorFormat.SYNTHETIC:
        return _synthetic(cfg)
    assert cfg.path is not None
    path = cfg.path
    vectors, metadata = _read(path, cfg.format)
    queries_path = cfg.queries_path or (
        _sibling(path, "_query.fvecs") if cfg.format is VectorFormat.FVECS else None
    )
    truth_path = cfg.ground_truth_path or (
        _sibling(path, "_groundtruth.ivecs") if queries_path is not None else None
    )
    files = [path]
    if queries_path is not None:
        queries, _ = _read(queries_path, cfg.format)
        base = vectors
        files.append(queries_path)
    else:
        if truth_path is not None:
            raise DatasetError(
                str(truth_path), None, None, "ground truth needs its queries file (queries_path)"
            )
        if vectors.shape[0] <= cfg.queries:
            raise DatasetError(
                str(path),
                None,
                None,
                f"{vectors.shape[0]} vectors: too few to hold {cfg.queries} out as queries",
            )
        base, queries = vectors[: -cfg.queries], vectors[-cfg.queries :]
        metadata = metadata[: -cfg.queries] if metadata is not None else None
    if queries.shape[1] != base.shape[1]:
        raise DatasetError(
            str(queries_path),
            None,
            None,
            f"queries have dimension {queries.shape[1]}, the data {base.shape[1]}",
        )
    truth = _truth_file(truth_path) if truth_path is not None else None
    if truth is not None:
        assert truth_path is not None
        if truth.shape[0] != queries.shape[0]:
            raise DatasetError(
                str(truth_path),
                None,
                None,
                f"{truth.shape[0]} rows of neighbours for {queries.shape[0]} queries",
            )
        if truth.size and (truth.min() < 0 or truth.max() >= base.shape[0]):
            raise DatasetError(str(truth_path), None, None, "neighbour ids outside the data")
    identity = "|".join(_identity(p) for p in files) + f"|held-out:{cfg.queries}"
    return VectorData(
        base=np.ascontiguousarray(base),
        queries=np.ascontiguousarray(queries),
        truth=truth,
        metadata=metadata,
        categories=cfg.categories,
        identity=identity,
        cache_dir=path.resolve().parent,
    )


def data_key(data: VectorData, *parts: object) -> str:
    """A short stable hash of the data's identity and ``parts`` (file names, cache keys)."""
    text = "|".join([data.identity, *(str(p) for p in parts)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
