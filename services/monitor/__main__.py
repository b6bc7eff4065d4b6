"""``python -m aifactory.services.monitor``: the monitor service."""

from __future__ import annotations

import asyncio

import uvloop

from aifactory.services.monitor.service import MonitorService
from aifactory.shared.process import service_main

if __name__ == "__main__":
    # uvloop: a hundred targets' sockets, timers and publishes every few seconds cost about
    # half the CPU on it that they cost on asyncio's own loop.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    service_main(MonitorService)
