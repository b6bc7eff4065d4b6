"""One scrape of one URL: the kept samples, or the reason there are none. Never raises.

A failed scrape is data (Prometheus's ``up`` = 0 with a reason), not an exception: a target
that refuses connections, answers garbage, sends more than ``max_bytes``, takes longer
than ``timeout`` or disappears mid-answer only costs its own scrape. The HTTP fetch runs
under a concurrency limit shared by all targets and a timeout per scrape, so a slow target
holds one slot for at most ``timeout`` and never delays the others' schedule.

The HTTP client is the load generator's lean one (``asyncio.Protocol`` + httptools,
keep-alive per target): measured on 100 targets every 5 s, aiohttp's per-request machinery
was a fifth of the monitor's CPU. Bodies arrive through a sink that stops reading past
``max_bytes``. No ``Accept-Encoding`` is sent, so exporters answer uncompressed text (less
CPU than decompressing, and the size limit applies to what is really read).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aifactory.loadgen.transport import ConnectionLostError, HttpClient, HttpProtocolError
from aifactory.monitor.exposition import ExpositionError, Parser
from aifactory.shared.messages.monitor import SeriesGroup

#: Every line's shape is checked on a target's first scrape, after a failed one, and then
#: every this many scrapes (once a minute at 5 s); the cheap checks run every time.
THOROUGH_EVERY = 12


class TooLarge(Exception):
    """The exposition is longer than the limit."""


class BadStatus(Exception):
    """The target answered, but not 200."""


class _Body:
    """Collects a response body; refuses to hold more than ``limit`` bytes."""

    __slots__ = ("chunks", "limit", "size")

    def __init__(self, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = limit

    def feed(self, data: bytes, now_ns: int) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise TooLarge
        self.chunks.append(data)


@dataclass(frozen=True, slots=True)
class ScrapeOutcome:
    up: bool
    duration_s: float
    size_bytes: int = 0
    groups: list[SeriesGroup] = field(default_factory=list)
    error: str | None = None


class Scraper:
    """Fetches and parses expositions; one per monitor (it keeps connections and caches)."""

    def __init__(
        self,
        parser: Parser,
        *,
        timeout: float = 4.0,
        max_bytes: int = 10 * 1024 * 1024,
        concurrency: int = 32,
    ) -> None:
        self.parser = parser
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._slots = asyncio.Semaphore(concurrency)
        #: One keep-alive client per origin, and each URL's prebuilt request.
        self._clients: dict[str, HttpClient] = {}
        self._requests: dict[str, tuple[HttpClient, bytes]] = {}
        #: Scrapes of each URL since its last thorough check (absent: check next time).
        self._since_thorough: dict[str, int] = {}

    def _request(self, url: str) -> tuple[HttpClient, bytes]:
        found = self._requests.get(url)
        if found is None:
            parts = urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc}"
            client = self._clients.get(origin)
            if client is None:
                client = self._clients[origin] = HttpClient(origin, timeout_s=self.timeout)
            found = self._requests[url] = (client, client.get_payload(parts.path or "/"))
        return found

    async def retain(self, urls: Iterable[str]) -> None:
        """Close the connections of targets no longer scraped."""
        keep = set(urls)
        for url in [u for u in self._requests if u not in keep]:
            del self._requests[url]
            self._since_thorough.pop(url, None)
        origins = {f"{p.scheme}://{p.netloc}" for p in map(urlsplit, self._requests)}
        for origin in [o for o in self._clients if o not in origins]:
            await self._clients.pop(origin).close()

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        self._requests.clear()

    async def scrape(self, url: str) -> ScrapeOutcome:
        outcome = await self._scrape(url)
        if not outcome.up:
            self._since_thorough.pop(url, None)  # the next one checks every line again
        return outcome

    async def _scrape(self, url: str) -> ScrapeOutcome:
        start = time.perf_counter()
        size = 0
        try:
            async with self._slots:
                begun = time.perf_counter()
                try:
                    async with asyncio.timeout(self.timeout):
                        body = await self._fetch(url)
                except TimeoutError:
                    waited = time.perf_counter() - begun
                    return _failed(start, f"timeout: no complete answer in {waited:.1f} s")
            size = len(body)
            since = self._since_thorough.get(url, THOROUGH_EVERY)
            thorough = since >= THOROUGH_EVERY
            groups = self.parser.samples(body, thorough=thorough, source=url)
            self._since_thorough[url] = 1 if thorough else since + 1
        except TooLarge:
            return _failed(start, f"exposition over {self.max_bytes:,} bytes; not read further")
        except ExpositionError as exc:
            return _failed(start, f"invalid exposition: {exc}", size)
        except ConnectionLostError as exc:
            return _failed(start, f"connection lost mid-scrape: {exc}")
        except HttpProtocolError as exc:
            return _failed(start, f"not an HTTP answer: {exc}")
        except BadStatus as exc:
            return _failed(start, f"HTTP {exc}")
        except OSError as exc:
            return _failed(start, f"cannot connect: {exc}")
        return ScrapeOutcome(
            up=True, duration_s=time.perf_counter() - start, size_bytes=size, groups=groups
        )

    async def _fetch(self, url: str) -> bytes:
        client, payload = self._request(url)
        body = _Body(self.max_bytes)
        response = await client.request(payload, body)
        if response.status != 200:
            raise BadStatus(str(response.status))
        return b"".join(body.chunks)


def _failed(start: float, reason: str, size: int = 0) -> ScrapeOutcome:
    return ScrapeOutcome(
        up=False, duration_s=time.perf_counter() - start, size_bytes=size, error=reason
    )
