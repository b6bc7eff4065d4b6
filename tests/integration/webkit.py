"""The web page's tests: Debian's chromium driven by Playwright, against a real stack.

Never a downloaded browser: ``/usr/bin/chromium`` from the ``chromium`` apt package
(``deploy/setup.sh`` installs it), headless, without the network features a test must not
touch. Playwright gives every launch a fresh, temporary profile (its own
``--user-data-dir``) and every test a fresh context (no cookies carried over).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from tests.conftest import need
from tests.integration.server_stack import UpStack

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
REPO = Path(__file__).resolve().parents[2]
#: Set to a folder to keep the screenshots (the README's comes from here).
SCREENSHOTS_ENV = "AIFACTORY_WEB_SCREENSHOTS"


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    need(CHROMIUM.exists(), f"Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "playwright for Python (pip install -e '.[dev]')")
        raise
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            yield browser
        finally:
            browser.close()


def add_recipes(stack: UpStack) -> None:
    """The simulator recipe beside the stack's test recipes (deployed from the form)."""
    root = Path(stack.env["AIFACTORY_RECIPES_DIR"]) / "inference"
    shutil.copy(REPO / "recipes" / "inference" / "simulator.yaml", root / "simulator.yaml")


def login_link(stack: UpStack) -> str:
    """What a user clicks: the link ``aifactory web`` prints."""
    done = stack.cli("web", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    link = done.stdout.strip().splitlines()[-1]
    assert "/login?ticket=" in link, done.stdout
    return link


class Watch:
    """What a page must never do: open a dialog, log an error, throw."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        #: Chrome logs every 4xx answer as a console error; the tests expect some (a form
        #: with errors answers 422) and check statuses themselves.
        self.http_errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        if message.text.startswith("Failed to load resource: the server responded with"):
            self.http_errors.append(message.text)
        else:
            self.errors.append(message.text)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def clean(self) -> None:
        assert self.dialogs == [], f"the page opened dialogs: {self.dialogs}"
        assert self.errors == [], f"the page logged errors: {self.errors}"


def logged_in(browser: Browser, stack: UpStack) -> tuple[BrowserContext, Page, Watch]:
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    watch = Watch(page)
    page.goto(login_link(stack))
    assert page.url == f"{stack.ingress}/services", page.url
    return context, page, watch


class Shots:
    """A screenshot of each page in the test output (and in ``$AIFACTORY_WEB_SCREENSHOTS``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.keep = Path(os.environ[SCREENSHOTS_ENV]) if os.environ.get(SCREENSHOTS_ENV) else None

    def take(self, page: Page, name: str, *, full_page: bool = True) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        if self.keep is not None:
            self.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, self.keep / path.name)
        return path


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what} not within {timeout:g}s (last: {last!r})")


def api(stack: UpStack) -> httpx.Client:
    return httpx.Client(base_url=stack.ingress, headers=stack.headers, timeout=30)


def open_streams(stack: UpStack) -> float:
    """``aifactory_web_streams`` from the ingress's /metrics."""
    text = httpx.get(f"{stack.ingress}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("aifactory_web_streams "):
            return float(line.split()[1])
    raise AssertionError("no aifactory_web_streams in /metrics")


def stop_services(stack: UpStack) -> None:
    with api(stack) as client:
        for record in client.get("/api/v1/services").json():
            if record["state"] not in {"completed", "failed", "cancelled", "timeout"}:
                client.delete(f"/api/v1/services/{record['service_id']}")


def unlabelled_controls(page: Page) -> list[str]:
    """Form controls a screen reader could not name."""
    result: list[str] = page.evaluate(
        """() => Array.from(document.querySelectorAll(
              'input:not([type=hidden]), select, textarea'))
            .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label'))
            .map(el => el.name || el.id || el.outerHTML.slice(0, 80))"""
    )
    return result


def tab_order(page: Page, limit: int = 400) -> list[str]:
    """Ids (or names) of what keyboard focus visits, pressing Tab from the top. A radio
    group is one stop (``radio:<name>``), as in every browser: arrows move within it."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    seen: list[str] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        current = page.evaluate(
            "() => { const e = document.activeElement; if (!e) return '';"
            " if (e.type === 'radio') return 'radio:' + e.name;"
            " return e.id || e.name || e.textContent.trim().slice(0, 40); }"
        )
        if seen and current == seen[0]:
            break
        seen.append(current)
    return seen


def tab_to(page: Page, selector: str, limit: int = 300) -> None:
    """Move keyboard focus to ``selector`` with Tab only."""
    for _ in range(limit):
        if page.evaluate("(s) => document.activeElement === document.querySelector(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def form_controls(page: Page, form: str) -> list[str]:
    result: list[str] = page.evaluate(
        """(form) => Array.from(document.querySelectorAll(
              form + ' input:not([type=hidden]), ' + form + ' select, ' + form + ' textarea, '
              + form + ' button'))
            .filter(el => !el.disabled && el.offsetParent !== null)
            .map(el => el.type === 'radio' ? 'radio:' + el.name
                       : el.id || el.name || el.textContent.trim().slice(0, 40))""",
        form,
    )
    return result
