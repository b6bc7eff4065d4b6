"""The vector-database part of a workload: which operations, on which vectors, how many.

Part of the workload contract (``Workload.vector``), so it travels in ``bench.requested``,
experiment files and every summary's ``config``. A vector backend (``chroma``, ``qdrant``)
runs it; generation backends refuse it. Every row is identified by its position in the
dataset's indexed set (Chroma ids ``"0"``, ``"1"``…, Qdrant point ids 0, 1…), which is
what ground truth files (``.ivecs``) and the brute-force ground truth refer to.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from aifactory.shared.strict import StrictModel

#: Collection names valid in both Chroma (3-512 of [A-Za-z0-9._-], alphanumeric ends) and
#: Qdrant, and safe in a URL path.
COLLECTION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,62}[A-Za-z0-9]$"
#: Metadata keys a filter may name (plain identifiers: no operators, no nesting).
METADATA_KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"


class VectorMode(StrEnum):
    """What a vector workload's requests do."""

    SEARCH = "search"  # top-k nearest-neighbour queries (held-out query vectors)
    UPSERT = "upsert"  # batches of indexed rows written again (ids kept: the index is unchanged)
    MIXED = "mixed"  # each request a search with probability search_fraction, else an upsert
    INGEST = "ingest"  # every indexed row upserted exactly once, in batches, then stop


class VectorFormat(StrEnum):
    SYNTHETIC = "synthetic"  # seeded random vectors
    NPY = "npy"  # a 2-D float array saved by numpy
    FVECS = "fvecs"  # the ANN-benchmarks / TEXMEX format (.fvecs, queries, .ivecs truth)
    JSONL = "jsonl"  # {"vector": [...], "metadata": {...}} per line


class VectorDistribution(StrEnum):
    """How synthetic components are drawn (each one independently)."""

    NORMAL = "normal"  # standard normal
    UNIFORM = "uniform"  # uniform on [0, 1)


class Distance(StrEnum):
    """The similarity the collection is built with; the ground truth uses the same one."""

    L2 = "l2"  # Euclidean (Chroma reports it squared: the order is the same)
    COSINE = "cosine"
    IP = "ip"  # inner product, larger is nearer


class VectorDataset(StrictModel):
    """The indexed vectors and the queries, with or without known neighbours.

    Queries are never indexed: a file of queries (``queries_path``; for ``x_base.fvecs`` a
    ``x_query.fvecs`` beside it is found by itself), or else the last ``queries`` rows of
    the data, held out. Without a ground-truth file (``.ivecs`` or ``.npy`` of row ids,
    ``x_groundtruth.ivecs`` found beside ``x_base.fvecs``), exact top-k is computed once by
    brute force and cached beside the dataset (synthetic: in the user's cache folder).
    """

    format: VectorFormat = VectorFormat.SYNTHETIC
    path: Path | None = None
    queries_path: Path | None = None
    ground_truth_path: Path | None = None
    dimension: int = Field(default=128, ge=1, le=65_536, description="synthetic only")
    count: int = Field(default=10_000, ge=1, le=100_000_000, description="synthetic only")
    queries: int = Field(default=100, ge=1, le=1_000_000)
    distribution: VectorDistribution = VectorDistribution.NORMAL
    #: Rows without metadata of their own get ``{"category": row % categories}``, so a
    #: filter can be benchmarked on any dataset.
    categories: int = Field(default=10, ge=1, le=1_000_000)
    seed: int = 0

    @model_validator(mode="after")
    def _paths(self) -> Self:
        if self.format is VectorFormat.SYNTHETIC:
            given = [n for n in ("path", "queries_path", "ground_truth_path") if getattr(self, n)]
            if given:
                raise ValueError(f"synthetic vectors take no files ({', '.join(given)})")
        elif self.path is None:
            raise ValueError(f"vector format {self.format.value!r} needs a path")
        return self


class VectorFilter(StrictModel):
    """Equality on one metadata field: only rows whose ``key`` equals ``value`` match."""

    key: str = Field(pattern=METADATA_KEY_PATTERN)
    value: int | str


class VectorWorkload(StrictModel):
    """A vector-database workload (for the ``chroma`` and ``qdrant`` backends)."""

    mode: VectorMode = VectorMode.SEARCH
    collection: str = Field(default="aifactory-bench", pattern=COLLECTION_PATTERN)
    distance: Distance = Distance.L2
    top_k: int = Field(default=10, ge=1, le=10_000)
    batch_size: int = Field(default=100, ge=1, le=100_000)
    #: ``mixed``: the share of requests that are searches (the rest are upserts).
    search_fraction: float = Field(default=0.9, ge=0.0, le=1.0)
    filter: VectorFilter | None = None
    #: Drop the collection and create it empty before the load (default: for ``ingest``).
    recreate: bool | None = None
    #: HNSW search beam (Qdrant ``hnsw_ef`` per query; Chroma ``ef_search``, set when the
    #: collection is created). ``None``: the server's default.
    ef_search: int | None = Field(default=None, ge=1, le=1_000_000)
    dataset: VectorDataset = VectorDataset()

    @property
    def recreates(self) -> bool:
        return self.recreate if self.recreate is not None else self.mode is VectorMode.INGEST

    @property
    def searches(self) -> bool:
        return self.mode is VectorMode.SEARCH or (
            self.mode is VectorMode.MIXED and self.search_fraction > 0
        )

    @property
    def writes(self) -> bool:
        return self.mode in (VectorMode.UPSERT, VectorMode.INGEST) or (
            self.mode is VectorMode.MIXED and self.search_fraction < 1
        )
