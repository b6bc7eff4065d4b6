"""Targets from the registry, the SD and file_sd shapes, and label validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from aifactory.monitor.targets import (
    benchmarked,
    expected_exporter_files,
    read_exporters,
    sd_groups,
    service_targets,
    write_file_sd,
)
from aifactory.shared.connection import NodeExporters
from aifactory.shared.messages import BenchTarget, Endpoint, ScrapeTarget, TargetRole
from aifactory.shared.recipes import RecipeError, load_recipe
from aifactory.shared.registry import BenchmarkRecord, ServiceRecord
from aifactory.shared.states import BenchState, ServiceState
from aifactory.shared.workload import Workload
from tests.shellkit import ROOT


def record(
    tmp: Path, overrides: dict[str, Any] | None = None, nodes: list[str] | None = None
) -> ServiceRecord:
    spec = load_recipe("inference/simulator", ROOT, overrides or {})
    hosts = nodes or ["127.0.0.1"]
    return ServiceRecord(
        service_id="svc1",
        recipe=spec.ref,
        request_id="r",
        job_name="aif-svc1",
        executor="local",
        workdir=str(tmp),
        state=ServiceState.RUNNING,
        job_id="42",
        nodes=hosts,
        endpoints=[
            Endpoint(host=h, port=8000, url=f"http://{h}:8000", replica=i)
            for i, h in enumerate(hosts[:1])
        ],
        spec=spec,
    )


def exporters(index: int, node: int | None, gpu: int | None, host: str = "vm") -> NodeExporters:
    return NodeExporters(
        node_index=index, host=host, node_exporter_port=node, dcgm_exporter_port=gpu
    )


def test_a_running_service_has_its_server_node_and_gpu_targets(tmp_path: Path) -> None:
    r = record(tmp_path, {"monitoring": {"labels": {"team": "nlp"}}}, ["gpu01", "gpu02"])
    targets = service_targets(r, [exporters(1, 9101, 9401), exporters(0, 9100, None)])
    assert [(t.key, t.role, t.node, t.url) for t in targets] == [
        ("svc1-service-0", TargetRole.SERVICE, "gpu01", "http://gpu01:8000/metrics"),
        ("svc1-node-0", TargetRole.NODE, "gpu01", "http://gpu01:9100/metrics"),
        ("svc1-node-1", TargetRole.NODE, "gpu02", "http://gpu02:9101/metrics"),
        ("svc1-gpu-0", TargetRole.GPU, "gpu02", "http://gpu02:9401/metrics"),
    ]
    assert targets[0].all_labels() == {
        "team": "nlp",
        "service_id": "svc1",
        "recipe": "inference/simulator",
        "job_id": "42",
        "node": "gpu01",
        "role": "service",
    }


def test_no_targets_unless_running_and_monitored(tmp_path: Path) -> None:
    starting = record(tmp_path).model_copy(update={"state": ServiceState.STARTING})
    assert service_targets(starting, [exporters(0, 9100, None)]) == []
    off = record(tmp_path, {"monitoring": {"enabled": False}})
    assert service_targets(off, [exporters(0, 9100, None)]) == []
    assert expected_exporter_files(off) == 0
    no_path = record(tmp_path, {"monitoring": {"metrics_path": None}})
    assert [t.role for t in service_targets(no_path, [exporters(0, 9100, None)])] == [
        TargetRole.NODE
    ]


def test_a_node_name_that_could_inject_is_dropped_not_scraped(tmp_path: Path) -> None:
    bad = record(tmp_path, nodes=['node1"} evil{x="'])
    assert service_targets(bad, []) == []


async def test_exporters_files_are_read_by_node_index(tmp_path: Path) -> None:
    r = record(tmp_path, nodes=["a", "b"])
    (tmp_path / "exporters-1.json").write_text(exporters(1, 9100, None, "b").model_dump_json())
    (tmp_path / "exporters-0.json").write_text("{not json")

    async def read(path: Path) -> str:
        return path.read_text()

    found = await read_exporters(r, read)
    assert [e.node_index for e in found] == [1]  # missing or broken files are skipped
    assert expected_exporter_files(r) == 2


def test_sd_groups_and_file_sd(tmp_path: Path) -> None:
    targets = service_targets(record(tmp_path), [exporters(0, 9100, None)])
    groups = sd_groups(targets)
    assert groups[0] == {
        "targets": ["127.0.0.1:8000"],
        "labels": {
            "service_id": "svc1",
            "recipe": "inference/simulator",
            "job_id": "42",
            "node": "127.0.0.1",
            "role": "service",
            "__metrics_path__": "/metrics",
            "__scheme__": "http",
        },
    }
    path = tmp_path / "sd" / "file_sd.json"
    write_file_sd(path, targets)
    assert json.loads(path.read_text()) == json.loads(json.dumps(groups, sort_keys=True))
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    "labels",
    [
        {"team": 'nlp"}'},
        {"team": "a b"},
        {"team": "x\ny"},
        {"team": "${HOME}"},
        {"__address__": "evil:1"},
        {"service_id": "other"},
        {"role": "gpu"},
        {"9lives": "x"},
    ],
)
def test_recipe_labels_that_could_inject_are_refused(labels: dict[str, str]) -> None:
    with pytest.raises(RecipeError, match="monitoring"):
        load_recipe("inference/simulator", ROOT, {"monitoring": {"labels": labels}})


def test_a_target_model_refuses_unsafe_values() -> None:
    good = {
        "key": "s-node-0",
        "url": "http://n1:9100/metrics",
        "service_id": "s",
        "recipe": "inference/x",
        "job_id": "1",
        "node": "n1",
        "role": "node",
    }
    ScrapeTarget.model_validate(good)
    for field, value in (
        ("url", "http://n1:9100/metrics?x=${a}"),
        ("url", "file:///etc/passwd"),
        ("node", "n1\n- job_name: evil"),
        ("job_id", "1; rm"),
    ):
        with pytest.raises(ValidationError):
            ScrapeTarget.model_validate({**good, field: value})


def test_benchmarks_by_service_id_or_by_endpoint_url(tmp_path: Path) -> None:
    svc = record(tmp_path)

    def bench(bid: str, state: BenchState, **target: str) -> BenchmarkRecord:
        return BenchmarkRecord(
            benchmark_id=bid,
            request_id="r",
            state=state,
            target=BenchTarget(**target),
            workload=Workload(requests=1),
        )

    runs = [
        bench("b1", BenchState.RUNNING, service_id="svc1"),
        bench("b2", BenchState.PENDING, url="http://127.0.0.1:8000/"),
        bench("b3", BenchState.COMPLETED, service_id="svc1"),
        bench("b4", BenchState.RUNNING, url="http://elsewhere:1"),
    ]
    assert benchmarked(runs, [svc]) == {"svc1": {"b1", "b2"}}
