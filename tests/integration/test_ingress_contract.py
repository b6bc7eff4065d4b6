"""The ingress against its own OpenAPI document, with Schemathesis, on a real stack.

A real nats-server and the real server service (ingress over HTTP on loopback, ``local``
executor) with one recipe, the simulator bound to loopback: every deploy the generated
requests make is a small local process, cancelled when the test ends. One simulator is
deployed before the run so the proxy routes (``models``, ``prompt``) answer for real.

Schemathesis runs as its CLI (``schemathesis run``) with a fixed seed and a bounded number of
examples, every phase (examples, coverage, fuzzing, stateful) and its default checks: no
5xx, status codes, content types, headers and bodies as documented, ``Allow`` on 405,
schema-valid data accepted and invalid data rejected, and the token required. The pytest
plugin's ``from_fixture`` is not usable with pytest 9.2 (it reads ``Item._nodeid``, which
pytest removed), and the CLI is also how a person replays a failure: the seed is printed.

Three answers are the documented design, not findings, and are configured as such below:
- ``DELETE`` asks for a cancel (202): the record stays, with its end state, so a ``GET``
  after it finds the service (``use_after_free`` is off).
- A deploy's ``overrides`` and a benchmark's workload are checked against rules that span
  fields (the recipe's, the workload's, an existing target service): a schema-valid body
  may be answered 422 naming the field (``positive_data_acceptance`` accepts 422 there).
- No client service runs (generated workloads must not send load anywhere): a benchmark
  request is accepted (202) and waits in the command stream, so ``GET`` finds no record
  (``ensure_resource_availability`` is off for benchmarks).
- The run's own ``DELETE``s may cancel the simulator the proxy routes use (Schemathesis
  reuses ids from earlier answers): the proxy then answers 502, its documented answer for
  a service that does not answer. The test checks separately, from the ingress's request
  counter, that prompts were answered 200 by the simulator.

The token reaches Schemathesis through its config file's ``${…}`` substitution from the
environment, never on its command line.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aifactory.shared.executors.local import LocalExecutor
from aifactory.shared.natsd import EmbeddedNats
from tests.conftest import need
from tests.integration.server_stack import AUTH, TEST_TOKEN, ServerProcess

pytestmark = pytest.mark.nats

#: Printed by Schemathesis; the same seed replays the same cases.
SEED = 20240611
#: Per operation and phase: ~450 requests over 16 operations, ~35 s on two shared cores.
MAX_EXAMPLES = 10
TOKEN_ENV = "AIFACTORY_CONTRACT_TOKEN"
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"

SIMULATOR_RECIPE = f"""\
name: simulator
category: inference
description: the simulator on loopback, for the contract test
version: "1"
runtime: native
model: simulated-llm
command: [{sys.executable}, -m, aifactory.cli.main, simulate, --host, 127.0.0.1, --port, "{{port}}",
          --model, "{{model}}", --ttft-ms, "1", --itl-ms, "1"]
ports:
  http: 8000
resources:
  nodes: 1
  cpus_per_task: 1
  memory: 512M
  time_limit: "00:05:00"
  partition: cpu
health:
  path: /health
  timeout: 60
  interval: 0.5
"""

CONFIG = """\
seed = {seed}
headers = {{ Authorization = "Bearer ${{{token_env}}}" }}
workers = 1
request-timeout = 30

[generation]
max-examples = {max_examples}
database = "none"

[checks.use_after_free]
enabled = false

[[operations]]
include-name = ["POST /api/v1/services", "POST /api/v1/benchmarks"]
# Schemathesis's default list, and 422.
checks.positive_data_acceptance.expected-statuses = [
    "2XX", "3XX", 401, 403, 404, 409, 422, 429, "5XX",
]

[[operations]]
include-path-regex = "^/api/v1/benchmarks"
checks.ensure_resource_availability.enabled = false

[[operations]]
include-path = ["/api/v1/services/{{service_id}}/models", "/api/v1/services/{{service_id}}/prompt"]
parameters = {{ service_id = "{service_id}" }}
# Schemathesis's default list, and 502.
checks.not_a_server_error.expected-statuses = ["2XX", "3XX", "4XX", 502]
"""


@pytest.fixture
def stack(nats_server: EmbeddedNats, tmp_path: Path) -> Iterator[ServerProcess]:
    (tmp_path / "recipes" / "inference").mkdir(parents=True)
    (tmp_path / "recipes" / "inference" / "simulator.yaml").write_text(SIMULATOR_RECIPE)
    # The run sends many requests without the token on purpose (``ignored_auth``): the
    # failed-login limit would otherwise answer 429 to everything after the twentieth.
    server = ServerProcess(
        tmp_path,
        nats_server.url,
        executor="local",
        AIFACTORY_INGRESS_AUTH_FAILURES_PER_MINUTE="1000000",
    ).start()
    try:
        yield server
    finally:
        server.stop()
        # Every job the generated deploys started: local processes, stopped here.
        asyncio.run(LocalExecutor(tmp_path / "state" / "local-executor").stop_with_stack())


def running_simulator(base: str, timeout: float = 60) -> str:
    created = httpx.post(
        f"{base}/api/v1/services", headers=AUTH, json={"recipe": "inference/simulator"}
    )
    assert created.status_code == 202, created.text
    service_id = str(created.json()["service_id"])
    deadline = time.monotonic() + timeout
    state = "unknown"
    while time.monotonic() < deadline:
        state = httpx.get(f"{base}/api/v1/services/{service_id}", headers=AUTH).json()["state"]
        if state == "running":
            return service_id
        time.sleep(0.2)
    raise AssertionError(f"the simulator service is {state} after {timeout} s")


def test_the_ingress_keeps_its_openapi_contract(stack: ServerProcess, tmp_path: Path) -> None:
    need(SCHEMATHESIS.is_file(), "schemathesis (the dev extra: pip install -e '.[dev]')")
    service_id = running_simulator(stack.base)
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        CONFIG.format(
            seed=SEED, token_env=TOKEN_ENV, max_examples=MAX_EXAMPLES, service_id=service_id
        )
    )
    started = time.monotonic()
    run = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--no-color",
            "--config-file",
            str(config),
            "run",
            f"{stack.base}/openapi.json",
        ],
        env={**os.environ, TOKEN_ENV: TEST_TOKEN},
        cwd=tmp_path,  # its cache and reports stay in the test's folder
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.monotonic() - started
    print(run.stdout[-6000:])
    print(f"schemathesis: {elapsed:.1f} s, exit code {run.returncode}")
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-3000:]
    assert f"Seed: {SEED}" in run.stdout
    # The run reached the API: every operation was tested, none was skipped for errors…
    assert "Tested: 16" in run.stdout, run.stdout[-3000:]
    # …and the proxy for real: prompts the simulator answered, listings of its models.
    metrics = httpx.get(f"{stack.base}/metrics").text
    for route in ("prompt", "models"):
        assert answered_200(metrics, f"/api/v1/services/{{service_id}}/{route}") > 0, route


def answered_200(metrics: str, route: str) -> float:
    """``aifactory_ingress_requests_total{route=…, status="200"}`` from the exposition."""
    total = 0.0
    wanted = (f'route="{route}"', 'status="200"')
    for line in metrics.splitlines():
        if line.startswith("aifactory_ingress_requests_total{") and all(w in line for w in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total
