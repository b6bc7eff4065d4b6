"""Exceptions raised at the load generator's boundaries.

Each one carries a message a user can act on (which URL, which file and line, which field),
because they surface verbatim in the CLI and in ``bench.failed`` events.
"""

from __future__ import annotations


class LoadgenError(Exception):
    """Base class: anything the load generator refuses or cannot do."""


class ConfigError(LoadgenError):
    """The benchmark configuration is inconsistent (e.g. a rate profile without a rate)."""


class DatasetError(LoadgenError):
    """A workload file cannot be used; the message names the file, the line and the field."""

    def __init__(self, path: str, line: int | None, field: str | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.problem = problem
        where = path if line is None else f"{path}:{line}"
        what = f"field {field!r}: " if field else ""
        super().__init__(f"{where}: {what}{problem}")


class PreflightError(LoadgenError):
    """The target is unreachable or does not speak the chosen API; raised before any load."""


class InvalidResponseError(LoadgenError):
    """A response (or a streamed event) does not have the shape the backend expects."""


class StreamCutError(LoadgenError):
    """The response ended before its terminal marker (``[DONE]``, ``done: true``)."""


class ServerStreamError(LoadgenError):
    """The server reported an error inside an otherwise successful (HTTP 200) stream."""


class WorkerError(LoadgenError):
    """A worker process failed or died; the message says which one and why."""
