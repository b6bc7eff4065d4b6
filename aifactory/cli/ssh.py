"""``aifactory ssh check``: try the login node the ``slurm+ssh`` executor will use.

The first command to run from a laptop: it logs in exactly as the services will (same
settings, same known_hosts check), runs ``sinfo`` and ``squeue`` there and creates the jobs
folder over SFTP, so a wrong key, an unknown host key or a missing SLURM shows up here with
what to do, not later as a failed deploy.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from aifactory.cli.common import console, fail, run, settings
from aifactory.shared.executors.base import ExecutorError
from aifactory.shared.executors.slurm_ssh import SlurmSshExecutor

app = typer.Typer(help="The login node of the slurm+ssh executor.", no_args_is_help=True)


@app.command()
def check(
    trust_on_first_use: Annotated[
        bool,
        typer.Option(
            "--trust-on-first-use",
            help="Accept and record the login node's host key if known_hosts does not list "
            "it yet (prints its fingerprint: compare it with your site's). A key that "
            "differs from a recorded one is refused regardless.",
        ),
    ] = False,
) -> None:
    """Log in to AIFACTORY_SSH__HOST, run sinfo and squeue there, create the jobs folder."""
    cfg = settings()
    if trust_on_first_use:
        cfg = cfg.model_copy(
            update={"ssh": cfg.ssh.model_copy(update={"trust_on_first_use": True})}
        )

    async def attempt() -> list[tuple[str, str]]:
        executor = SlurmSshExecutor.from_settings(cfg)
        try:
            assert cfg.jobs_dir is not None  # from_settings checked it
            return await executor.check(cfg.jobs_dir)
        finally:
            await executor.close()

    try:
        rows = run(attempt())
    except ExecutorError as exc:
        raise fail(str(exc)) from exc
    table = Table("", "", show_header=False, box=None)
    for what, answer in rows:
        table.add_row(what, answer)
    console.print(table)
    console.print("ready: AIFACTORY_EXECUTOR=slurm+ssh aifactory up")
