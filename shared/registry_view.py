"""A live, read-only copy of a KV registry, kept current by a KV watcher.

Read paths that serve many clients (the ingress's ``GET /services/{id}``) answer from memory
with the stored JSON bytes: no bus round trip, no parse and re-serialise. Measured on the
ingress under 200 clients, the KV read and record handling were most of the route's CPU. A
key the view does not hold yet falls back to the KV itself, so a record created a moment
ago is never reported missing just because its watch update is still in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

_DELETES = ("DEL", "PURGE")


class RegistryView:
    """``reconnects``: the connection's reconnect count. A restarted nats-server forgets the
    watch's ephemeral consumer and the watch falls silent without an error, so after every
    reconnect the view takes a fresh snapshot (swapped in whole, so readers never see a
    half-built copy)."""

    def __init__(
        self, kv: KeyValue, *, reconnects: Callable[[], int] | None = None, check_s: float = 0.25
    ) -> None:
        self.kv = kv
        self.reconnects = reconnects
        self.check_s = check_s
        self._values: dict[str, bytes] = {}
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None
        self._guard: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 10.0) -> None:
        await self._watch(timeout)
        if self.reconnects is not None:
            self._guard = asyncio.create_task(self._renew_after_reconnects(), name="view-guard")

    async def _watch(self, timeout: float = 10.0) -> None:
        watcher = await self.kv.watchall()
        values: dict[str, bytes] = {}
        ready = asyncio.Event()
        task = asyncio.create_task(_follow(watcher, values, ready), name="registry-view")
        try:
            await asyncio.wait_for(ready.wait(), timeout)
        except BaseException:
            task.cancel()
            with contextlib.suppress(Exception):
                await watcher.stop()
            raise
        old_watcher, old_task = self._watcher, self._task
        self._watcher, self._task, self._values = watcher, task, values
        await _stop(old_watcher, old_task)

    async def _renew_after_reconnects(self) -> None:
        assert self.reconnects is not None
        seen = self.reconnects()
        while True:
            await asyncio.sleep(self.check_s)
            now = self.reconnects()
            if now == seen:
                continue
            try:
                await self._watch()
            except (TimeoutError, NatsError) as exc:
                log.warning("registry view: cannot watch again yet (%s); retrying", exc)
                continue
            seen = now
            log.info("registry view renewed after a reconnect (%d records)", len(self._values))

    async def stop(self) -> None:
        if self._guard is not None:
            self._guard.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._guard
        await _stop(self._watcher, self._task)

    async def get_json(self, key: str) -> bytes | None:
        value = self._values.get(key)
        if value is not None:
            return value
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None
        return entry.value

    def all_json(self) -> list[bytes]:
        return list(self._values.values())


async def _follow(
    watcher: KeyValue.KeyWatcher, values: dict[str, bytes], ready: asyncio.Event
) -> None:
    async for entry in watcher:
        if entry is None:  # end of the initial snapshot
            ready.set()
            continue
        if entry.operation in _DELETES or entry.value is None:
            values.pop(entry.key, None)
        else:
            values[entry.key] = entry.value


async def _stop(watcher: KeyValue.KeyWatcher | None, task: asyncio.Task[None] | None) -> None:
    if watcher is not None:
        try:
            await watcher.stop()
        except NatsError as exc:  # its consumer may be gone with the old server
            log.debug("stopping an old watch: %s", exc)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
