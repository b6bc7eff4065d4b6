"""A real Prometheus on a real stack: ``aifactory up --with-prometheus``, the simulator
deployed with an emulated GPU and its job's node exporter, a benchmark through the client
service. Prometheus finds the targets through the ingress's HTTP SD; every Grafana panel's
query must return series from it; promtool accepts the generated configuration and the
monitor's own metrics."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from aifactory.shared.natsd import free_port
from tests.conftest import need_tool
from tests.integration.server_stack import UpStack, aifactory_up
from tests.shellkit import REPO, ROOT

pytestmark = [pytest.mark.nats, pytest.mark.tools]

DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))


@dataclass
class Running:
    stack: UpStack
    state: Path
    prometheus: str
    monitor: str
    service_id: str
    benchmark: dict[str, Any]
    since: float


def wait(condition: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    for tool in ("prometheus", "promtool", "prometheus-node-exporter"):
        need_tool(tool)
    tmp = tmp_path_factory.mktemp("prometheus-stack")
    fast = {"AIFACTORY_MONITOR__INTERVAL": "1", "AIFACTORY_MONITOR__BENCHMARK_INTERVAL": "0.5"}
    with aifactory_up(tmp, "--with-prometheus", env_extra=fast) as stack:
        state = tmp / "state"
        wait(lambda: (state / "stack.json").exists(), "aifactory up", timeout=90)
        info = json.loads((state / "stack.json").read_text())
        assert info["prometheus_url"] and info["monitor_url"], info

        def healthy() -> bool:
            try:
                monitor = httpx.get(f"{info['monitor_url']}/health", timeout=2)
                ready = httpx.get(f"{info['prometheus_url']}/-/ready", timeout=2)
            except httpx.HTTPError:
                return False
            return monitor.is_success and ready.is_success

        wait(healthy, "the monitor and Prometheus", timeout=90)
        recipe = (ROOT / "inference" / "simulator.yaml").read_text()
        (tmp / "recipes" / "inference" / "simulator.yaml").write_text(recipe)
        since = time.time()
        deploy = stack.cli(
            "deploy", "inference/simulator", "--set", f"ports.http={free_port()}", "--wait"
        )
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        service_id = deploy.stdout.split("deploy requested: service ", 1)[1].split()[0]
        workload = {"profile": "poisson", "rate": 10, "duration_s": 8, "backend": "openai_chat"}
        body = {"target": {"service_id": service_id}, "workload": workload}
        api = f"{stack.ingress}/api/v1/benchmarks"
        accepted = httpx.post(api, json=body, headers=stack.headers, timeout=10)
        assert accepted.status_code == 202, accepted.text
        bid = accepted.json()["benchmark_id"]

        def finished() -> dict[str, Any] | None:
            record = httpx.get(f"{api}/{bid}", headers=stack.headers, timeout=10).json()
            return record if record["state"] in ("completed", "failed") else None

        benchmark = wait(finished, "the benchmark", timeout=90)
        assert benchmark["state"] == "completed", benchmark
        yield Running(
            stack,
            state,
            info["prometheus_url"],
            info["monitor_url"],
            service_id,
            benchmark,
            since,
        )
    assert stack.returncode == 0, stack.output


def query_range(prometheus: str, expr: str, start: float) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{prometheus}/api/v1/query_range",
        params={"query": expr, "start": start, "end": time.time(), "step": 2},
        timeout=20,
    )
    data = response.json()
    assert data["status"] == "success", (expr, data)
    result: list[dict[str, Any]] = data["data"]["result"]
    return result


def test_prometheus_scrapes_what_the_http_sd_lists(running: Running) -> None:
    promtool = need_tool("promtool")
    config = running.state / "prometheus" / "prometheus.yml"
    check = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    token = running.stack.headers["Authorization"].split()[1]
    assert token not in config.read_text()  # it is in the 0600 credentials file

    def sd_targets_up() -> list[dict[str, Any]] | None:
        active = httpx.get(f"{running.prometheus}/api/v1/targets", timeout=10).json()
        mine = [
            t
            for t in active["data"]["activeTargets"]
            if t["labels"].get("service_id") == running.service_id
        ]
        roles = {t["labels"]["role"] for t in mine if t["health"] == "up"}
        return mine if roles == {"service", "node"} else None

    targets = wait(sd_targets_up, "Prometheus scraping both SD targets")
    for target in targets:
        labels = target["labels"]
        assert labels["job"] == "aifactory" and labels["recipe"] == "inference/simulator"
        assert labels["node"] == "127.0.0.1" and labels["job_id"].isdigit()

    gpus = query_range(running.prometheus, "DCGM_FI_DEV_GPU_UTIL", running.since)
    assert gpus and gpus[0]["metric"]["service_id"] == running.service_id
    assert gpus[0]["metric"]["modelName"] == "aifactory emulated GPU"

    metrics = httpx.get(f"{running.monitor}/metrics", timeout=10).text
    check = subprocess.run(
        [promtool, "check", "metrics"], input=metrics, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr

    listing = running.stack.cli("monitor", "targets", running.service_id)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert listing.stdout.count(" up ") >= 2, listing.stdout

    run = running.benchmark["summary"]["runs"][0]
    server = run["server"]
    assert server["gpus"] == 1 and server["gpu_util_max"] > 0, server
    assert server["server_generation_tokens"] > 0 and server["client_output_tokens"] > 0
    assert server["node_cpu_util_mean"] is not None
    rows = Path(running.benchmark["results_dir"]) / "server_metrics.jsonl"
    metrics_seen = {json.loads(line)["metric"] for line in rows.read_text().splitlines()}
    assert {"DCGM_FI_DEV_GPU_UTIL", "node_cpu_seconds_total", "up"} <= metrics_seen


def panel_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append((path.name, panel["title"], target["expr"]))
        for annotation in board["annotations"]["list"]:
            out.append((path.name, f"annotation {annotation['name']}", annotation["expr"]))
    return out


def test_every_dashboard_query_returns_series(running: Running) -> None:
    values = {"$service_id": running.service_id, "$node": ".*", "$__rate_interval": "20s"}
    queries = panel_queries()
    assert len(queries) > 30
    empty = []
    for board, title, expr in queries:
        for name, value in values.items():
            expr = expr.replace(name, value)
        if not query_range(running.prometheus, expr, running.since):
            empty.append(f"{board}: {title}: {expr}")
    assert empty == []
