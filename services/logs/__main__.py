"""``python -m aifactory.services.logs``: the logs service."""

from __future__ import annotations

from aifactory.services.logs.service import LogsService
from aifactory.shared.process import service_main

if __name__ == "__main__":
    service_main(LogsService)
