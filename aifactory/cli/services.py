"""``aifactory deploy`` and ``aifactory services ls | status | stop | logs``: bus clients."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table

from aifactory.cli.busclient import BusUnavailable, bus
from aifactory.cli.common import console, fail, run, settings
from aifactory.cli.logs import logs
from aifactory.shared import subjects
from aifactory.shared.bus import publish
from aifactory.shared.messages import DeployCancel, DeployRequested, new_id
from aifactory.shared.recipes import RecipeError, load_service_recipe, parse_set_options
from aifactory.shared.registry import KVRegistry, ServiceRecord
from aifactory.shared.states import ServiceState

app = typer.Typer(help="Follow and stop deployed services.", no_args_is_help=True)


def _status_line(record: ServiceRecord | None, service_id: str, elapsed: float) -> str:
    if record is None:
        return f"[dim]{service_id}: waiting for the server to accept… {elapsed:4.0f}s[/dim]"
    job = (
        f" job {record.job_id} ({record.job_state.value})"
        if record.job_id and record.job_state
        else ""
    )
    reason = f" — {record.reason}" if record.reason else ""
    return f"{service_id}: [bold]{record.state.value}[/bold]{job}{reason}  {elapsed:4.0f}s"


async def follow(
    registry: KVRegistry[ServiceRecord], service_id: str, until: set[ServiceState], timeout: float
) -> ServiceRecord | None:
    """Live status line until the service reaches one of ``until`` or an end state."""
    started = time.monotonic()
    record: ServiceRecord | None = None
    with Live(console=console, transient=False, refresh_per_second=8) as live:
        while time.monotonic() - started < timeout:
            found = await registry.get(service_id)
            record = found[0] if found else None
            live.update(_status_line(record, service_id, time.monotonic() - started))
            if record is not None and (record.state in until or record.state.is_terminal):
                return record
            await asyncio.sleep(0.25)
    return record


async def deploy_async(
    recipe: str, overrides: dict[str, object], wait: bool, timeout: float
) -> int:
    cfg = settings()
    try:
        load_service_recipe(recipe, cfg.recipes_dir, overrides)  # fail fast, with field paths
    except RecipeError as exc:
        raise fail(str(exc)) from exc
    service_id = new_id()[:12]
    try:
        async with bus(cfg) as (broker, topology):
            await publish(
                broker,
                subjects.DEPLOY_REQUESTED,
                DeployRequested(service_id=service_id, recipe=recipe, overrides=overrides),
            )
            console.print(f"deploy requested: service [bold]{service_id}[/bold] ({recipe})")
            if not wait:
                return 0
            registry = KVRegistry(topology.services, ServiceRecord)
            record = await follow(registry, service_id, {ServiceState.RUNNING}, timeout)
    except BusUnavailable as exc:
        raise fail(str(exc)) from exc
    if record is None or record.state is not ServiceState.RUNNING:
        state = record.state.value if record else "unknown"
        raise fail(f"service {service_id} is {state}: {record.reason if record else 'no answer'}")
    for endpoint in record.endpoints:
        tunnel = f" (from here: {endpoint.local_url})" if endpoint.local_url else ""
        console.print(f"  endpoint {endpoint.url}{tunnel}")
    return 0


def deploy(
    recipe: Annotated[str, typer.Argument(help="category/name, e.g. inference/simulator")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Override: --set resources.gpu=4")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Follow until running (live status).")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 600,
) -> None:
    """Deploy a service from a recipe through the server service."""
    try:
        overrides = parse_set_options(set_ or [])
    except RecipeError as exc:
        raise fail(str(exc)) from exc
    run(deploy_async(recipe, overrides, wait, timeout))


async def _records() -> list[ServiceRecord]:
    async with bus(settings()) as (_, topology):
        return await KVRegistry(topology.services, ServiceRecord).all()


@app.command("ls")
def ls(all_: Annotated[bool, typer.Option("--all", "-a", help="Include ended.")] = False) -> None:
    """List services."""
    try:
        records = run(_records())
    except BusUnavailable as exc:
        raise fail(str(exc)) from exc
    table = Table("service", "recipe", "state", "job", "endpoints", "created")
    for r in sorted(records, key=lambda r: r.created):
        if r.state.is_terminal and not all_:
            continue
        job = f"{r.job_id} {r.job_state.value}" if r.job_id and r.job_state else "-"
        table.add_row(
            r.service_id,
            r.recipe,
            r.state.value,
            job,
            " ".join(e.reachable_url for e in r.endpoints) or "-",
            r.created.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)


@app.command()
def status(service_id: str) -> None:
    """Show one service's record (state history, endpoints, files) as JSON."""
    try:
        records = {r.service_id: r for r in run(_records())}
    except BusUnavailable as exc:
        raise fail(str(exc)) from exc
    if service_id not in records:
        raise fail(f"no service {service_id!r}")
    console.print_json(records[service_id].model_dump_json(exclude={"spec"}))


async def _stop(service_id: str, wait: bool, timeout: float) -> ServiceRecord | None:
    async with bus(settings()) as (broker, topology):
        registry = KVRegistry(topology.services, ServiceRecord)
        if await registry.get(service_id) is None:
            raise fail(f"no service {service_id!r}")
        await publish(broker, subjects.DEPLOY_CANCEL, DeployCancel(service_id=service_id))
        console.print(f"cancel requested for {service_id}")
        if not wait:
            return None
        return await follow(registry, service_id, set(), timeout)


@app.command()
def stop(
    service_id: str,
    wait: Annotated[bool, typer.Option(help="Wait until the job has ended.")] = True,
    timeout: Annotated[float, typer.Option()] = 120,
) -> None:
    """Cancel a service's job."""
    try:
        run(_stop(service_id, wait, timeout))
    except BusUnavailable as exc:
        raise fail(str(exc)) from exc


app.command()(logs)
