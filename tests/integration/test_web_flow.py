"""The web flow in a real browser: deploy the simulator from the form, benchmark it and watch
the live charts, read the results; run an experiment file step by step; pages' streams end
when the pages close."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aifactory.shared.natsd import free_port
from tests.integration.server_stack import UpStack
from tests.integration.webkit import Shots, logged_in, open_streams, wait_until

pytestmark = [pytest.mark.nats, pytest.mark.browser, pytest.mark.timeout(420)]


def test_deploy_benchmark_watch_and_read_the_results(
    browser: Any, web_stack: UpStack, shots: Shots
) -> None:
    base = web_stack.ingress
    context, page, watch = logged_in(browser, web_stack)
    page.goto(f"{base}/services/new?recipe=inference/simulator")
    port = free_port()
    page.fill("#f-ports", f"{{http: {port}}}")
    page.fill("#f-extra_args", "[--ttft-ms, 20, --itl-ms, 2, --output-tokens, 16]")
    page.locator("#f-ports").blur()
    wait_until(  # the preview follows the form (htmx, on change)
        lambda: f"aif_claim_port {port}" in page.text_content("#preview"), 20, "the preview"
    )
    assert "--ttft-ms 20" in page.text_content("#script-preview")
    shots.take(page, "deploy-form")
    with page.expect_navigation():
        page.get_by_role("button", name="Deploy", exact=True).click()
    service_id = page.url.rsplit("/", 1)[1]
    assert page.url == f"{base}/services/{service_id}"
    page.wait_for_selector("h1 .state-running", timeout=120_000)  # pushed live, no reload
    assert "http://" in page.text_content("#endpoints")
    assert "running" in page.text_content("#job-history")
    assert "ports:\n  http: " in page.text_content("#overrides")
    shots.take(page, "service")

    page.goto(f"{base}/services")
    row = page.locator(f"tr[data-service-id='{service_id}']")
    assert "running" in row.text_content()
    shots.take(page, "services")

    page.goto(f"{base}/benchmarks/new?service_id={service_id}")
    assert page.input_value("#f-service_id") == service_id
    page.fill("#f-rate", "20")
    page.fill("#f-duration_s", "8")
    shots.take(page, "benchmark-form")
    with page.expect_navigation():
        page.get_by_role("button", name="Start", exact=True).click()
    benchmark_id = page.url.rsplit("/", 1)[1]

    seen: set[int] = set()

    def chart_moves() -> bool:
        points = page.get_attribute("#chart-rate", "data-points")
        if points is not None and page.get_attribute("body", "data-terminal") == "false":
            seen.add(int(points))
        return len(seen) >= 3

    wait_until(chart_moves, 60, "three live chart updates", every=0.1)
    assert int(page.text_content("#window-count")) >= 3
    assert page.text_content("[data-w=ttft_p50_ms]") not in ("", "\u2013")
    shots.take(page, "benchmark-live")

    page.wait_for_selector("#report-link", timeout=90_000)  # finished: results shown
    assert page.get_attribute("body", "data-terminal") == "true"
    runs = page.locator("#runs tbody tr")
    assert runs.count() == 1 and "completed" in runs.text_content()
    shots.take(page, "benchmark-done")

    with page.expect_download() as download:
        page.get_by_role("link", name="summary.csv").click()
    assert Path(download.value.path()).read_text().startswith("run_index,label,loop")
    files = f"{base}/benchmarks/{benchmark_id}/files"
    summary = context.request.get(f"{files}/summary.json").json()
    sent = summary["runs"][0]["requests_sent"]
    assert sent > 50
    jsonl = context.request.get(f"{files}/records.jsonl")
    assert jsonl.ok and jsonl.headers["content-type"].startswith("application/x-ndjson")
    lines = jsonl.text().splitlines()
    assert len(lines) == sent + summary["runs"][0]["warmup_excluded"]
    assert json.loads(lines[0])["run_index"] == 0
    assert context.request.get(f"{files}/records.parquet").body()[:4] == b"PAR1"
    assert context.request.get(f"{files}/report.html").status == 404  # only the listed files

    with page.expect_navigation():
        page.click("#report-link")
    assert page.title().startswith("Benchmark report")
    assert "script-src" not in (page.evaluate("() => document.head.innerHTML") or "")
    shots.take(page, "report")

    page.goto(f"{base}/benchmarks")
    assert "completed" in page.locator(f"tr[data-benchmark-id='{benchmark_id}']").text_content()
    shots.take(page, "benchmarks")

    page.goto(f"{base}/services/{service_id}")
    with page.expect_navigation():
        page.get_by_role("button", name="Stop", exact=True).click()
    page.wait_for_selector("h1 .state-cancelled", timeout=60_000)
    watch.clean()
    context.close()


EXPERIMENT = """\
name: web-quick
description: the simulator, one short workload, from the web page
service:
  recipe: inference/simulator
  overrides:
    ports: {{http: {port}}}
    extra_args: [--ttft-ms, "10", --itl-ms, "1", --output-tokens, "8"]
    health: {{path: /health, timeout: 90, interval: 0.3}}
