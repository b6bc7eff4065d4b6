"""What the report shows of the jobs' logs: links to the saved files, and the alerts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LogLink:
    """A saved job log, linked relative to the report file."""

    job: str
    stream: str
    href: str
    records: int
    bytes: int
    source: str


@dataclass(frozen=True, slots=True)
class AlertRow:
    """A failure pattern the logs service found in a job's output."""

    job: str
    stream: str
    line: int
    pattern: str
    severity: str
    summary: str
