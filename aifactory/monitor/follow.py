"""Follow a KV bucket: a live dictionary of its values and a signal when one changes.

The monitor reacts to the registries (a service starts running, a benchmark starts) as
they change rather than polling them: a KV watcher delivers every update once, in order,
after the bucket's current contents.
"""

from __future__ import annotations

import asyncio
import contextlib

from nats.js.kv import KeyValue

_DELETES = ("DEL", "PURGE")


class KVFollower:
    def __init__(self, kv: KeyValue, name: str, changed: asyncio.Event) -> None:
        self.kv = kv
        self.name = name
        self.values: dict[str, bytes] = {}
        #: Set on every change (shared by several followers: one wake-up for any of them).
        self.changed = changed
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None

    async def start(self, timeout: float = 10.0) -> None:
        self._watcher = await self.kv.watchall()
        self._task = asyncio.create_task(self._follow(), name=f"follow-{self.name}")
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def _follow(self) -> None:
        assert self._watcher is not None
        async for entry in self._watcher:
            if entry is None:  # the end of the current contents
                self._ready.set()
                self.changed.set()
                continue
            if entry.operation in _DELETES or entry.value is None:
                self.values.pop(entry.key, None)
            else:
                self.values[entry.key] = entry.value
            self.changed.set()

    async def stop(self) -> None:
        if self._watcher is not None:
            await self._watcher.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