workloads:
  - name: sync
    profile: synchronous
    backend: openai_chat
    requests: 10
    workers: 1
teardown: always
"""


def test_an_experiment_file_runs_step_by_step(
    browser: Any, web_stack: UpStack, shots: Shots, tmp_path: Path
) -> None:
    base = web_stack.ingress
    context, page, watch = logged_in(browser, web_stack)
    page.goto(f"{base}/experiments")
    assert "quickstart.yaml" in page.text_content("#f-example")

    broken = tmp_path / "broken.yaml"
    broken.write_text(EXPERIMENT.format(port=free_port()).replace("requests: 10", "rate: -1"))
    page.set_input_files("#f-upload", str(broken))
    with page.expect_navigation():
        page.get_by_role("button", name="Run", exact=True).click()
    assert "rate" in page.text_content("#form-errors")  # checked before anything ran
    assert page.locator("#experiments tbody tr").count() == 0

    good = tmp_path / "quick.yaml"
    good.write_text(EXPERIMENT.format(port=free_port()))
    page.set_input_files("#f-upload", str(good))
    with page.expect_navigation():
        page.get_by_role("button", name="Run", exact=True).click()
    assert "/experiments/" in page.url
    page.wait_for_selector("li[data-step='deploy']", timeout=30_000)
    shots.take(page, "experiment-running")
    page.wait_for_selector("#report-link", timeout=240_000)
    steps = {
        li.get_attribute("data-step"): li.get_attribute("class")
        for li in page.locator("#steps li").all()
    }
    for name in ("deploy", "ready", "workload sync", "teardown", "report"):
        assert "step-done" in (steps.get(name) or ""), steps
    assert page.get_attribute("li[data-step='workload sync'] a", "href").startswith("/benchmarks/")
    shots.take(page, "experiment-done")
    with page.expect_navigation():
        page.click("#report-link")
    assert "web-quick" in page.title()
    page.goto(f"{base}/experiments")
    shots.take(page, "experiments")
    watch.clean()
    context.close()


def test_recipes_show_their_fields_and_script(
    browser: Any, web_stack: UpStack, shots: Shots
) -> None:
    context, page, watch = logged_in(browser, web_stack)
    page.goto(f"{web_stack.ingress}/recipes")
    shots.take(page, "recipes")
    with page.expect_navigation():
        page.get_by_role("link", name="inference/simulator").click()
    assert "health:" in page.text_content("#recipe-yaml")
    assert "#SBATCH" in page.text_content("#recipe-script")
    shots.take(page, "recipe")
    watch.clean()
    context.close()


def test_streams_end_when_pages_close(browser: Any, web_stack: UpStack) -> None:
    before = open_streams(web_stack)
    context, _, _ = logged_in(browser, web_stack)  # /services streams
    second = context.new_page()
    second.goto(f"{web_stack.ingress}/benchmarks")
    wait_until(lambda: open_streams(web_stack) >= before + 2, 20, "two open streams")
    context.close()
    wait_until(lambda: open_streams(web_stack) == before, 30, "every stream closed")
