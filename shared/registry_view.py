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

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

_DELETES = ("DEL", "PURGE")

#: Told of every change after the initial snapshot: the key and its new value (``None``:
#: deleted). Called in the view's task: keep it quick, never block.
Listener = Callable[[str, bytes | None], None]


class RegistryView:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self._values: dict[str, bytes] = {}
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` on every change from now on; returns the function that stops it
        (the web page pushes registry changes to browsers this way)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def start(self, timeout: float = 10.0) -> None:
        self._watcher = await self.kv.watchall()
        self._task = asyncio.create_task(self._follow(), name="registry-view")
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def _follow(self) -> None:
        assert self._watcher is not None
        async for entry in self._watcher:
            if entry is None:  # end of the initial snapshot
                self._ready.set()
                continue
            if entry.operation in _DELETES or entry.value is None:
                self._values.pop(entry.key, None)
                value = None
            else:
                self._values[entry.key] = value = entry.value
            for listener in self._listeners:
                try:
                    listener(entry.key, value)
                except Exception:  # a listener's bug must not stop the view
                    log.exception("registry view listener failed on %s", entry.key)

    async def stop(self) -> None:
        if self._watcher is not None:
            await self._watcher.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

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
