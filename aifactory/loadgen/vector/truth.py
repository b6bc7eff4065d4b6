"""Ground truth: the exact top-k neighbours of every query, by brute force, cached on disk.

A dataset's own file (``.ivecs``) is used when it has at least k neighbours per query and
no filter applies (a filter changes the answer). Otherwise the exact top-k is computed
with numpy in query chunks (one matrix product per chunk, bounded memory), once: the
result is written beside the dataset as ``<file>.truth-<hash>.npy`` (synthetic data: in
the user's cache folder) keyed by the data's identity (path, size, mtime; or the synthetic
parameters), k, the distance and the filter, so every worker and every later run reads it.
Rows a filter excludes never appear; a query with fewer than k matching rows is padded
with -1.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np

from aifactory.loadgen.vector.data import VectorData, data_key, user_cache_dir
from aifactory.shared.vectors import Distance, VectorWorkload

#: Scores computed at once per chunk of queries (float32 cells): ~256 MB.
CHUNK_CELLS = 64_000_000


def exact_top_k(
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    distance: Distance,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Row ids of the ``k`` nearest base rows of each query, nearest first; -1 pads."""
    rows = base.shape[0]
    if distance is Distance.COSINE:
        base = base / np.maximum(np.linalg.norm(base, axis=1, keepdims=True), 1e-30)
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-30)
    base_sq = np.einsum("ij,ij->i", base, base) if distance is Distance.L2 else None
    out = np.full((queries.shape[0], k), -1, dtype=np.int64)
    take = min(k, rows)
    step = max(1, CHUNK_CELLS // max(rows, 1))
    for lo in range(0, queries.shape[0], step):
        scores = queries[lo : lo + step] @ base.T  # (chunk, rows): larger is nearer
        # ||q - x||^2 = ||q||^2 - 2 q.x + ||x||^2, and ||q||^2 does not change the order.
        dist = base_sq[None, :] - 2.0 * scores if base_sq is not None else -scores
        if mask is not None:
            dist[:, ~mask] = np.inf
        if take < rows:
            part = np.argpartition(dist, take - 1, axis=1)[:, :take]
        else:
            part = np.broadcast_to(np.arange(rows), (dist.shape[0], rows))
        part_dist = np.take_along_axis(dist, part, axis=1)
        order = np.argsort(part_dist, axis=1, kind="stable")
        best = np.take_along_axis(part, order, axis=1)
        best_dist = np.take_along_axis(part_dist, order, axis=1)
        best[~np.isfinite(best_dist)] = -1
        out[lo : lo + step, :take] = best
    return out


def _cache_path(data: VectorData, workload: VectorWorkload) -> tuple[Path, str]:
    flt = workload.filter
    key = data_key(
        data,
        f"k={workload.top_k}",
        f"distance={workload.distance.value}",
        f"filter={flt.key}={flt.value!r}" if flt else "filter=none",
        f"categories={data.categories}" if flt else "",
    )
    name = f"truth-{key}.npy"
    return data.cache_dir, name


def _save(array: np.ndarray, folder: Path, name: str) -> Path:
    """Write atomically (temp file + rename): concurrent runs never read half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".truth-", suffix=".npy", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        target = folder / name
        os.replace(tmp, target)
        return target
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def ground_truth(data: VectorData, workload: VectorWorkload) -> np.ndarray:
    """The true top-k row ids per query for ``workload`` (k, distance, filter) on ``data``."""
    k = workload.top_k
    if data.truth is not None and workload.filter is None and data.truth.shape[1] >= k:
        return data.truth[:, :k]
    folder, name = _cache_path(data, workload)
    for place in (folder, user_cache_dir()):
        with contextlib.suppress(OSError, ValueError):
            cached = np.load(place / name, allow_pickle=False)
            if cached.shape == (data.queries.shape[0], k):
                return np.asarray(cached, dtype=np.int64)
    mask = data.matching(workload.filter) if workload.filter is not None else None
    truth = exact_top_k(data.base, data.queries, k, workload.distance, mask)
    try:
        _save(truth, folder, name)
    except OSError:  # a read-only dataset folder: keep it in the user's cache instead
        _save(truth, user_cache_dir(), name)
    return truth


def recall_sets(truth: np.ndarray) -> list[frozenset[int]]:
    """Per query, the set of true neighbour ids (padding dropped): what recall counts."""
    return [frozenset(int(i) for i in row if i >= 0) for row in truth]
