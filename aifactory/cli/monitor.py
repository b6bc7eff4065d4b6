"""``aifactory monitor targets | watch | prometheus``: what the monitor scrapes, live."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from nats.js.errors import KeyNotFoundError, NoKeysError
from rich.live import Live
from rich.table import Table

from aifactory.cli.busclient import BusUnavailable, bus
from aifactory.cli.common import console, fail, run, settings
from aifactory.monitor.figures import live_figures, timeline
from aifactory.monitor.prometheus import PrometheusError, run_prometheus
from aifactory.monitor.window import Row, read_window, rows_of
from aifactory.shared import subjects
from aifactory.shared.bus.events import watch
from aifactory.shared.messages import MonitorSamples, ServiceTargets
from aifactory.shared.messages.base import utcnow

app = typer.Typer(help="What the monitor scrapes, and the live figures.", no_args_is_help=True)

#: ``monitor watch`` keeps this much history (rates need two scrapes).
WATCH_HISTORY_S = 60.0


async def _targets(service_id: str | None) -> Table:
    cfg = settings()
    async with bus(cfg) as (broker, topology):
        try:
            keys = sorted(await topology.targets.keys())
        except NoKeysError:
            keys = []
        if service_id is not None:
            keys = [k for k in keys if k == service_id]
        js = broker.connection.jetstream()
        now = utcnow()
        since = now - timedelta(seconds=3 * cfg.monitor.interval + 5)
        table = Table("service", "role", "node", "target", "up", "last scrape", "error")
        for key in keys:
            try:
                entry = await topology.targets.get(key)
            except KeyNotFoundError:
                continue  # the service ended since the listing
            if entry.value is None:
                continue
            known = ServiceTargets.model_validate_json(entry.value)
            latest: dict[str, MonitorSamples] = {}
            for m in await read_window(js, subjects.MONITOR_SAMPLES, key, since, now):
                latest[m.target.key] = m
            for t in known.targets:
                last = latest.get(t.key)
                if last is None:
                    up, age, error = "-", "never", ""
                else:
                    up = "[green]up[/green]" if last.up else "[red]down[/red]"
                    age = f"{(now - last.time).total_seconds():.1f} s ago"
                    error = last.error or ""
                table.add_row(t.service_id, t.role.value, t.node, t.url, up, age, error)
    return table


@app.command()
def targets(
    service_id: Annotated[str | None, typer.Argument(help="Only this service.")] = None,
) -> None:
    """Every target the monitor scrapes: URL, up, when it was last scraped, the error."""
    try:
        table = run(_targets(service_id))
    except BusUnavailable as exc:
        raise fail(str(exc)) from exc
    if table.row_count == 0:
        console.print("no targets: no running service has monitoring on (or no monitor runs)")
        return
    console.print(table)


async def _watch(service_id: str, duration: float | None) -> None:
    cfg = settings()
    rows: deque[Row] = deque()

    async def on_samples(message: MonitorSamples) -> None:
        rows.extend(rows_of([message]))
        horizon = time.time() - WATCH_HISTORY_S
        while rows and rows[0].time < horizon:
            rows.popleft()

    async with bus(cfg) as (broker, _):
        now = utcnow()
        since = now - timedelta(seconds=WATCH_HISTORY_S)
        js = broker.connection.jetstream()
        rows.extend(
            rows_of(await read_window(js, subjects.MONITOR_SAMPLES, service_id, since, now))
        )
        sub = await watch(
            broker.connection, subjects.MONITOR_SAMPLES, on_samples, service_id=service_id
        )
        started = time.monotonic()
        try:
            with Live(console=console, refresh_per_second=2) as live:
                while duration is None or time.monotonic() - started < duration:
                    table = Table("figure", "value", title=f"service {service_id}")
                    for name, value in live_figures(timeline(rows)):
                        table.add_row(name, value)
                    if not rows:
                        table.add_row("(waiting for the next scrape)", "")
                    live.update(table)
                    await asyncio.sleep(0.5)
        finally:
            await sub.unsubscribe()


@app.command("watch")
def watch_cmd(
    service_id: Annotated[str, typer.Argument(help="The service to watch.")],
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")
    ] = None,
) -> None:
    """Live key figures of a service: queue, KV cache, tokens/s, GPUs, nodes, targets."""
    try:
        run(_watch(service_id, duration))
    except BusUnavailable as exc:
        raise fail(str(exc)) from exc
    except KeyboardInterrupt:
        return


@app.command()
def prometheus(
    port: Annotated[int, typer.Option(help="Where Prometheus listens (127.0.0.1).")] = 9090,
    data_dir: Annotated[
        Path | None, typer.Option(help="TSDB folder (default: <state dir>/prometheus/data).")
    ] = None,
    file_sd: Annotated[
        bool, typer.Option(help="Discover targets from the monitor's file_sd file, not HTTP SD.")
    ] = False,
    config_only: Annotated[
        bool, typer.Option(help="Write and check the configuration, print its path, exit.")
    ] = False,
) -> None:
    """Run Debian's (or the PATH's) Prometheus on your stack's targets, in the foreground.

    Targets come from the ingress's HTTP SD (with your ingress token, from a mode-0600
    file) or the monitor's file_sd file; the stack's own services are scraped too.
    """
    try:
        run_prometheus(
            settings(), port=port, data_dir=data_dir, file_sd=file_sd, config_only=config_only
        )
    except PrometheusError as exc:
        raise fail(str(exc)) from exc
