"""The readers on a real stack (``aifactory up``): a deployed simulator's log through the CLI
with the job's files out of reach, the ingress's JSON lines and resumable SSE, and a log
alert reaching the service record's reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from aifactory.shared.natsd import free_port
from tests.integration.server_stack import CLI, UpStack, aifactory_up

pytestmark = pytest.mark.nats

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
CRASHY = """\
name: crashy
category: inference
description: prints a traceback to stderr, then serves
version: "1"
runtime: native
command: [{python}, {script}, "{{port}}"]
ports:
  http: {port}
resources:
  nodes: 1
  memory: 256M
  time_limit: "00:10:00"
  partition: cpu
health:
  path: /
  timeout: 30
  interval: 0.2
"""
CRASHY_SCRIPT = """\
import http.server
import sys

print("Traceback (most recent call last):", file=sys.stderr)
print('  File "model.py", line 7, in load', file=sys.stderr)
print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 8 GiB", file=sys.stderr)
sys.stderr.flush()
http.server.test(
    HandlerClass=http.server.SimpleHTTPRequestHandler, port=int(sys.argv[1]), bind="127.0.0.1"
)
"""


def sse_events(response: httpx.Response, stop_after: int | None = None) -> list[dict[str, str]]:
    """Parse Server-Sent Events until the response ends (or ``stop_after`` events)."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in current:
                events.append(current)
                if stop_after is not None and len(events) >= stop_after:
                    return events
            current = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        current[name] = value.removeprefix(" ")
    return events


def wait_for_line(stack: UpStack, service_id: str, needle: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        answer = httpx.get(
            f"{stack.ingress}/api/v1/services/{service_id}/logs?tail=100", headers=stack.headers
        )
        text = answer.text
        if needle in text:
            return
        time.sleep(0.3)
    raise AssertionError(f"{needle!r} never reached the bus; last answer: {text[-2000:]}")


def deploy(stack: UpStack, recipe: str, port: int) -> dict[str, Any]:
    done = stack.cli("deploy", recipe, "--set", f"ports.http={port}", "--wait", timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    service_id = done.stdout.split("deploy requested: service ", 1)[1].split()[0]
    answer = httpx.get(f"{stack.ingress}/api/v1/services/{service_id}", headers=stack.headers)
    record: dict[str, Any] = answer.json()
    return record


def test_simulator_log_from_the_bus_with_its_files_moved_away(tmp_path: Path) -> None:
    recipes = tmp_path / "recipes"
    crashy_port = free_port()
    env = {"AIFACTORY_LOGS_END_GRACE": "1", "AIFACTORY_LOGS_POLL_INTERVAL": "0.2"}
    with aifactory_up(tmp_path, env_extra=env) as stack:
        shutil.copy(RECIPES / "inference" / "simulator.yaml", recipes / "inference")
        script = tmp_path / "crashy.py"
        script.write_text(CRASHY_SCRIPT)
        (recipes / "inference" / "crashy.yaml").write_text(
            CRASHY.format(python=sys.executable, script=script, port=crashy_port)
        )
        record = deploy(stack, "inference/simulator", free_port())
        service_id = record["service_id"]
        wait_for_line(stack, service_id, "simulator ready on")

        # Out of reach: the job's folder is moved away; the CLI runs from elsewhere.
        job_dir = Path(record["output_path"]).parent
        job_dir.rename(tmp_path / "moved-away")
        assert not Path(record["output_path"]).exists()
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        tail = subprocess.run(
            [*CLI, "services", "logs", service_id, "-n", "20"],
            env=stack.env,
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert tail.returncode == 0, tail.stderr
        assert "aifactory: job" in tail.stdout and "simulator ready on" in tail.stderr
        err_only = stack.cli("services", "logs", service_id, "--stream", "err", "-n", "1")
        assert err_only.stdout == "" and err_only.stderr.count("\n") == 1
        follow = subprocess.Popen(
            [*CLI, "services", "logs", service_id, "-f"],
            env=stack.env,
            cwd=elsewhere,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

        # SSE: read the first events, drop the connection, note the last id.
        url = f"{stack.ingress}/api/v1/services/{service_id}/logs/stream"
        with httpx.stream("GET", url, headers=stack.headers, params={"tail": 1000}) as first:
            assert first.status_code == 200
            head = sse_events(first, stop_after=2)
        assert [e["event"] for e in head] == ["lines", "lines"]

        stop = stack.cli("services", "stop", service_id, timeout=60)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        out, err = follow.communicate(timeout=60)  # ends by itself at the end of output
        assert follow.returncode == 0, err
        assert "aifactory: job" in out and "simulator ready on" in err
        assert "simulator shutting down" in err and "-- end of output: cancelled --" in err

        # Resume after the last event seen: the rest, ending with eof; together: everything.
        resume = {**stack.headers, "Last-Event-ID": head[-1]["id"]}
        with httpx.stream("GET", url, headers=resume, timeout=30) as second:
            rest = sse_events(second)
        with httpx.stream("GET", url, headers=stack.headers, params={"tail": 1000}) as whole:
            everything = sse_events(whole)
        assert rest[-1]["event"] == "eof" and everything[-1]["event"] == "eof"
        assert [e["id"] for e in head + rest] == [e["id"] for e in everything]
        batches = [json.loads(e["data"]) for e in everything if e["event"] == "lines"]
        text = "\n".join(line for b in batches for line in b["lines"])
        assert "simulator shutting down" in text

        lines = httpx.get(
            f"{stack.ingress}/api/v1/services/{service_id}/logs",
            params={"tail": 2, "stream": "err"},
            headers=stack.headers,
        )
        assert lines.headers["content-type"].startswith("application/x-ndjson")
        records = [json.loads(x) for x in lines.text.splitlines()]
        assert len(records) == 2 and all(r["stream"] == "err" for r in records)
        assert records[1]["line"] == records[0]["line"] + 1
        missing = httpx.get(f"{stack.ingress}/api/v1/services/nope/logs", headers=stack.headers)
        assert missing.status_code == 404
        no_token = httpx.get(f"{stack.ingress}/api/v1/services/{service_id}/logs")
        assert no_token.status_code == 401

        # An alert in a job's output becomes the service's reason.
        crashy = deploy(stack, "inference/crashy", crashy_port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not crashy.get("alerts"):
            time.sleep(0.3)
            crashy = httpx.get(
                f"{stack.ingress}/api/v1/services/{crashy['service_id']}", headers=stack.headers
            ).json()
        patterns = {a["pattern"] for a in crashy["alerts"]}
        assert patterns == {"python_traceback", "cuda_oom"}, crashy
        assert "CUDA out of memory" in crashy["reason"] and crashy["state"] == "running"
