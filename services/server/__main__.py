"""``python -m services.server``: the server service (commands, job tracking, ingress)."""

from __future__ import annotations

import asyncio
import logging

from services.server.service import ServerService
from shared.settings import load_settings


async def _main() -> None:
    service = ServerService(load_settings())
    service.install_signal_handlers()
    await service.run()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(_main())


if __name__ == "__main__":
    main()
