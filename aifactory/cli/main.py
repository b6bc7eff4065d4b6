"""The ``aifactory`` command."""

from __future__ import annotations

import importlib
import logging
import signal
import time
from typing import Annotated

import typer

from aifactory.cli import recipes, services
from aifactory.cli.common import console, fail, settings
from aifactory.stack import Stack, StackError

app = typer.Typer(
    name="aifactory",
    help="Deploy AI services on SLURM from recipes, benchmark them, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(recipes.app, name="recipes")
app.add_typer(services.app, name="services")
app.command()(services.deploy)

# Commands contributed by other modules register themselves when present.
for _module in ("simulate", "bench", "experiment"):
    try:
        _mod = importlib.import_module(f"aifactory.cli.{_module}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"aifactory.cli.{_module}":
            raise
        continue
    _mod.register(app)


@app.command()
def up(
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Start the embedded NATS and the services in the foreground; Ctrl-C stops all."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    cfg = settings()
    stack = Stack(cfg)
    stopping = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        stack.start()
    except StackError as exc:
        raise fail(str(exc)) from exc
    console.print(f"[green]aifactory up[/green]  nats {stack.nats_url}  executor {cfg.executor}")
    console.print(f"  ingress  http://{cfg.ingress_host}:{cfg.ingress_port}  (OpenAPI: /docs)")
    console.print(f"  logs     {stack.log_dir}")
    console.print("Ctrl-C to stop.")
    try:
        while not stopping:
            for note in stack.supervise_once():
                console.print(f"[yellow]{note}[/yellow]")
            time.sleep(0.5)
    except StackError as exc:
        stack.stop()
        raise fail(str(exc)) from exc
    console.print("stopping…")
    stack.stop()
    console.print("stopped.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
