"""When each target is scraped: its own loop, every interval, faster under a benchmark.

Every target has its own task, so a slow or dead target only ever delays itself; the
scraper's concurrency limit and timeout bound what all of them hold at once. First scrapes
are spread over one interval, so a hundred targets added together do not all fire in the
same millisecond. A service that starts being benchmarked has its loops restarted at once
on the short interval: the window's first sample is taken when the load starts, not up to
one long interval later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

from aifactory.monitor.scrape import ScrapeOutcome, Scraper
from aifactory.shared.messages.base import utcnow
from aifactory.shared.messages.monitor import ScrapeTarget

log = logging.getLogger(__name__)

#: Called with every scrape: the target, the outcome, and when the scrape started.
OnScrape = Callable[[ScrapeTarget, ScrapeOutcome, datetime], Awaitable[None]]


class ScrapeScheduler:
    def __init__(
        self,
        scraper: Scraper,
        on_scrape: OnScrape,
        *,
        interval: float = 5.0,
        fast_interval: float = 1.0,
    ) -> None:
        self.scraper = scraper
        self.on_scrape = on_scrape
        self.interval = interval
        self.fast_interval = fast_interval
        self.targets: dict[str, ScrapeTarget] = {}
        self.fast_services: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._rng = random.Random()

    def interval_for(self, target: ScrapeTarget) -> float:
        return self.fast_interval if target.service_id in self.fast_services else self.interval

    def set_targets(self, targets: Iterable[ScrapeTarget]) -> None:
        """Scrape exactly ``targets`` from now on (changed ones restart, gone ones stop)."""
        wanted = {t.key: t for t in targets}
        for key in list(self._tasks):
            if key not in wanted:
                self._stop(key)
        for key, target in wanted.items():
            if self.targets.get(key) != target or key not in self._tasks:
                self._stop(key)
                self.targets[key] = target
                self._start(key, delay=self._rng.uniform(0, self.interval_for(target)))

    def set_fast(self, service_ids: set[str]) -> None:
        """Services under a benchmark: their targets switch interval (and scrape now)."""
        changed = service_ids ^ self.fast_services
        self.fast_services = set(service_ids)
        for key, target in list(self.targets.items()):
            if target.service_id in changed:
                self._stop(key)
                self.targets[key] = target
                self._start(key, delay=0.0)

    def _start(self, key: str, delay: float) -> None:
        self._tasks[key] = asyncio.create_task(self._loop(key, delay), name=f"scrape-{key}")

    def _stop(self, key: str) -> None:
        task = self._tasks.pop(key, None)
        self.targets.pop(key, None)
        if task is not None:
            task.cancel()

    async def _loop(self, key: str, delay: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        me = asyncio.current_task()
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            target = self.targets.get(key)
            if target is None or self._tasks.get(key) is not me:
                # Replaced or stopped while its cancellation was swallowed (a scrape or a
                # publish that caught it): this loop is stale, the new one scrapes.
                return
            started = utcnow()
            outcome = await self.scraper.scrape(target.url)
            try:
                await self.on_scrape(target, outcome, started)
            except Exception:  # one lost publish must not end the target's loop
                log.exception("handling a scrape of %s failed", target.url)
            step = self.interval_for(target)
            due += step
            if due < loop.time():  # fell behind (a long timeout): skip, do not burst
                due = loop.time() + step

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for key in list(self._tasks):
            self._stop(key)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
