"""A service page in a real browser follows the service live: the job's output in the log tail
(the logs service's stream) and the "Server and GPU" charts (the monitor's scrapes of the
simulator, with its emulated GPU, fed through the ingress)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from aifactory.shared.natsd import free_port
from tests.integration.server_stack import UpStack
from tests.integration.webkit import Shots, api, logged_in, wait_until

pytestmark = [pytest.mark.nats, pytest.mark.browser, pytest.mark.timeout(240)]


def test_a_service_page_tails_the_output_and_charts_the_server_and_gpu(
    browser: Any, web_stack: UpStack, shots: Shots
) -> None:
    base = web_stack.ingress
    with api(web_stack) as client:
        answer = client.post(
            "/api/v1/services",
            json={"recipe": "inference/simulator", "overrides": {"ports": {"http": free_port()}}},
        )
        assert answer.status_code == 202, answer.text
        service_id = answer.json()["service_id"]
    context, page, watch = logged_in(browser, web_stack)
    page.goto(f"{base}/services/{service_id}")
    page.wait_for_selector("h1 .state-running", timeout=120_000)
    running = time.monotonic()

    wait_until(  # the simulator's own line, from the job's output file, pushed live
        lambda: "simulator ready on" in page.text_content("#log"), 30, "the simulator's output"
    )

    def points(chart: str) -> int:
        found = page.get_attribute(f"#monitor-charts [data-chart={chart}]", "data-points")
        return int(found or 0)

    def charted() -> dict[str, int]:
        if not page.locator("#monitor-charts [data-chart=gpu_util]").count():
            return {}
        seen = {name: points(name) for name in ("requests", "kv_cache", "gpu_util")}
        return seen if min(seen.values()) >= 3 else {}

    wait_until(charted, 30, "three points on the server and GPU charts", every=0.25)
    assert page.is_hidden("#monitor-empty")
    captions = page.locator("#monitor-charts figcaption").all_text_contents()
    assert {"Requests on the server", "KV cache used", "GPU utilisation"} <= set(captions)
    assert "Tokens per second (server)" in captions  # a rate: two scrapes of the counters
    assert page.text_content("#log").count("\n") >= 1
    shots.take(page, "service-live")
    assert time.monotonic() - running < 30

    page.goto(f"{base}/services")  # the page is gone: the ingress stops following the service
    with api(web_stack) as client:
        client.delete(f"/api/v1/services/{service_id}")
    watch.clean()
    context.close()
