"""An executor and a load backend added from this file alone, used through the normal paths.

Nothing else in the project is edited: the classes register themselves by name when this
module is imported. The backend is used by ``aifactory bench run --backend toy_text`` (whose
spawned worker processes import this module to find it); the executor by
``aifactory up --executor toy`` and ``aifactory deploy``, in processes that find it through
an ``aifactory.executors`` entry point of a throw-away distribution pointing here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from aifactory.cli.main import app
from aifactory.loadgen.backends import GenerationBackend, LineParser, ResponseState, make_backend
from aifactory.loadgen.backends.base import SseParser, decode_json
from aifactory.loadgen.datasets.base import Prompt
from aifactory.shared.executors.base import Executor
from aifactory.shared.executors.factory import executor_names, make_executor
from aifactory.shared.executors.local import LocalExecutor
from aifactory.shared.settings import Settings
from aifactory.shared.states import JobState
from tests.integration.server_stack import aifactory_up
from tests.integration.test_loadgen_simfixture import running

pytestmark = pytest.mark.nats

REPO = Path(__file__).resolve().parents[2]


class ToyExecutor(LocalExecutor, name="toy"):
    """The local executor under another name, leaving a mark in every job folder."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ToyExecutor:
        return cls(settings.state_dir / "toy-executor")

    async def submit(self, script: str, name: str, workdir: Path) -> Any:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "submitted-by-toy").write_text(name)
        return await super().submit(script, name, workdir)


class _TextSse(SseParser):
    __slots__ = ()

    def event(self, obj: dict[str, Any], now_ns: int) -> None:
        text = (obj.get("choices") or [{}])[0].get("text")
        if text:
            self.state.token(text, now_ns)


class ToyTextBackend(GenerationBackend, name="toy_text"):
    """OpenAI completions spoken by hand: its own body, its own stream parser."""

    path = "/v1/completions"
    models_path = "/v1/models"
    strips_v1 = True

    def body(self, prompt: Prompt, max_tokens: int) -> bytes:
        return orjson.dumps(
            {"model": self.model, "prompt": prompt.text, "max_tokens": max_tokens, "stream": True}
        )

    def parser(self) -> LineParser:
        return _TextSse()

    def parse_body(self, body: bytes, now_ns: int) -> ResponseState:
        state = ResponseState()
        state.token(decode_json(body)["choices"][0]["text"], now_ns)
        state.done = True
        return state

    @staticmethod
    def model_names(listing: dict[str, Any]) -> list[str]:
        return [m["id"] for m in listing["data"]]


def test_the_registries_know_the_toys_and_the_factories_build_them(tmp_path: Path) -> None:
    assert "toy" in executor_names()
    executor = make_executor(Settings(executor="toy", state_dir=tmp_path))
    assert isinstance(executor, ToyExecutor) and isinstance(executor, Executor)
    backend = make_backend("toy_text", "m", stream=True)
    assert isinstance(backend, ToyTextBackend)
    assert (
        json.loads(backend.body(Prompt(index=0, text="hi", prompt_tokens=1, output_tokens=4), 4))[
            "max_tokens"
        ]
        == 4
    )


def test_bench_run_with_the_toy_backend_in_worker_processes(tmp_path: Path) -> None:
    out = tmp_path / "res"
    with running("--ttft-ms", "2", "--itl-ms", "1", "--output-tokens", "8") as sim:
        result = CliRunner().invoke(
            app,
            [
                *("bench", "run", "--target", sim.url, "--backend", "toy_text"),
                *("--requests", "40", "--workers", "2", "--profile", "concurrency"),
                *("--concurrency", "4", "--out", str(out), "--no-progress"),
            ],
        )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "toy_text"
    (run,) = summary["runs"]
    assert run["requests_ok"] == 40 and run["workers"] == 2
    assert run["ttft_ms"]["count"] == 40


def test_up_and_deploy_with_the_toy_executor(tmp_path: Path) -> None:
    # A throw-away installed distribution whose entry point names this test module.
    site = tmp_path / "site"
    dist = site / "aifactory_toy-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: aifactory-toy\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[aifactory.executors]\ntoy = tests.integration.test_extensions\n"
    )
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    with aifactory_up(tmp_path, "--executor", "toy", env_extra=env) as stack:
        deploy = stack.cli("deploy", "inference/httpserver", "--wait", "--timeout", "40")
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        service_id = deploy.stdout.split("deploy requested: service ", 1)[1].split()[0]
        url = f"{stack.ingress}/api/v1/services/{service_id}"
        record = httpx.get(url, headers=stack.headers).json()
        assert record["executor"] == "toy" and record["job_state"] == JobState.RUNNING.value
        assert (Path(record["workdir"]) / "submitted-by-toy").is_file()
    assert stack.returncode == 0, stack.output
