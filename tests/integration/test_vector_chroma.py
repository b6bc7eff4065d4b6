"""A real Chroma server (``chroma run`` from the chromadb package) deployed by the local
executor from ``recipes/vector-db/chroma.yaml``, benchmarked through ``aifactory bench run``.

The dataset has known neighbours by construction: 150 tight clusters of 10 rows, far
apart, and one query near each cluster's centre, whose true top-10 is its cluster (the
``.ivecs`` ground truth is written from that, not computed). Bad input against the same
server: another dimension, an empty collection; each ends as typed records.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pyarrow.compute as pc
import pytest

from aifactory.loadgen import BenchConfig, run_benchmark
from aifactory.loadgen.backends.chroma import Chroma
from aifactory.loadgen.results import RECORDS_FILE, read_records
from aifactory.loadgen.transport import HttpClient
from aifactory.shared.connection import connection_path, endpoints, parse_connection
from aifactory.shared.executors.local import LocalExecutor
from aifactory.shared.natsd import free_port
from aifactory.shared.recipes import load_recipe
from aifactory.shared.render import render_script
from aifactory.shared.results import ErrorType, Operation
from aifactory.shared.vectors import VectorWorkload
from tests.conftest import need
from tests.shellkit import ROOT
from tests.unit.test_vector_data import write_vecs

VENV_BIN = Path(sys.executable).parent
CLUSTERS, PER_CLUSTER, DIM = 150, 10, 16


def chroma_available() -> bool:
    return (VENV_BIN / "chroma").exists() or shutil.which("chroma") is not None


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The Chroma recipe, rendered and run by the local executor; its endpoint's URL."""
    need(chroma_available(), "the `chroma` command (pip install chromadb, deploy/setup.sh)")
    tmp = tmp_path_factory.mktemp("chroma")
    recipe = load_recipe("vector-db/chroma", ROOT, {"ports": {"http": free_port()}})
    workdir = tmp / "work"
    script = render_script(recipe, job_name="aif-chroma-test", workdir=workdir, service_id="c1")
    executor = LocalExecutor(tmp / "state")
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{VENV_BIN}:{path}"  # as `aifactory up` gives its jobs
    try:
        job = asyncio.run(executor.submit(script, "aif-chroma-test", workdir))
    finally:
        os.environ["PATH"] = path
    try:
        deadline = time.monotonic() + 90
        while True:
            assert time.monotonic() < deadline, job.output_path.read_text()[-2000:]
            try:
                [endpoint] = endpoints(
                    parse_connection(connection_path(workdir).read_text()), lambda _: "127.0.0.1"
                )
                if httpx.get(recipe.health_url(endpoint), timeout=2).status_code == 200:
                    break
            except (FileNotFoundError, httpx.TransportError):
                pass
            time.sleep(0.3)
        yield endpoint.url
    finally:
        asyncio.run(executor.cancel(job.job_id))


def clustered_dataset(folder: Path) -> Path:
    rng = np.random.default_rng(11)
    centres = rng.uniform(-100, 100, (CLUSTERS, DIM)).astype(np.float32)
    base = np.repeat(centres, PER_CLUSTER, axis=0) + rng.normal(
        0, 0.5, (CLUSTERS * PER_CLUSTER, DIM)
    )
    queries = centres + rng.normal(0, 0.05, centres.shape)
    truth = np.arange(CLUSTERS * PER_CLUSTER).reshape(CLUSTERS, PER_CLUSTER)  # by construction
    write_vecs(folder / "clusters_base.fvecs", base.astype(np.float32), "<f4")
    write_vecs(folder / "clusters_query.fvecs", queries.astype(np.float32), "<f4")
    write_vecs(folder / "clusters_groundtruth.ivecs", truth, "<i4")
    return folder / "clusters_base.fvecs"


def bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "aifactory"), "bench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def failed_records(results: Path) -> list[dict[str, object]]:
    """The first failed records of a results folder (what a failed assertion shows)."""
    table = read_records(results / RECORDS_FILE).filter(pc.field("error").is_valid())
    return table.slice(0, 5).select(["operation", "error", "error_message"]).to_pylist()


def test_ingest_search_recall_and_report_through_the_cli(chroma_url: str, tmp_path: Path) -> None:
    data = clustered_dataset(tmp_path)
    common = ["--target", chroma_url, "--backend", "chroma", "--vectors", str(data)]
    common += ["--collection", "clusters", "--workers", "2", "--no-progress"]
    ingest = bench(
        "run",
        *common,
        "--vector-mode",
        "ingest",
        "--batch-size",
        "250",
        "--profile",
        "concurrency",
        "--concurrency",
        "2",
        "--out",
        "ingest",
        cwd=tmp_path,
    )
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    summary = json.loads((tmp_path / "ingest" / "summary.json").read_text())
    assert not summary["runs"][0]["failures"], failed_records(tmp_path / "ingest")
    [upsert] = summary["runs"][0]["operations"]
    assert (upsert["operation"], upsert["rows"], upsert["requests_ok"]) == ("upsert", 1500, 6)
    assert upsert["rows_per_s"] > 0 and upsert["bytes_sent"] > 1500 * DIM * 4

    search = bench(
        "run",
        *common,
        "--profile",
        "constant",
        "--rate",
        "100",
        "--requests",
        "300",
        "--slo-recall",
        "0.9",
        "--out",
        "search",
        cwd=tmp_path,
    )
    assert search.returncode == 0, search.stdout + search.stderr
    assert "recall@10 mean" in search.stdout
    run = json.loads((tmp_path / "search" / "summary.json").read_text())["runs"][0]
    [found] = run["operations"]
    assert not run["failures"], failed_records(tmp_path / "search")
    assert found["operation"] == "search" and found["requests_ok"] == 300
    assert found["recall"]["count"] == 300 and found["recall"]["mean"] >= 0.95, found["recall"]
    assert found["top_k"] == 10 and found["goodput"] > 0
    report = bench("report", str(tmp_path / "search"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "search" / "report.html").read_text()
    assert "recall@10" in html and "<svg" in html


async def test_another_dimension_and_an_empty_collection_are_typed_failures(
    chroma_url: str,
) -> None:
    def cfg(collection: str, dimension: int, **vector: object) -> BenchConfig:
        dataset = {"count": 300, "queries": 10, "dimension": dimension}
        return BenchConfig.model_validate(
            {
                "target": chroma_url,
                "backend": "chroma",
                "workers": 1,
                "profile": "concurrency",
                "concurrency": 2,
                "requests": 20,
                "vector": {"collection": collection, "dataset": dataset, **vector},
            }
        )

    ingest = cfg("dims", 16, mode="ingest")
    await run_benchmark(ingest.model_copy(update={"requests": None}), progress=False)
    for mode in ("search", "upsert"):
        result = await run_benchmark(cfg("dims", 8, mode=mode), progress=False)
        assert result.summary.runs[0].failures == {ErrorType.DIMENSION_MISMATCH: 20}, mode
        assert all("dimension" in (r.error_message or "") for r in result.records)

    empty = Chroma(VectorWorkload(collection="empty-one"))
    async with HttpClient(chroma_url, timeout_s=10) as client:
        await empty.drop_collection(client)
        await empty.create_collection(client, 16)
    result = await run_benchmark(cfg("empty-one", 16), progress=False)
    run = result.summary.runs[0]
    assert run.failures == {ErrorType.EMPTY_COLLECTION: 20}
    assert {r.operation for r in result.records} == {Operation.SEARCH}
    assert all(r.results == 0 for r in result.records)
