"""Vector-database operations: searches scored by recall@k, upserts counted in rows.

The pre-flight (in the parent) reads the dataset, computes and caches the ground truth,
and gets every endpoint's collection ready: dropped and created empty for an ``ingest``
(or ``recreate``), created when missing for writes, required to exist for searches (a
search-only run against a missing collection stops there with what to do). Workers load
the same data and cached truth before their start, and resolve each endpoint's routes.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence

import numpy as np

from aifactory.loadgen.backends import Backend, RequestKind, backend_class
from aifactory.loadgen.backends.vector import (
    CollectionMissingError,
    Routes,
    VectorApiError,
    VectorBackend,
    call,
)
from aifactory.loadgen.datasets.tokens import TokenCounter
from aifactory.loadgen.drivers.base import Deliver, Driver
from aifactory.loadgen.errors import ConfigError, PreflightError, WorkerError
from aifactory.loadgen.messages import WorkerSpec
from aifactory.loadgen.transport import ConnectionLostError, HttpClient, HttpProtocolError
from aifactory.loadgen.vector.data import VectorData, load_vectors
from aifactory.loadgen.vector.requester import VectorRequester
from aifactory.loadgen.vector.source import VectorCall, VectorSource, batch_count
from aifactory.loadgen.vector.truth import ground_truth
from aifactory.shared.results import RunSummary
from aifactory.shared.vectors import VectorDataset, VectorMode, VectorWorkload
from aifactory.shared.workload import BenchConfig, ProfileKind

PREFLIGHT_TIMEOUT_S = 30.0
#: After an ingest, how long to wait for the server to report its index built.
INDEX_WAIT_S = 600.0
_TRANSPORT_ERRORS = (OSError, TimeoutError, ConnectionLostError, HttpProtocolError)


@functools.lru_cache(maxsize=1)
def _data(dataset_json: str) -> VectorData:
    """Per process, a dataset is read once (sweep stages, workloads on the same data reuse
    it); one at a time, as the client service lives on between benchmarks."""
    return load_vectors(VectorDataset.model_validate_json(dataset_json))


@functools.lru_cache(maxsize=2)
def _truth(dataset_json: str, workload_json: str) -> np.ndarray:
    return ground_truth(_data(dataset_json), VectorWorkload.model_validate_json(workload_json))


def _vector_backend(config: BenchConfig, cls: type[Backend]) -> VectorBackend:
    assert issubclass(cls, VectorBackend)
    return cls(config.vector or VectorWorkload())


def _check_config(config: BenchConfig, workload: VectorWorkload) -> None:
    if workload.mode is VectorMode.INGEST:
        if config.profile is ProfileKind.SWEEP:
            raise ConfigError("vector mode 'ingest' is one pass over the data: not a sweep")
        if config.requests is not None:
            raise ConfigError("vector mode 'ingest' writes every row once: leave 'requests' unset")
        if config.warmup_requests or config.warmup_s:
            raise ConfigError("vector mode 'ingest' writes every row once: no warmup")


class VectorDriver(Driver):
    kind = RequestKind.VECTOR

    def __init__(self, backend: VectorBackend, source: VectorSource, routes: list[Routes]) -> None:
        self._backend = backend
        self._source = source
        self._routes = routes

    @classmethod
    async def preflight(cls, config: BenchConfig, backend: type[Backend]) -> BenchConfig:
        workload = config.vector or VectorWorkload()
        _check_config(config, workload)
        data = _data(workload.dataset.model_dump_json())
        if workload.searches:
            _truth(workload.dataset.model_dump_json(), workload.model_dump_json())
        api = _vector_backend(config.model_copy(update={"vector": workload}), backend)
        api_key = config.api_key.get_secret_value() if config.api_key else None
        for url in config.targets:
            base = backend.base_url(url)
            async with HttpClient(base, timeout_s=PREFLIGHT_TIMEOUT_S, api_key=api_key) as client:
                try:
                    await _prepare_endpoint(client, api, workload, data.dimension)
                except _TRANSPORT_ERRORS as exc:
                    raise PreflightError(
                        f"cannot reach {base}: {exc or type(exc).__name__}"
                    ) from exc
                except VectorApiError as exc:
                    raise PreflightError(f"{exc} (is --backend {config.backend} right?)") from exc
        update: dict[str, object] = {"vector": workload}
        if workload.mode is VectorMode.INGEST:
            update["requests"] = batch_count(data.rows, workload.batch_size)
        return config.model_copy(update=update)

    @classmethod
    async def for_worker(
        cls,
        spec: WorkerSpec,
        clients: Sequence[HttpClient],
        token_counter: TokenCounter | None = None,
    ) -> VectorDriver:
        cfg = spec.config
        workload = cfg.vector
        assert workload is not None, "resolve the workload (pre-flight) before starting workers"
        dataset_json = workload.dataset.model_dump_json()
        data = _data(dataset_json)
        truth = _truth(dataset_json, workload.model_dump_json()) if workload.searches else None
        api = _vector_backend(cfg, backend_class(cfg.backend))
        try:
            routes = [await api.routes(client) for client in clients]
        except (VectorApiError, *_TRANSPORT_ERRORS) as exc:
            raise WorkerError(f"worker {spec.worker_id}: {exc}") from exc
        source = VectorSource(
            api,
            data,
            truth,
            workload,
            seed=spec.plan.seed,
            worker_id=spec.worker_id,
            n_workers=spec.n_workers,
        )
        return cls(api, source, routes)

    def next(self) -> tuple[VectorCall, bytes]:
        return self._source.next()

    def requester(
        self,
        endpoint: int,
        client: HttpClient,
        *,
        start_ns: int,
        run_index: int,
        worker_id: int,
        deliver: Deliver,
    ) -> VectorRequester:
        return VectorRequester(
            client,
            self._backend,
            self._routes[endpoint],
            start_ns=start_ns,
            run_index=run_index,
            worker_id=worker_id,
            deliver=deliver,
            endpoint=endpoint,
        )

    @classmethod
    async def after_stage(
        cls, config: BenchConfig, backend: type[Backend], run: RunSummary
    ) -> RunSummary:
        """After writes, wait (bounded) until every endpoint reports its index built."""
        workload = config.vector
        if workload is None or not workload.writes or run.requests_ok == 0:
            return run
        api = _vector_backend(config, backend)
        api_key = config.api_key.get_secret_value() if config.api_key else None
        started = time.monotonic()
        for url in config.targets:
            async with HttpClient(
                backend.base_url(url), timeout_s=PREFLIGHT_TIMEOUT_S, api_key=api_key
            ) as client:
                while True:
                    try:
                        ready = await api.index_ready(client)
                    except (VectorApiError, *_TRANSPORT_ERRORS):
                        return run
                    if ready is None:
                        return run  # this database does not say (Chroma indexes as it writes)
                    if ready:
                        break
                    if time.monotonic() - started > INDEX_WAIT_S:
                        return run  # not built in time: no figure rather than a wrong one
                    await asyncio.sleep(0.2)
        return run.model_copy(update={"index_ready_s": time.monotonic() - started})


async def _prepare_endpoint(
    client: HttpClient, api: VectorBackend, workload: VectorWorkload, dimension: int
) -> None:
    status, body = await call(client, "GET", api.health_path)
    if status != 200:
        text = body[:200].decode("utf-8", "replace").strip()
        raise VectorApiError(f"{client.url(api.health_path)} answered HTTP {status}: {text}")
    if workload.writes:
        limit = await api.max_batch_size(client)
        if limit is not None and workload.batch_size > limit:
            raise ConfigError(
                f"batch_size {workload.batch_size} is above {client.base_url}'s limit of {limit}"
            )
    if workload.recreates:
        await api.drop_collection(client)
        await api.create_collection(client, dimension)
        return
    try:
        await api.routes(client)
    except CollectionMissingError as exc:
        if not workload.writes:
            raise PreflightError(
                f"{exc}: nothing to search; ingest first (vector mode 'ingest')"
            ) from exc
        await api.create_collection(client, dimension)
