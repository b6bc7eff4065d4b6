"""The ``ollama`` template for real: the server (the simulator speaking Ollama's API) starts,
the recipe's models are pulled through ``/api/pull`` with progress in the job log, and only
then does the connection file appear; a failed pull ends the job with the reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from aifactory.shared.connection import connection_path, parse_connection
from aifactory.shared.natsd import free_port
from aifactory.shared.recipes import load_recipe
from tests.conftest import need, need_tool
from tests.shellkit import ROOT, render, write

pytestmark = pytest.mark.tools


def ollama_on_simulator(models: list[str]) -> dict[str, object]:
    command = ["aifactory", "simulate", "--host", "127.0.0.1", "--port", "{port}"]
    return {
        "runtime": "native",
        "image": None,
        "apptainer": {"mode": "exec"},  # back to the default: no container
        "command": command,
        "resources": {"gpu": 0},
        "models": models,
        "ports": {"http": free_port()},
    }


def run_job(tmp_path: Path, models: list[str]) -> tuple[subprocess.Popen[bytes], Path, Path]:
    need(need_tool("curl") is not None, "curl")
    recipe = load_recipe("inference/ollama", ROOT, ollama_on_simulator(models))
    script = write(tmp_path / "job.sh", render(recipe, tmp_path / "work"))
    log = tmp_path / "job.out"
    path = str(Path(sys.executable).parent)  # this environment's `aifactory`
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [need_tool("bash"), str(script)],
            cwd=tmp_path,
            env={"PATH": f"{path}:{os.environ['PATH']}", "HOME": str(tmp_path)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, tmp_path / "work", log


def test_models_are_pulled_before_the_service_announces_itself(tmp_path: Path) -> None:
    proc, workdir, log = run_job(tmp_path, ["llama3.2:1b", "library/qwen:0.5b"])
    try:
        deadline = time.monotonic() + 30
        while not connection_path(workdir).exists():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        output = log.read_text()
        # Both pulls finished, with their progress, before the connection file existed.
        assert output.count('"status":"success"') == 2
        assert "aifactory: pull llama3.2:1b:" in output and '"completed":' in output
        connection = parse_connection(connection_path(workdir).read_text())
        tags = httpx.get(f"http://127.0.0.1:{connection.ports['http']}/api/tags").json()
        names = {m["name"] for m in tags["models"]}
        assert {"llama3.2:1b", "library/qwen:0.5b"} <= names
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)


def test_a_failed_pull_fails_the_job_with_the_reason(tmp_path: Path) -> None:
    proc, workdir, log = run_job(tmp_path, ["llama3.2:1b", "missing-model:7b"])
    try:
        assert proc.wait(timeout=30) == 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = log.read_text()
    assert "pulling model missing-model:7b failed" in output
    assert "file does not exist" in output
    assert not connection_path(workdir).exists()  # never announced, never ready
