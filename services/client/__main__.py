"""``python -m aifactory.services.client``: the client service."""

from __future__ import annotations

from aifactory.services.client.service import ClientService
from aifactory.shared.process import service_main

if __name__ == "__main__":
    service_main(ClientService)
