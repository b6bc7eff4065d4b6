"""One scrape of one URL: the kept samples, or the reason there are none. Never raises.

A failed scrape is data (Prometheus's ``up`` = 0 with a reason), not an exception: a target
that refuses connections, answers garbage, sends more than ``max_bytes``, takes longer
than ``timeout`` or disappears mid-answer only costs its own scrape. The HTTP fetch runs
under a concurrency limit shared by all targets and a timeout per scrape, so a slow target
holds one slot for at most ``timeout`` and never delays the others' schedule.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp

from aifactory.monitor.exposition import ExpositionError, Parser
from aifactory.shared.messages.monitor import Sample

#: Plain text exposition only (no protobuf, no OpenMetrics), uncompressed: decompressing
#: costs more CPU than the bytes cost on a cluster network, and the size limit then
#: applies to what is really read.
HEADERS = {"Accept": "text/plain;version=0.0.4", "Accept-Encoding": "identity"}
CHUNK = 256 * 1024
#: Every line's shape is checked on a target's first scrape, after a failed one, and then
#: every this many scrapes (once a minute at 5 s); the cheap checks run every time.
THOROUGH_EVERY = 12


class TooLarge(Exception):
    """The exposition is longer than the limit."""


class BadStatus(Exception):
    """The target answered, but not 200."""


@dataclass(frozen=True, slots=True)
class ScrapeOutcome:
    up: bool
    duration_s: float
    size_bytes: int = 0
    samples: list[Sample] = field(default_factory=list)
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
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        #: Scrapes of each URL since its last thorough check (absent: check next time).
        self._since_thorough: dict[str, int] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._concurrency, ttl_dns_cache=300, keepalive_timeout=30
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers=HEADERS, auto_decompress=False
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def scrape(self, url: str) -> ScrapeOutcome:
        outcome = await self._scrape(url)
        if not outcome.up:
            self._since_thorough.pop(url, None)  # the next one checks every line again
        elif len(self._since_thorough) > 100_000:
            self._since_thorough.clear()  # targets came and went: stay bounded
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
            samples = self.parser.samples(body, thorough=thorough, source=url)
            self._since_thorough[url] = 1 if thorough else since + 1
        except TooLarge:
            return _failed(start, f"exposition over {self.max_bytes:,} bytes; not read further")
        except ExpositionError as exc:
            return _failed(start, f"invalid exposition: {exc}", size)
        except aiohttp.ClientConnectorError as exc:
            return _failed(start, f"cannot connect: {exc.os_error or exc}")
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            return _failed(start, f"connection lost mid-scrape: {exc}")
        except BadStatus as exc:
            return _failed(start, f"HTTP {exc}")
        except (aiohttp.ClientError, OSError) as exc:
            return _failed(start, f"{type(exc).__name__}: {exc}")
        return ScrapeOutcome(
            up=True, duration_s=time.perf_counter() - start, size_bytes=size, samples=samples
        )

    async def _fetch(self, url: str) -> bytes:
        async with self._client().get(url, allow_redirects=False) as response:
            if response.status != 200:
                raise BadStatus(f"{response.status} {response.reason or ''}".strip())
            if (response.content_length or 0) > self.max_bytes:
                raise TooLarge
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(CHUNK):
                size += len(chunk)
                if size > self.max_bytes:
                    raise TooLarge
                chunks.append(chunk)
            return b"".join(chunks)


def _failed(start: float, reason: str, size: int = 0) -> ScrapeOutcome:
    return ScrapeOutcome(
        up=False, duration_s=time.perf_counter() - start, size_bytes=size, error=reason
    )
