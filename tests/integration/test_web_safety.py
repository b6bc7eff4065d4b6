"""The web page's safety in a real browser: login and its cookie, what a bad override does
(nothing), hostile text shown as text and never run, every form usable with the keyboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.server_stack import UpStack
from tests.integration.webkit import (
    Shots,
    Watch,
    api,
    form_controls,
    logged_in,
    login_link,
    tab_order,
    tab_to,
    unlabelled_controls,
    wait_until,
)

pytestmark = [pytest.mark.nats, pytest.mark.browser, pytest.mark.timeout(300)]

SENTINEL = "__aif_pwned"
#: Script-injection strings: each would set the sentinel, open a dialog or break the page
#: if it were ever parsed as markup or script instead of shown as text.
CORPUS = [
    f"<script>window.{SENTINEL}=1</script>",
    f'<img src=x onerror="window.{SENTINEL}=1">',
    '"><svg onload=alert(1)>',
    "'><script>alert(document.cookie)</script>",
    f'<iframe srcdoc="<script>parent.{SENTINEL}=1</script>"></iframe>',
    "</textarea><script>alert(2)</script>",
    "</pre><script>alert(3)</script>",
    '<a href="javascript:alert(4)">click</a>',
    "javascript:alert(5)",
    f"<details open ontoggle=window.{SENTINEL}=1>",
    "{{7*7}} ${7*7} <%= 7*7 %>",
    '<style>body{display:none}</style><math><mi xlink:href="data:x,<script>alert(6)</script>">',
]


def _untouched(page: Any, watch: Watch) -> None:
    assert page.evaluate(f"() => typeof window.{SENTINEL}") == "undefined"
    # Nothing the corpus holds became an element: no frame, no SVG, no inline script.
    elements = "iframe, svg, script:not([src])"
    assert page.evaluate("(s) => document.querySelectorAll(s).length", elements) == 0
    watch.clean()


def test_login_form_wrong_token_cookie_and_one_time_links(
    browser: Any, web_stack: UpStack, shots: Shots
) -> None:
    base = web_stack.ingress
    context = browser.new_context()
    page = context.new_page()
    watch = Watch(page)
    page.goto(f"{base}/services")
    assert page.url == f"{base}/login?next=%2Fservices"
    assert page.get_by_label("Ingress token").is_visible()
    shots.take(page, "login")
    page.fill("#token", "not-the-token")
    with page.expect_navigation() as wrong:
        page.get_by_role("button", name="Log in").click()
    assert wrong.value.status == 401
    assert "not this stack's token" in page.text_content("#login-error")
    token = web_stack.headers["Authorization"].removeprefix("Bearer ")
    page.fill("#token", token)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    assert page.url == f"{base}/services"
    (cookie,) = [c for c in context.cookies() if c["name"].startswith("aif_session_")]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert token not in cookie["value"]
    # The cookie opens the page, not the API: API clients keep the bearer header.
    assert context.request.get(f"{base}/api/v1/services").status == 401

    session = {cookie["name"]: cookie["value"]}
    evil = {"Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"}
    before = len(api(web_stack).get("/api/v1/services").json())
    body = "__recipe=inference/httpserver"
    forged = httpx.post(f"{base}/services/new", cookies=session, headers=evil, content=body)
    assert forged.status_code == 403  # another site cannot make the browser deploy
    assert len(api(web_stack).get("/api/v1/services").json()) == before
    rebound = httpx.get(f"{base}/services", cookies=session, headers={"Host": "evil.example"})
    assert rebound.status_code == 421  # DNS rebinding: a loopback page for loopback names

    with page.expect_navigation():
        page.get_by_role("button", name="Log out").click()
    assert page.url.startswith(f"{base}/login")
    stale = httpx.get(f"{base}/services", cookies=session, headers={"Accept": "text/html"})
    assert stale.status_code == 303 and stale.headers["location"].startswith("/login")

    link = login_link(web_stack)
    first = browser.new_context()
    assert first.new_page().goto(link).url == f"{base}/services"
    second = browser.new_context()
    reused = second.new_page()
    assert reused.goto(link).status == 401
    assert "used already" in reused.text_content("#login-error")
    assert reused.goto(link.replace("ticket=", "ticket=x")).status == 401
    watch.clean()
    for ctx in (context, first, second):
        ctx.close()


def test_a_bad_override_shows_its_field_error_and_deploys_nothing(
    browser: Any, web_stack: UpStack, shots: Shots
) -> None:
    base = web_stack.ingress
    context, page, watch = logged_in(browser, web_stack)
    before = api(web_stack).get("/api/v1/services").json()
    page.goto(f"{base}/services/new?recipe=inference/httpserver")
    page.fill("#f-resources-gpu", "-1")
    page.fill("#f-extra_args", "[unclosed")
    with page.expect_navigation() as posted:
        page.get_by_role("button", name="Deploy", exact=True).click()
    assert posted.value.status == 422
    assert "not a YAML value" in page.text_content("#f-extra_args-error")
    assert page.get_attribute("#f-extra_args", "aria-invalid") == "true"
    assert page.input_value("#f-resources-gpu") == "-1"  # what was typed stays
    page.fill("#f-extra_args", "[]")
    with page.expect_navigation() as posted:
        page.get_by_role("button", name="Deploy", exact=True).click()
    assert posted.value.status == 422
    error = page.text_content("#f-resources-gpu-error")
    assert "resources.gpu" in error and "greater than or equal to 0" in error
    assert "f-resources-gpu-error" in page.get_attribute("#f-resources-gpu", "aria-describedby")
    shots.take(page, "deploy-form-error")
    assert api(web_stack).get("/api/v1/services").json() == before  # nothing deployed
    watch.clean()
    context.close()


def test_hostile_text_is_shown_as_text_and_runs_nothing(
    browser: Any, web_stack: UpStack, tmp_path: Path
) -> None:
    base = web_stack.ingress
    context, page, watch = logged_in(browser, web_stack)
    environment = {f"HOSTILE_{i}": text for i, text in enumerate(CORPUS)}
    description = " | ".join(CORPUS)
    page.goto(f"{base}/services/new?recipe=inference/httpserver")
    page.fill("#f-description", description)
    page.fill("#f-environment", yaml.safe_dump(environment, default_flow_style=True, width=10**6))
    page.locator("#f-environment").blur()
    wait_until(lambda: "HOSTILE_11" in page.text_content("#preview"), 20, "the preview")
    _untouched(page, watch)  # the htmx-swapped preview holds the corpus, quoted for bash
    with page.expect_navigation():
        page.get_by_role("button", name="Deploy", exact=True).click()
    service_id = page.url.rsplit("/", 1)[1]
    shown = yaml.safe_load(page.text_content("#overrides"))
    assert shown["environment"] == environment and shown["description"] == description
    _untouched(page, watch)
    page.goto(f"{base}/services")
    _untouched(page, watch)

    # An error message quoting hostile text: an environment name that is not one.
    bad_key = CORPUS[1]
    page.goto(f"{base}/services/new?recipe=inference/httpserver")
    page.fill("#f-environment", yaml.safe_dump({bad_key: "x"}, default_flow_style=True))
    with page.expect_navigation():
        page.get_by_role("button", name="Deploy", exact=True).click()
    assert bad_key in page.text_content("#f-environment-error")
    _untouched(page, watch)

    # An uploaded experiment whose name and content are hostile.
    upload = tmp_path / f'"><svg onload=alert(7)>{SENTINEL}.yaml'
    upload.write_text(f"name: ok\nservice: {{recipe: inference/httpserver}}\n{CORPUS[0]}: 1\n")
    page.goto(f"{base}/experiments")
    page.set_input_files("#f-upload", str(upload))
    with page.expect_navigation():
        page.get_by_role("button", name="Run", exact=True).click()
    errors = page.text_content("#form-errors")
    # (Chrome sends '"' in a file name as %22; the rest arrives as typed.)
    assert "><svg onload=alert(7)>" in errors and CORPUS[0] in errors
    _untouched(page, watch)

    api(web_stack).delete(f"/api/v1/services/{service_id}")
    context.close()


def test_every_form_works_from_the_keyboard_with_labelled_inputs(
    browser: Any, web_stack: UpStack
) -> None:
    base = web_stack.ingress
    context = browser.new_context()
    page = context.new_page()
    watch = Watch(page)
    page.goto(f"{base}/login")
    assert unlabelled_controls(page) == []
    page.keyboard.type(web_stack.headers["Authorization"].removeprefix("Bearer "))  # autofocus
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == f"{base}/services"

    page.goto(f"{base}/services/new")
    assert unlabelled_controls(page) == []
    visited = set(tab_order(page))
    missing = set(form_controls(page, "#deploy-form")) - visited
    assert not missing, f"never reached with Tab: {missing}"
    tab_to(page, "#recipe-choice")
    page.keyboard.press("End")  # the last recipe in the list…
    tab_to(page, "#recipe-form button")
    with page.expect_navigation():
        page.keyboard.press("Enter")  # …loaded by keyboard
    assert "recipe=inference%2F" in page.url or "recipe=inference/" in page.url
    page.goto(f"{base}/services/new?recipe=inference/httpserver")
    tab_to(page, "#f-health-timeout")
    page.keyboard.press("Control+A")
    page.keyboard.type("45")
    tab_to(page, "#preview-button")
    page.keyboard.press("Enter")
    wait_until(lambda: "#SBATCH" in page.text_content("#preview"), 20, "the preview")
    tab_to(page, "#deploy-form button.primary")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/services/" in page.url and "/new" not in page.url
    tab_to(page, "#stop-form button")
    with page.expect_navigation():
        page.keyboard.press("Enter")  # Stop, by keyboard

    page.goto(f"{base}/benchmarks/new")
    assert unlabelled_controls(page) == []
    missing = set(form_controls(page, "#bench-form")) - set(tab_order(page))
    assert not missing, f"never reached with Tab: {missing}"
    tab_to(page, "#target-service")
    page.keyboard.press("ArrowDown")  # within the radio group: "a URL"
    assert page.is_checked("#target-url")
    tab_to(page, "#f-url")
    page.keyboard.type("http://127.0.0.1:9/")
    tab_to(page, "#f-duration_s")
    page.keyboard.press("Control+A")
    page.keyboard.type("2")
    tab_to(page, "#bench-form button.primary")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/benchmarks/" in page.url and "/new" not in page.url

    page.goto(f"{base}/experiments")
    assert unlabelled_controls(page) == []
    tab_to(page, "#experiment-form button.primary")
    with page.expect_navigation() as posted:
        page.keyboard.press("Enter")
    assert posted.value.status == 422  # submitted; the server says what is missing
    assert "choose an example" in page.text_content("#form-errors")

    tab_to(page, "form.logout button")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.startswith(f"{base}/login")
    watch.clean()
    context.close()
