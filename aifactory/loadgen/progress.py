"""Live progress on the terminal (rich), off when not a TTY or when asked.

Shows, per window: elapsed time, sent, completed, errors, in flight, the current completion
rate, p50 TTFT (streamed generations) and p50 end-to-end latency (everything, vector
operations included). Rendering happens only on window ticks, never per request.
"""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.table import Table

from aifactory.shared.results import WindowStats


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.1f}{unit}"


class LiveProgress:
    """Context manager; :meth:`update` with each :class:`WindowStats`."""

    def __init__(self, enabled: bool | None = None, console: Console | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._console = console or Console(stderr=True)
        self._live: Live | None = None

    def __enter__(self) -> LiveProgress:
        if self.enabled:
            self._live = Live(console=self._console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
            self._live = None

    def update(self, w: WindowStats) -> None:
        if self._live is None:
            return
        table = Table(title=f"run {w.run_index}: {w.label}", show_edge=False)
        for col in (
            "elapsed",
            "sent",
            "done",
            "errors",
            "in flight",
            "req/s",
            "p50 TTFT",
            "p50 E2E",
        ):
            table.add_column(col, justify="right")
        table.add_row(
            f"{w.elapsed_s:,.1f}s",
            f"{w.sent:,}",
            f"{w.completed:,}",
            f"{w.errors:,}",
            f"{w.in_flight:,}",
            _fmt(w.request_rate),
            _fmt(w.ttft_p50_ms, " ms"),
            _fmt(w.e2el_p50_ms, " ms"),
        )
        self._live.update(table)
