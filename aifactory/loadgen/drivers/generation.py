"""LLM generations: a prompt in, generated tokens out, timed chunk by chunk."""

from __future__ import annotations

from collections.abc import Sequence

from aifactory.loadgen.backends import Backend, GenerationBackend, RequestKind, make_backend
from aifactory.loadgen.client import GenerationRequester
from aifactory.loadgen.datasets import make_prompt_source, validate_dataset
from aifactory.loadgen.datasets.base import Prompt, PromptSource
from aifactory.loadgen.datasets.tokens import TokenCounter
from aifactory.loadgen.drivers.base import Deliver, Driver
from aifactory.loadgen.errors import ConfigError
from aifactory.loadgen.messages import WorkerSpec
from aifactory.loadgen.preflight import generation_preflight
from aifactory.loadgen.transport import HttpClient
from aifactory.shared.workload import BenchConfig


class GenerationDriver(Driver):
    kind = RequestKind.GENERATION

    def __init__(
        self,
        backend: GenerationBackend,
        prompts: PromptSource,
        token_counter: TokenCounter | None,
    ) -> None:
        self._backend = backend
        self._prompts = prompts
        self._counter = token_counter

    @classmethod
    async def preflight(cls, config: BenchConfig, backend: type[Backend]) -> BenchConfig:
        if config.vector is not None:
            raise ConfigError(
                f"backend {config.backend!r} generates text: 'vector' settings are for the "
                "vector-database backends"
            )
        assert issubclass(backend, GenerationBackend)
        validate_dataset(config.dataset)
        return await generation_preflight(config, backend)

    @classmethod
    async def for_worker(
        cls,
        spec: WorkerSpec,
        clients: Sequence[HttpClient],
        token_counter: TokenCounter | None = None,
    ) -> GenerationDriver:
        cfg = spec.config
        assert cfg.model is not None, "resolve the model (pre-flight) before starting workers"
        backend = make_backend(
            cfg.backend,
            cfg.model,
            stream=cfg.stream,
            ignore_eos=cfg.ignore_eos,
            extra_body=cfg.extra_body,
        )
        prompts = make_prompt_source(
            cfg.dataset, seed=spec.plan.seed, worker_id=spec.worker_id, n_workers=spec.n_workers
        )
        return cls(backend, prompts, token_counter)

    def next(self) -> tuple[Prompt, bytes]:
        prompt = self._prompts.next()
        return prompt, self._backend.body(prompt, prompt.output_tokens)

    def requester(
        self,
        endpoint: int,
        client: HttpClient,
        *,
        start_ns: int,
        run_index: int,
        worker_id: int,
        deliver: Deliver,
    ) -> GenerationRequester:
        return GenerationRequester(
            client,
            self._backend,
            start_ns=start_ns,
            run_index=run_index,
            worker_id=worker_id,
            deliver=deliver,
            token_counter=self._counter,
            endpoint=endpoint,
        )
