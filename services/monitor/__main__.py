"""``python -m aifactory.services.monitor``: the monitor service."""

from __future__ import annotations

from aifactory.services.monitor.service import MonitorService
from aifactory.shared.process import service_main

if __name__ == "__main__":
    service_main(MonitorService)
