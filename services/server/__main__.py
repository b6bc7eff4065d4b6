"""``python -m services.server``: the server service."""

from __future__ import annotations

from services.server.service import ServerService
from shared.process import service_main

if __name__ == "__main__":
    service_main(ServerService)
