"""``python -m services.client``: the client service."""

from __future__ import annotations

from services.client.service import ClientService
from shared.process import service_main

if __name__ == "__main__":
    service_main(ClientService)
