"""``python -m aifactory.services.server``: the server service."""

from __future__ import annotations

from aifactory.services.server.service import ServerService
from aifactory.shared.process import service_main

if __name__ == "__main__":
    service_main(ServerService)
