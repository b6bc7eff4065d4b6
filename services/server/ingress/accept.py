"""202 Accepted, but only answered once the consumer has registered the new resource.

Commands are asynchronous; without this, a client doing ``POST`` then ``GET`` would get a
404 for the few milliseconds the server takes to create the record. The wait is bounded:
with the consumer down, the command waits in the stream and the POST still answers 202.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

#: How long a POST waits for the command's consumer to register the new resource.
ACCEPT_WAIT_S = 2.0


async def registered(
    probe: Callable[[], Awaitable[object]], timeout: float = ACCEPT_WAIT_S
) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await probe() is not None:
            return True
        await asyncio.sleep(0.01)
    return False
