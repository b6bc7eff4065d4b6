"""``python -m services.client``: the client service (benchmarks over the bus)."""

from __future__ import annotations

import asyncio
import logging

from services.client.service import ClientService
from shared.settings import load_settings


async def _main() -> None:
    service = ClientService(load_settings())
    service.install_signal_handlers()
    await service.run()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(_main())


if __name__ == "__main__":
    main()
