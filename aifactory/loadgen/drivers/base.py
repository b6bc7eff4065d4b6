"""A driver: how requests of one :class:`RequestKind` are prepared, sent and recorded.

The engine (schedules, budgets, workers, stop) knows nothing of prompts or vectors: it asks
its worker's driver for the next request (``next``: an opaque item and the body bytes) and
hands it to the driver's requester for the endpoint. Everything kind-specific lives behind
this interface: the pre-flight, the data (prompts; vectors and their ground truth), the
request bodies and what a response means (tokens and their times; recall@k, rows).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from aifactory.loadgen.backends import Backend, RequestKind
from aifactory.loadgen.client import Requester
from aifactory.loadgen.datasets.tokens import TokenCounter
from aifactory.loadgen.messages import WorkerSpec
from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.loadgen.transport import HttpClient
from aifactory.shared.results import RunSummary
from aifactory.shared.workload import BenchConfig

Deliver = Callable[[RequestRecord], None]


class Driver(ABC):
    """One worker's source of requests and maker of requesters, for one request kind."""

    kind: ClassVar[RequestKind]

    @classmethod
    @abstractmethod
    async def preflight(cls, config: BenchConfig, backend: type[Backend]) -> BenchConfig:
        """In the parent, before any load: check the data and every target, and return the
        config with what they resolved (the model, the ingest's request count…).

        Raises :class:`~aifactory.loadgen.errors.LoadgenError` subclasses and starts nothing.
        """

    @classmethod
    async def after_stage(
        cls, config: BenchConfig, backend: type[Backend], run: RunSummary
    ) -> RunSummary:
        """In the parent, after a stage: add what only the server can tell (a vector
        index's build time); by default nothing."""
        return run

    @classmethod
    @abstractmethod
    async def for_worker(
        cls,
        spec: WorkerSpec,
        clients: Sequence[HttpClient],
        token_counter: TokenCounter | None = None,
    ) -> Driver:
        """Everything one worker needs, loaded before its load starts (data, endpoints)."""

    @abstractmethod
    def next(self) -> tuple[Any, bytes]:
        """The next request: what the requester needs to record it, and the body to send."""

    @abstractmethod
    def requester(
        self,
        endpoint: int,
        client: HttpClient,
        *,
        start_ns: int,
        run_index: int,
        worker_id: int,
        deliver: Deliver,
    ) -> Requester[Any]:
        """The requester sending to ``client`` (the config's target number ``endpoint``)."""
