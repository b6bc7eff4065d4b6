"""The simulator's API key, as vLLM's: ``VLLM_API_KEY`` guards ``/v1/*``, nothing else.

A benchmark against a keyed target is only proven when a request without the key fails:
these tests hold the simulator to that, so the secret-sentinel experiment cannot pass by a
simulator that ignores the header.
"""

from __future__ import annotations

import httpx

from aifactory.simulator.harness import SimulatorProcess

KEY = "sim-key-for-tests"
BODY = {"model": "simulator", "prompt": "hello", "max_tokens": 2, "stream": False}


def test_v1_requires_the_bearer_key_health_and_metrics_do_not() -> None:
    with (
        SimulatorProcess("--ttft-ms", "1", "--itl-ms", "1", env={"VLLM_API_KEY": KEY}) as sim,
        httpx.Client(base_url=sim.url, timeout=5) as client,
    ):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
            for path in ("/v1/models", "/v1/completions"):
                method = "GET" if path == "/v1/models" else "POST"
                answer = client.request(method, path, headers=headers, json=BODY)
                assert answer.status_code == 401, (path, headers)
                assert answer.json() == {"error": "Unauthorized"}
        good = {"Authorization": f"Bearer {KEY}"}
        assert client.get("/v1/models", headers=good).status_code == 200
        completion = client.post("/v1/completions", headers=good, json=BODY)
        assert completion.status_code == 200
        assert completion.json()["usage"]["completion_tokens"] == 2
        assert client.get("/health").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.get("/api/tags").status_code == 200  # Ollama's API has no key


def test_without_a_key_everything_is_open() -> None:
    with SimulatorProcess("--ttft-ms", "1", env={"VLLM_API_KEY": ""}) as sim:
        assert httpx.get(f"{sim.url}/v1/models", timeout=5).status_code == 200
