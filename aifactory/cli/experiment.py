"""``aifactory experiment run FILE``: the whole experiment in one command."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from aifactory.cli.busclient import BusUnavailable, CommandRefused, bus
from aifactory.cli.common import console, fail, settings
from aifactory.experiment.runner import ExperimentRunner, Outcome
from aifactory.experiment.spec import ExperimentError, ExperimentSpec, load_experiment
from aifactory.shared.settings import Settings, load_settings
from aifactory.stack import Stack, StackError

app = typer.Typer(help="Run experiments described in YAML.", no_args_is_help=True)


async def _run(spec: ExperimentSpec, cfg: Settings, source: Path) -> Outcome:
    async with bus(cfg) as (broker, topology):
        runner = ExperimentRunner(spec, cfg, broker, topology, console, source=source)
        return await runner.run()


@app.command("run")
def run_cmd(
    file: Annotated[Path, typer.Argument(help="Experiment YAML, e.g. examples/quickstart.yaml")],
    output_dir: Annotated[
        Path | None, typer.Option(help="Parent folder for the report folder.")
    ] = None,
) -> None:
    """Deploy, benchmark every workload, write the report folder, tear down.

    Starts the embedded stack (NATS + services, local executor) when no bus is reachable
    at AIFACTORY_NATS_URL, and stops it at the end.
    """
    logging.basicConfig(level=logging.WARNING)
    try:
        spec = load_experiment(file)
    except ExperimentError as exc:
        raise fail(str(exc)) from exc
    if output_dir is not None:
        spec = spec.model_copy(update={"output_dir": output_dir})
    cfg = settings()
    stack: Stack | None = None
    try:
        try:
            outcome = asyncio.run(_run(spec, cfg, file))
        except CommandRefused:
            raise
        except BusUnavailable:
            console.print("no bus reachable: starting the embedded stack")
            stack = Stack(load_settings()).start()
            outcome = asyncio.run(_run(spec, settings(), file))
    except (BusUnavailable, StackError) as exc:
        raise fail(str(exc)) from exc
    finally:
        if stack is not None:
            stack.stop()
    console.print(f"report folder: [bold]{outcome.folder}[/bold]")
    if (outcome.folder / "report.html").is_file():
        console.print(f"report: {outcome.folder / 'report.html'}")
    if not outcome.ok:
        raise fail(outcome.error or "some workloads did not complete")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="experiment")
