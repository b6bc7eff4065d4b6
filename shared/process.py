"""What every service process shares: stop on SIGINT/SIGTERM, logging, the entry point."""

from __future__ import annotations

import abc
import asyncio
import logging
import os
import signal
from collections.abc import Callable

from aifactory.shared.localstack import local_settings
from aifactory.shared.settings import Settings, load_settings


class ServiceProcess(abc.ABC):
    """A long-running service; ``run`` returns after ``stop`` (or a signal) asks it to."""

    def __init__(self) -> None:
        self._stop = asyncio.Event()

    @abc.abstractmethod
    async def run(self) -> None: ...

    def stop(self) -> None:
        self._stop.set()

    async def stopped(self) -> None:
        await self._stop.wait()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)


def service_main(factory: Callable[[Settings], ServiceProcess]) -> None:
    """``python -m services.<name>``: settings from the environment, run until signalled."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    settings = local_settings(load_settings())
    if settings.private_job_files:
        # Scripts, outputs and result files this process (and the jobs it submits, which
        # inherit the mask through sbatch or the local runner) creates: owner only.
        os.umask(0o077)

    async def _main() -> None:
        service = factory(settings)
        service.install_signal_handlers()
        await service.run()

    asyncio.run(_main())
