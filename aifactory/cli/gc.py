"""``aifactory gc``: the retention policy applied to job folders and benchmark results.

A dry run by default: it lists what would go and the bytes freed; ``--apply`` removes. The
running stack's registry and the scheduler say which folders are live; a folder nobody can
vouch for is kept and listed with the reason (see ``aifactory/gc``).
"""

from __future__ import annotations

import re
import time
from enum import StrEnum
from typing import Annotated

import typer
from nats.errors import Error as NatsError
from pydantic import ByteSize, ValidationError
from rich.table import Table

from aifactory import gc as retention
from aifactory.cli.busclient import BusUnavailable, bus
from aifactory.cli.common import console, err_console, fail, run, settings
from aifactory.gc.policy import age_text
from aifactory.shared.executors.base import Executor, ExecutorError
from aifactory.shared.executors.factory import make_executor
from aifactory.shared.registry import BenchmarkRecord, KVRegistry, ServiceRecord
from aifactory.shared.settings import RetentionPolicy, Settings
from aifactory.shared.stackfile import read_stack

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_DAYS = {"s": 1 / 86400, "m": 1 / 1440, "h": 1 / 24, "d": 1.0, "w": 7.0, "": 1.0}


class What(StrEnum):
    JOBS = "jobs"
    BENCHMARKS = "benchmarks"
    ALL = "all"


def parse_days(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``2w``, ``3600s``; a bare number is days; ``0``: at once."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration (e.g. 30d, 12h, 90m; a number is days)")
    return float(match.group(1)) * _UNIT_DAYS[match.group(2)]


def effective_policy(
    configured: RetentionPolicy, older_than: str | None, keep: int | None, max_bytes: str | None
) -> RetentionPolicy:
    """The configured policy with the limits given on the command line replaced."""
    changes: dict[str, object] = {}
    if older_than is not None:
        changes["max_age_days"] = parse_days(older_than)
    if keep is not None:
        changes["max_count"] = keep
    if max_bytes is not None:
        changes["max_bytes"] = max_bytes
    return RetentionPolicy.model_validate(
        {**configured.model_dump(include=set(RetentionPolicy.model_fields)), **changes}
    )


def with_stack_executor(cfg: Settings) -> Settings:
    """Ask the scheduler your running stack submits to (``aifactory up --executor slurm``),
    unless one is set here: asking the wrong one would miss every sign of life."""
    stack = read_stack(cfg.state_dir)
    if stack is None or "executor" in cfg.model_fields_set or stack.executor == cfg.executor:
        return cfg
    return cfg.model_copy(update={"executor": stack.executor})


def _size(n: int) -> str:
    return ByteSize(n).human_readable(separator=" ")


async def _registries(cfg: Settings, use_registry: bool) -> retention.Registries:
    if not use_registry:
        return retention.Registries.unavailable("not asked (--no-registry)")
    try:
        async with bus(cfg) as (_, topology):
            return await retention.Registries.read(
                KVRegistry(topology.services, ServiceRecord),
                KVRegistry(topology.benchmarks, BenchmarkRecord),
            )
    except (BusUnavailable, NatsError, TimeoutError) as exc:
        return retention.Registries.unavailable(str(exc) or type(exc).__name__)


async def _run(
    cfg: Settings,
    kinds: list[retention.Kind],
    policies: dict[retention.Kind, RetentionPolicy],
    *,
    use_registry: bool,
    apply: bool,
) -> list[tuple[retention.Plan, retention.Outcome | None]]:
    registries = await _registries(cfg, use_registry)
    executor: Executor | None = None
    try:
        executor = make_executor(cfg)
    except ExecutorError as exc:  # the plan then says "no executor to ask" for every job
        err_console.print(f"[yellow]scheduler unavailable:[/yellow] {exc}")
    results: list[tuple[retention.Plan, retention.Outcome | None]] = []
    try:
        for kind in kinds:
            plan = await retention.plan(
                kind,
                retention.root_of(kind, cfg),
                policies[kind],
                registries=registries,
                executor=executor,
            )
            results.append((plan, await retention.apply(plan) if apply else None))
    finally:
        if executor is not None:
            await executor.close()
    return results


