"""``bench run``'s vector-database options (``--backend chroma|qdrant``) and table rows.

Kept apart from ``bench.py`` so that the LLM options and the vector ones each read as one
block; the command turns these into the workload's ``vector`` section, validated by the
same model as an experiment file's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aifactory.shared.results import Operation, RunSummary
from aifactory.shared.vectors import VectorFormat

PANEL = "Vector database (--backend chroma, qdrant)"

_SUFFIX_FORMATS = {
    ".npy": VectorFormat.NPY,
    ".fvecs": VectorFormat.FVECS,
    ".jsonl": VectorFormat.JSONL,
}


def parse_filter(text: str | None) -> dict[str, Any] | None:
    """``key=value`` → an equality filter; digits make an integer value."""
    if text is None:
        return None
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--filter wants key=value, got {text!r}")
    parsed: int | str = int(value) if value.lstrip("-").isdigit() else value
    return {"key": key, "value": parsed}


def vector_settings(
    *,
    mode: str,
    collection: str,
    distance: str,
    top_k: int,
    batch_size: int,
    search_fraction: float,
    filter_text: str | None,
    recreate: bool | None,
    ef_search: int | None,
    vectors: Path | None,
    queries_file: Path | None,
    ground_truth: Path | None,
    dimension: int,
    count: int,
    queries: int,
    distribution: str,
    seed: int,
) -> dict[str, Any]:
    """The ``vector`` section of the workload, from the command line."""
    dataset: dict[str, Any] = {"queries": queries, "seed": seed}
    if vectors is None:
        dataset.update(dimension=dimension, count=count, distribution=distribution)
    else:
        fmt = _SUFFIX_FORMATS.get(vectors.suffix)
        if fmt is None:
            raise ValueError(f"--vectors: {vectors.name} is not .npy, .fvecs or .jsonl")
        dataset.update(
            format=fmt, path=vectors, queries_path=queries_file, ground_truth_path=ground_truth
        )
    return {
        "mode": mode,
        "collection": collection,
        "distance": distance,
        "top_k": top_k,
        "batch_size": batch_size,
        "search_fraction": search_fraction,
        "filter": parse_filter(filter_text),
        "recreate": recreate,
        "ef_search": ef_search,
        "dataset": dataset,
    }


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def operation_rows(runs: list[RunSummary]) -> list[tuple[str, list[str]]]:
    """Per-operation lines of the summary table, for runs with searches or upserts."""
    rows: list[tuple[str, list[str]]] = []
    for op in (Operation.SEARCH, Operation.UPSERT):
        found = [next((o for o in r.operations if o.operation is op), None) for r in runs]
        if not any(found):
            continue
        name = op.value
        rows.append(
            (
                f"{name} ok / failed",
                [f"{o.requests_ok} / {o.requests_failed}" if o else "-" for o in found],
            )
        )
        rows.append((f"{name} /s", [_num(o.request_throughput) if o else "-" for o in found]))
        for stat in ("p50", "p99"):
            rows.append(
                (
                    f"{name} {stat} ms",
                    [_num(getattr(o.latency_ms, stat)) if o else "-" for o in found],
                )
            )
        if op is Operation.SEARCH:
            k = next((o.top_k for o in found if o and o.top_k), None)
            rows.append((f"recall@{k} mean", [_num(o.recall.mean, 4) if o else "-" for o in found]))
            rows.append((f"recall@{k} p5", [_num(o.recall.p5, 4) if o else "-" for o in found]))
        else:
            rows.append(("rows /s", [_num(o.rows_per_s, 0) if o else "-" for o in found]))
    if any(r.index_ready_s is not None for r in runs):
        rows.append(("index ready s", [_num(r.index_ready_s) for r in runs]))
    return rows
