"""The Grafana dashboards are consistent: one datasource uid, unique ids, defined variables.

(That every panel's query returns series from a real Prometheus scraping a real stack is
``tests/integration/test_monitor_prometheus.py``.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
UID = "aifactory-prometheus"
#: Grafana's own variables (global and Prometheus-specific).
BUILTIN = {
    "__rate_interval",
    "__interval",
    "__interval_ms",
    "__range",
    "__range_s",
    "__range_ms",
    "__dashboard",
    "__from",
    "__to",
    "__name",
    "__org",
    "__user",
    "__all",
    "timeFilter",
}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in board["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows keep theirs inside
    return out


def used_variables(text: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in VARIABLE.finditer(text)}


def test_there_are_the_four_dashboards() -> None:
    assert [p.name for p in DASHBOARDS] == [
        "benchmark.json",
        "gpu-node.json",
        "services-overview.json",
        "vllm-serving.json",
    ]
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_uses_the_provisioned_datasource(path: Path) -> None:
    board = load(path)
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": UID}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == UID, panel["title"]
            assert target["expr"].strip(), panel["title"]
    for variable in board["templating"]["list"]:
        assert variable["datasource"]["uid"] == UID, variable["name"]
    for annotation in board["annotations"]["list"]:
        assert annotation["datasource"]["uid"] == UID, annotation["name"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panel_ids_are_unique_and_panels_fit_the_grid(path: Path) -> None:
    every = panels(load(path))
    ids = [p["id"] for p in every]
    assert len(ids) == len(set(ids)), ids
    for panel in every:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_no_query_uses_an_undefined_variable(path: Path) -> None:
    board = load(path)
    defined = {v["name"] for v in board["templating"]["list"]}
    texts = [t["expr"] for p in panels(board) for t in p.get("targets", [])]
    texts += [a["expr"] for a in board["annotations"]["list"]]
    texts += [v["definition"] for v in board["templating"]["list"]]
    for text in texts:
        unknown = used_variables(text) - defined - BUILTIN
        assert not unknown, f"{text}: {unknown}"
    order = [v["name"] for v in board["templating"]["list"]]
    for i, variable in enumerate(board["templating"]["list"]):
        # a variable's own query may only use the ones defined before it
        assert used_variables(variable["definition"]) <= set(order[:i]) | BUILTIN


def test_provisioning_names_the_same_uid_and_the_dashboards() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/aifactory.yaml").read_text())
    [source] = datasources["datasources"]
    assert source["uid"] == UID and source["type"] == "prometheus"
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/aifactory.yaml").read_text())
    assert providers["providers"][0]["type"] == "file"


def test_the_variable_pattern_finds_every_form() -> None:
    text = 'a{x=~"$svc", y="${node}", z="${gpu:regex}", w="[[old]]"}[5m]'
    assert used_variables(text) == {"svc", "node", "gpu", "old"}
