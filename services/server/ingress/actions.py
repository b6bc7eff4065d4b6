"""What the REST API and the web page both do: deploy, stop, start and cancel benchmarks.

One function per action, called by the JSON routes and by the HTML forms alike, so a form
and an API body pass exactly the same checks and publish exactly the same commands. Each
answers once the consumer has registered the new resource (see :mod:`accept`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from faststream.nats import NatsBroker

from aifactory.loadgen.backends import backend_names
from aifactory.services.server.ingress.accept import registered
from aifactory.shared import subjects
from aifactory.shared.bus import publish
from aifactory.shared.messages import (
    BenchCancel,
    BenchRequested,
    BenchTarget,
    DeployCancel,
    DeployRequested,
    new_id,
)
from aifactory.shared.recipes import Recipe, load_service_recipe
from aifactory.shared.registry import BenchmarkRecord, KVRegistry, ServiceRecord
from aifactory.shared.registry_view import RegistryView
from aifactory.shared.settings import Settings
from aifactory.shared.workload import Workload

Location = Sequence[str | int]


class Rejected(ValueError):
    """The request cannot be carried out: each error is (field location, reason), the
    location relative to the request body (``["workload", "backend"]``)."""

    def __init__(self, errors: Sequence[tuple[Location, str]], kind: str) -> None:
        self.errors = [(list(loc), reason) for loc, reason in errors]
        self.kind = kind
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {r}" for loc, r in self.errors))


class NotFound(LookupError):
    """No such service or benchmark."""


def check_deploy(settings: Settings, recipe: str, overrides: Mapping[str, Any]) -> Recipe:
    """The recipe with ``overrides``, validated as the server will (raises ``RecipeError``
    naming each field at fault)."""
    return load_service_recipe(recipe, settings.recipes_dir, overrides)


async def deploy_service(
    broker: NatsBroker,
    view: RegistryView,
    settings: Settings,
    recipe: str,
    overrides: dict[str, Any],
) -> str:
    """Validate, publish ``deploy.requested``, return the new service id."""
    check_deploy(settings, recipe, overrides)
    service_id = new_id()[:12]
    cmd = DeployRequested(service_id=service_id, recipe=recipe, overrides=overrides)
    await publish(broker, subjects.DEPLOY_REQUESTED, cmd)
    # Answer once the server has registered it (normally a few ms), so a GET right after
    # finds the service; if the server is down the command waits in the stream.
    await registered(lambda: view.get_json(service_id))
    return service_id


async def stop_service(broker: NatsBroker, view: RegistryView, service_id: str) -> None:
    if await view.get_json(service_id) is None:
        raise NotFound(f"no service {service_id!r}")
    await publish(broker, subjects.DEPLOY_CANCEL, DeployCancel(service_id=service_id))


async def start_benchmark(
    broker: NatsBroker,
    benchmarks: KVRegistry[BenchmarkRecord],
    services: KVRegistry[ServiceRecord],
    target: BenchTarget,
    workload: Workload,
) -> str:
    """Check what the schema cannot (a known backend, an existing service), publish
    ``bench.requested``, return the new benchmark id."""
    if workload.backend not in backend_names():
        reason = f"unknown backend; known: {', '.join(backend_names())}"
        raise Rejected([(["workload", "backend"], reason)], "workload")
    if target.service_id is not None and await services.get(target.service_id) is None:
        raise Rejected([(["target", "service_id"], f"no service {target.service_id!r}")], "target")
    benchmark_id = new_id()[:12]
    await publish(
        broker,
        subjects.BENCH_REQUESTED,
        BenchRequested(benchmark_id=benchmark_id, target=target, workload=workload),
    )
    await registered(lambda: benchmarks.get(benchmark_id))
    return benchmark_id


async def cancel_benchmark(
    broker: NatsBroker, benchmarks: KVRegistry[BenchmarkRecord], benchmark_id: str
) -> None:
    if await benchmarks.get(benchmark_id) is None:
        raise NotFound(f"no benchmark {benchmark_id!r}")
    await publish(broker, subjects.BENCH_CANCEL, BenchCancel(benchmark_id=benchmark_id))
