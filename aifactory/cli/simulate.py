"""``aifactory simulate``: the inference simulator as a subcommand of the main CLI."""

from __future__ import annotations

import typer

from aifactory.simulator.cli import simulate


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command to the main typer app."""
    app.command("simulate")(simulate)
