"""``examples/vector-db.yaml`` on the embedded default: the experiment as a user runs it.

A real Chroma deployed from its recipe by the local executor, an ingest workload, then a
sweep of searches with recall@10; one report with the vector charts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import need
from tests.integration.test_experiment import _env
from tests.shellkit import REPO

pytestmark = pytest.mark.nats


def test_the_vector_db_example_runs_on_the_embedded_default(tmp_path: Path) -> None:
    chroma = Path(sys.executable).with_name("chroma")
    need(chroma.exists() or shutil.which("chroma") is not None, "the `chroma` command")
    out = tmp_path / "results"
    # The example as shipped, but each sweep stage loads for 2 s instead of 5 (CI time).
    spec = yaml.safe_load((REPO / "examples" / "vector-db.yaml").read_text())
    [search_spec] = [w for w in spec["workloads"] if w["name"] == "search"]
    search_spec["duration_s"] = 2
    example = tmp_path / "vector-db.yaml"
    example.write_text(yaml.safe_dump(spec))
    cli = [sys.executable, "-m", "aifactory.cli.main", "experiment", "run"]
    run = subprocess.run(
        [*cli, str(example), "--output-dir", str(out)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=400,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    [folder] = list(out.iterdir())
    outcome = json.loads((folder / "outcome.json").read_text())
    assert outcome["ok"] is True, outcome
    ingest = json.loads((folder / "workloads" / "ingest" / "summary.json").read_text())
    [upsert] = ingest["runs"][0]["operations"]
    assert upsert["rows"] == 20000 and upsert["requests_failed"] == 0
    search = json.loads((folder / "workloads" / "search" / "summary.json").read_text())
    assert len(search["runs"]) == 5  # synchronous, throughput, three rates
    for stage in search["runs"]:
        [found] = stage["operations"]
        assert found["requests_failed"] == 0, found["failures"]
        assert found["recall"]["count"] == found["requests_ok"] > 0
        assert found["recall"]["mean"] > 0.8
    html = (folder / "report.html").read_text()
    for title in ("Recall against QPS", "Ingest throughput", "per operation"):
        assert title in html
    service = json.loads((folder / "service" / "service.json").read_text())
    assert service["recipe"] == "vector-db/chroma" and service["state"] == "cancelled"
