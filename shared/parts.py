"""``parts.json``: the supervisor's view of each part of a stack (NATS and every service).

``aifactory up`` rewrites it whenever a part changes state; the ingress reads it for its
``/health`` (which names each part's state) and ``/metrics``, and ``aifactory status``
prints it. A file rather than a bus message: it must still say the truth while NATS itself
is the part that is down.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import Field, ValidationError

from aifactory.shared.credentials import write_private
from aifactory.shared.messages.base import utcnow
from aifactory.shared.stackfile import process_alive
from aifactory.shared.strict import StrictModel

PARTS_FILE = "parts.json"
#: A part that restarted this recently still counts against the stack's health.
RECENT_RESTART_S = 60.0


class PartState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    #: Exited; waiting out its back-off before the next start.
    RESTARTING = "restarting"
    STOPPED = "stopped"


class PartStatus(StrictModel):
    name: str = Field(description="nats, server, client, monitor, logs.")
    state: PartState
    pid: int | None = Field(default=None, description="Its process id while it runs.")
    restarts: int = Field(default=0, ge=0, description="Restarts since the stack started.")
    last_exit_code: int | None = Field(
        default=None, description="How it last ended (negative: killed by that signal)."
    )
    last_exit: datetime | None = None
    next_start: datetime | None = Field(
        default=None, description="When a part waiting out its back-off starts again."
    )
    log: str | None = Field(default=None, description="Its log file.")

    @property
    def healthy(self) -> bool:
        if self.state is not PartState.RUNNING:
            return False
        if self.last_exit is None:
            return True
        return (utcnow() - self.last_exit).total_seconds() > RECENT_RESTART_S


class StackParts(StrictModel):
    supervisor_pid: int
    updated: datetime = Field(default_factory=utcnow)
    parts: list[PartStatus]

    @property
    def degraded(self) -> list[PartStatus]:
        return [p for p in self.parts if not p.healthy]


def parts_path(state_dir: Path) -> Path:
    return state_dir / PARTS_FILE


def write_parts(state_dir: Path, parts: StackParts) -> None:
    write_private(parts_path(state_dir), parts.model_dump_json(indent=2))


def read_parts(state_dir: Path) -> StackParts | None:
    """``None`` when no supervisor runs this stack (a service started on its own, or the
    supervisor is gone and the file is stale)."""
    try:
        found = StackParts.model_validate_json(parts_path(state_dir).read_bytes())
    except (FileNotFoundError, ValidationError):
        return None
    return found if process_alive(found.supervisor_pid) else None


def remove_parts(state_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        parts_path(state_dir).unlink()


class PartsCollector(Collector):
    """``aifactory_stack_part_up`` and ``aifactory_stack_part_restarts_total``, read from
    ``parts.json`` at scrape time (so they are right even while the bus is down)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "aifactory_stack_part_up",
            "1 when the part runs and has not restarted in the last minute",
            labels=["part", "state"],
        )
        restarts = CounterMetricFamily(
            "aifactory_stack_part_restarts",
            "Restarts of the part by the supervisor since the stack started",
            labels=["part"],
        )
        found = read_parts(self.state_dir)
        for part in found.parts if found else []:
            up.add_metric([part.name, part.state.value], 1.0 if part.healthy else 0.0)
            restarts.add_metric([part.name], float(part.restarts))
        yield up
        yield restarts
