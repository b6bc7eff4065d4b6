"""Request kinds and their drivers; :func:`preflight` is where every run starts.

Backends are the extension point (any number, one file each); request kinds are a small,
closed set defined here, one driver each (see ``base.Driver``).
"""

from __future__ import annotations

from aifactory.loadgen.backends import Backend, RequestKind, backend_class
from aifactory.loadgen.drivers.base import Driver
from aifactory.loadgen.drivers.generation import GenerationDriver
from aifactory.loadgen.drivers.vector import VectorDriver
from aifactory.loadgen.errors import ConfigError
from aifactory.shared.plugins import ExtensionError
from aifactory.shared.workload import BenchConfig

__all__ = ["DRIVERS", "Driver", "driver_for", "preflight", "resolve_backend"]

DRIVERS: dict[RequestKind, type[Driver]] = {
    RequestKind.GENERATION: GenerationDriver,
    RequestKind.VECTOR: VectorDriver,
}


def resolve_backend(name: str) -> type[Backend]:
    try:
        return backend_class(name)
    except ExtensionError as exc:
        raise ConfigError(f"backend: {exc}") from None


def driver_for(backend: str | type[Backend]) -> type[Driver]:
    cls = resolve_backend(backend) if isinstance(backend, str) else backend
    return DRIVERS[cls.kind]


async def preflight(config: BenchConfig) -> BenchConfig:
    """Check the data and the target for ``config``'s backend; return the resolved config.

    Raises :class:`~aifactory.loadgen.errors.LoadgenError` subclasses (bad backend, bad
    data file, unreachable or wrong target) before anything is started.
    """
    cls = resolve_backend(config.backend)
    return await DRIVERS[cls.kind].preflight(config, cls)
