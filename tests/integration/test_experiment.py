"""``aifactory experiment run``: the whole experiment from one file, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aifactory.shared.natsd import free_port
from tests.conftest import need_tool

pytestmark = pytest.mark.nats

EXPERIMENT = """\
name: ci-experiment
description: a small experiment on the simulator
service:
  recipe: inference/simulator
  overrides:
    ports: {{http: {port}}}
    extra_args: [--ttft-ms, "10", --itl-ms, "2", --output-tokens, "8", --emulate-gpus, "2"]
    health: {{path: /health, timeout: 30, interval: 0.3}}
workloads:
  - name: sync
    profile: synchronous
    requests: 10
    workers: 1
  - name: rate
    profile: constant
    rate: 20
    requests: 40
    workers: 1
slo: {{ttft_ms: 500}}
teardown: always
output_dir: {out}
"""


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AIFACTORY_STATE_DIR": str(tmp_path / "state"),
        "AIFACTORY_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "AIFACTORY_INGRESS_PORT": str(free_port()),
        "AIFACTORY_CLIENT_PORT": str(free_port()),
        "AIFACTORY_LOGS_PORT": str(free_port()),
        "AIFACTORY_LOGS_END_GRACE": "1",
        "AIFACTORY_POLL_INTERVAL": "0.3",
    }


def test_experiment_runs_end_to_end_and_writes_the_report_folder(tmp_path: Path) -> None:
    out = tmp_path / "results"
    spec = tmp_path / "exp.yaml"
    spec.write_text(EXPERIMENT.format(port=free_port(), out=out))
    run = subprocess.run(
        [sys.executable, "-m", "aifactory.cli.main", "experiment", "run", str(spec)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    [folder] = list(out.iterdir())
    outcome = json.loads((folder / "outcome.json").read_text())
    assert outcome["ok"] is True
    assert outcome["workloads"] == {"sync": "completed", "rate": "completed"}
    for name, count in (("sync", 10), ("rate", 40)):
        summary = json.loads((folder / "workloads" / name / "summary.json").read_text())
        assert summary["runs"][0]["requests_ok"] == count
    html = (folder / "report.html").read_text()
    assert "<svg" in html and "ci-experiment" in html
    # the server's side: the simulator's two emulated GPUs and its job's node exporter
    need_tool("prometheus-node-exporter")
    assert html.count("<h3>Server and GPU</h3>") == 2
    rate = json.loads((folder / "workloads" / "rate" / "summary.json").read_text())
    server = rate["runs"][0]["server"]
    # The series are there; how busy a 2-second window looked depends on where the 1 s
    # scrapes fell (the load-to-utilisation arithmetic is tested in tests/unit).
    assert server["gpus"] == 2 and server["gpu_util_max"] is not None, server
    assert server["node_cpu_util_mean"] is not None and server["node_memory_used_max_bytes"]
    assert server["server_generation_tokens"] >= server["client_output_tokens"] > 0
    rows = (folder / "workloads" / "rate" / "server_metrics.jsonl").read_text()
    assert '"DCGM_FI_DEV_POWER_USAGE"' in rows and '"node_cpu_seconds_total"' in rows
    service = json.loads((folder / "service" / "service.json").read_text())
    assert service["state"] == "cancelled"  # teardown: always
    assert any(p.suffix == ".sh" for p in (folder / "service").iterdir())
    # The service's log, from the logs stream to its end of output, linked from the report.
    sid = service["service_id"]
    out_log = (folder / "logs" / f"{sid}.out.log").read_text()
    err_log = (folder / "logs" / f"{sid}.err.log").read_text()
    assert out_log.startswith("aifactory: job ") and "simulator ready on" in err_log
    assert "simulator shutting down" in err_log  # complete: read up to the job's end
    assert f'href="logs/{sid}.err.log"' in html and "No failure pattern" in html
    assert json.loads((folder / "logs" / "alerts.json").read_text()) == []
    assert json.loads((folder / "versions.json").read_text())["packages"]["aifactory"]
    assert "api_token" in (folder / "settings.json").read_text()


def test_bad_experiment_file_names_the_field_before_anything_starts(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    text = EXPERIMENT.format(port=free_port(), out=tmp_path / "r").replace("rate: 20", "rate: -2")
    spec.write_text(text)
    run = subprocess.run(
        [sys.executable, "-m", "aifactory.cli.main", "experiment", "run", str(spec)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "workloads.1.rate" in run.stderr
    assert not (tmp_path / "state" / "nats").exists()  # nothing was started