def _show(plan: retention.Plan, outcome: retention.Outcome | None, verbose: bool) -> None:
    now = time.time()
    title = f"{plan.kind.value}: {plan.root}"
    console.print(f"[bold]{title}[/bold]")
    for note in plan.notes:
        console.print(f"  [yellow]note:[/yellow] {note}")
    if not plan.policy.limited:
        console.print("  no limit configured: everything is kept (see README, 'Retention')")
    shown = [
        f
        for f in plan.folders
        if verbose
        or f.action is retention.Action.REMOVE
        or f.evidence.state in (retention.FolderState.UNKNOWN, retention.FolderState.SKIPPED)
    ]
    if shown:
        table = Table("folder", "state", "changed", "size", "action", "why")
        for f in shown:
            changed = f"{age_text(now - f.last_activity)} ago" if f.usage else "-"
            size = _size(f.bytes) if f.usage else "-"
            why = f"{f.evidence.reason}; {f.why}" if f.why else f.evidence.reason
            table.add_row(f.name, f.evidence.state.value, changed, size, f.action.value, why)
        console.print(table)
    counts = {
        state: sum(1 for f in plan.folders if f.evidence.state is state)
        for state in retention.FolderState
    }
    kept = ", ".join(f"{n} {state.value}" for state, n in counts.items() if n)
    console.print(
        f"  {len(plan.folders)} entr{'y' if len(plan.folders) == 1 else 'ies'}, "
        f"{_size(plan.total_bytes)} ({kept or 'none'}); "
        + (
            f"removed {len(outcome.removed)}, freed {_size(outcome.bytes_freed)}"
            if outcome is not None
            else f"would remove {len(plan.removals)}, freeing {_size(plan.bytes_to_free)} "
            "(dry run: --apply to remove)"
        )
    )
    for folder, why in outcome.failed if outcome else []:
        err_console.print(f"  [red]not removed:[/red] {folder.path}: {why}")


def gc(
    apply: Annotated[
        bool, typer.Option("--apply", help="Remove what the policy says (default: only list).")
    ] = False,
    what: Annotated[What, typer.Option(help="Job folders, benchmark results, or both.")] = (
        What.ALL
    ),
    older_than: Annotated[
        str | None,
        typer.Option(
            help="Remove ended folders unchanged for longer than this (30d, 12h, 90m; a "
            "number is days; 0: all ended), instead of the configured age limit."
        ),
    ] = None,
    keep: Annotated[
        int | None, typer.Option(min=0, help="Keep at most this many ended folders (newest).")
    ] = None,
    max_bytes: Annotated[
        str | None,
        typer.Option(help="Remove ended folders, oldest first, while the total is over this."),
    ] = None,
    use_registry: Annotated[
        bool,
        typer.Option(
            "--registry/--no-registry",
            help="Ask the running stack's registry which folders are live (without it only "
            "the scheduler can tell, and most old folders stay 'unknown').",
        ),
    ] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List kept folders too.")] = (
        False
    ),
) -> None:
    """Apply the retention policy (Settings.retention) to job folders and benchmark results.

    Only folders whose job or benchmark is known to have ended are removed; live folders and
    folders whose state cannot be established are kept and listed with the reason. Symbolic
    links are never followed. Limits given here replace the configured ones of that name.
    """
    cfg = with_stack_executor(settings())
    kinds = [k for k in retention.Kind if what is What.ALL or k.value == what.value]
    try:
        policies = {
            k: effective_policy(retention.policy_of(k, cfg), older_than, keep, max_bytes)
            for k in kinds
        }
    except (ValueError, ValidationError) as exc:
        raise fail(str(exc)) from exc
    try:
        results = run(_run(cfg, kinds, policies, use_registry=use_registry, apply=apply))
    except retention.RefusedPath as exc:
        raise fail(str(exc)) from exc
    for plan, outcome in results:
        _show(plan, outcome, verbose)
    if any(outcome is not None and outcome.failed for _, outcome in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``gc`` command to the main typer app."""
    app.command("gc")(gc)
