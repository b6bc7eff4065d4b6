"""Vector datasets and ground truth: formats, held-out queries, exact top-k, the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from aifactory.loadgen.errors import DatasetError
from aifactory.loadgen.vector import truth as truth_module
from aifactory.loadgen.vector.data import load_vectors
from aifactory.loadgen.vector.truth import exact_top_k, ground_truth, recall_sets
from aifactory.shared.vectors import Distance, VectorDataset, VectorFilter, VectorWorkload


def write_vecs(path: Path, rows: np.ndarray, dtype: str) -> Path:
    """The TEXMEX layout: per row an int32 length, then the values."""
    n, d = rows.shape
    table = np.empty((n, d + 1), dtype="<i4")
    table[:, 0] = d
    table[:, 1:] = rows.astype(dtype).view("<i4")
    path.write_bytes(table.tobytes())
    return path


def naive_top_k(base: np.ndarray, q: np.ndarray, k: int, distance: Distance) -> list[int]:
    def score(x: np.ndarray) -> float:
        if distance is Distance.L2:
            return float(np.sum((x.astype(np.float64) - q) ** 2))
        if distance is Distance.IP:
            return -float(np.dot(x, q))
        return -float(np.dot(x, q) / (np.linalg.norm(x) * np.linalg.norm(q)))

    return sorted(range(len(base)), key=lambda i: score(base[i]))[:k]


@pytest.mark.parametrize("distance", list(Distance))
def test_exact_top_k_matches_a_naive_search(distance: Distance) -> None:
    rng = np.random.default_rng(7)
    base = rng.standard_normal((300, 12), dtype=np.float32)
    queries = rng.standard_normal((9, 12), dtype=np.float32)
    found = exact_top_k(base, queries, 5, distance)
    for q in range(9):
        assert list(found[q]) == naive_top_k(base, queries[q], 5, distance)


def test_filtered_truth_only_holds_matching_rows_and_pads() -> None:
    base = np.arange(40, dtype=np.float32).reshape(20, 2)
    mask = np.arange(20) % 10 == 3  # rows 3 and 13 only
    found = exact_top_k(base, base[:1], 4, Distance.L2, mask)
    assert list(found[0]) == [3, 13, -1, -1]
    assert recall_sets(found) == [frozenset({3, 13})]


def test_synthetic_is_seeded_and_queries_are_held_out() -> None:
    cfg = VectorDataset(count=50, queries=5, dimension=4, seed=3)
    a, b = load_vectors(cfg), load_vectors(cfg)
    assert a.base.shape == (50, 4) and a.queries.shape == (5, 4)
    assert np.array_equal(a.base, b.base) and np.array_equal(a.queries, b.queries)
    assert not any((a.base == q).all(axis=1).any() for q in a.queries)
    assert a.metadata_rows(8, 11) == [{"category": 8}, {"category": 9}, {"category": 0}]
    other = load_vectors(VectorDataset(count=50, queries=5, dimension=4, seed=4))
    assert not np.array_equal(a.base, other.base)


def test_fvecs_with_its_query_and_truth_files_beside_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = rng.random((30, 6), dtype=np.float32)
    queries = rng.random((4, 6), dtype=np.float32)
    truth = exact_top_k(base, queries, 10, Distance.L2)
    write_vecs(tmp_path / "toy_base.fvecs", base, "<f4")
    write_vecs(tmp_path / "toy_query.fvecs", queries, "<f4")
    write_vecs(tmp_path / "toy_groundtruth.ivecs", truth[:, ::-1].copy(), "<i4")  # marked
    data = load_vectors(VectorDataset(format="fvecs", path=tmp_path / "toy_base.fvecs"))
    assert np.array_equal(data.base, base) and np.array_equal(data.queries, queries)
    assert data.truth is not None and np.array_equal(data.truth, truth[:, ::-1])
    # The file's truth is used as given (first k columns) when no filter applies.
    got = ground_truth(data, VectorWorkload(top_k=3))
    assert np.array_equal(got, truth[:, ::-1][:, :3])


def test_npy_holds_out_the_last_rows_and_truth_is_cached_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors = np.random.default_rng(1).standard_normal((64, 8)).astype(np.float32)
    np.save(tmp_path / "v.npy", vectors)
    cfg = VectorDataset(format="npy", path=tmp_path / "v.npy", queries=4)
    data = load_vectors(cfg)
    assert data.base.shape == (60, 8) and np.array_equal(data.queries, vectors[60:])
    workload = VectorWorkload(top_k=5, dataset=cfg)
    first = ground_truth(data, workload)
    [cached] = list(tmp_path.glob("truth-*.npy"))
    assert np.array_equal(np.load(cached), first)

    def no_brute_force(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("the cached truth should have been read")

    monkeypatch.setattr(truth_module, "exact_top_k", no_brute_force)
    assert np.array_equal(ground_truth(load_vectors(cfg), workload), first)
    # Another k, distance or filter is another truth: not the cached one.
    with pytest.raises(AssertionError, match="cached truth"):
        ground_truth(data, VectorWorkload(top_k=5, distance="ip", dataset=cfg))
    with pytest.raises(AssertionError, match="cached truth"):
        flt = VectorFilter(key="category", value=1)
        ground_truth(data, VectorWorkload(top_k=5, filter=flt, dataset=cfg))


def test_jsonl_metadata_drives_the_filtered_truth(tmp_path: Path) -> None:
    lines = [
        {"vector": [float(i), 0.0], "metadata": {"colour": "red" if i % 2 else "blue"}}
        for i in range(12)
    ]
    path = tmp_path / "v.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n")
    data = load_vectors(VectorDataset(format="jsonl", path=path, queries=2))
    assert data.rows == 10 and data.metadata_rows(0, 2) == [{"colour": "blue"}, {"colour": "red"}]
    flt = VectorFilter(key="colour", value="red")
    got = ground_truth(data, VectorWorkload(top_k=3, filter=flt))
    assert all(int(i) % 2 == 1 for i in got.ravel())  # red rows only
    assert list(got[0]) == [9, 7, 5]  # query 10 = (10, 0): nearest red rows first


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"vector": [1, 2]}\n{"vector": [1]}\n', ":2: field 'vector': length 1, not 2"),
        (b'{"vector": [1, 2]}\nnot json\n', ":2: invalid JSON"),
        (b'{"vector": [1, 2], "meta": {}}\n', ":1: field 'meta': unknown field"),
        (b'{"vector": [1, "x"]}\n', ":1: field 'vector': must be a non-empty list of numbers"),
        (b'{"vector": [1, 2], "metadata": {"a": [1]}}\n', ":1: field 'metadata'"),
    ],
)
def test_bad_jsonl_names_the_line_and_field(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(DatasetError) as err:
        load_vectors(VectorDataset(format="jsonl", path=path, queries=1))
    assert expected in str(err.value)


def test_bad_files_are_dataset_errors(tmp_path: Path) -> None:
    (tmp_path / "odd.fvecs").write_bytes(b"\x02\x00\x00\x00abc")
    with pytest.raises(DatasetError, match=r"not an \.fvecs file"):
        load_vectors(VectorDataset(format="fvecs", path=tmp_path / "odd.fvecs"))
    np.save(tmp_path / "small.npy", np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(DatasetError, match="too few to hold 100 out"):
        load_vectors(VectorDataset(format="npy", path=tmp_path / "small.npy"))
    with pytest.raises(DatasetError, match="file not found"):
        load_vectors(VectorDataset(format="npy", path=tmp_path / "missing.npy"))
    base = np.ones((5, 2), dtype=np.float32)
    write_vecs(tmp_path / "a_base.fvecs", base, "<f4")
    write_vecs(tmp_path / "a_query.fvecs", base[:2], "<f4")
    write_vecs(tmp_path / "a_groundtruth.ivecs", np.array([[0], [9]]), "<i4")
    with pytest.raises(DatasetError, match="neighbour ids outside the data"):
        load_vectors(VectorDataset(format="fvecs", path=tmp_path / "a_base.fvecs"))
    with pytest.raises(ValueError, match="needs a path"):
        VectorDataset(format="npy")
    with pytest.raises(ValueError, match="synthetic vectors take no files"):
        VectorDataset(path=tmp_path / "x.npy")
